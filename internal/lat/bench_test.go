package lat

import "testing"

// oneRequest instruments one request as the data path does: the NBD
// server's stages (header to hand-off, hand-off to handler, execution,
// reply, the whole) and below it about eight more (bitmap mark, each
// leg, the disk time-out's hand-offs, the file, the AIO wake-up).
func oneRequest() {
	t0 := StartRequest()
	t1 := Since(NBDRecv, t0)
	t2 := Since(NBDDispatch, t1)
	for _, s := range [...]Stage{MirrorMark, MirrorLocalWrite, MirrorRemoteWrite, TimeoutDispatch, TimeoutWake, FileRead, AIOWake, ClientRoundTrip} {
		Since(s, Start())
	}
	Since(NBDExecRead, t2)
	Since(NBDReply, Start())
	Since(NBDTotalRead, t0)
}

// BenchmarkRequest is what the instrumentation costs one request at each
// level, with every core recording (the histograms are shared).
func BenchmarkRequest(b *testing.B) {
	for _, lv := range []struct {
		name  string
		level Level
	}{{"off", Off}, {"requests", Requests}, {"stages", Stages}} {
		b.Run(lv.name, func(b *testing.B) {
			SetLevel(lv.level)
			defer func() { SetLevel(Off); Reset() }()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					oneRequest()
				}
			})
		})
	}
}
