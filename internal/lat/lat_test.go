package lat

import (
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	for i := range nBuckets - 1 {
		lo := time.Duration(0)
		if i > 0 {
			lo = upper(i - 1)
		}
		hi := upper(i)
		if hi <= lo {
			t.Fatalf("bucket %d: upper %v not above lower %v", i, hi, lo)
		}
		if got := bucket(lo); i > 0 && got != i {
			t.Errorf("bucket(%v) = %d, want %d (its lower bound)", lo, got, i)
		}
		if got := bucket(hi - 1); got != i {
			t.Errorf("bucket(%v) = %d, want %d (just below its upper bound)", hi-1, got, i)
		}
	}
	for e := minExp + 1; e <= maxExp; e++ {
		p := time.Duration(uint64(1) << e)
		if upper(bucket(p-1)) != p {
			t.Errorf("2^%d ns is not a bucket bound", e)
		}
	}
	if got := bucket(time.Hour); got != nBuckets-1 {
		t.Errorf("bucket(1h) = %d, want the last, %d", got, nBuckets-1)
	}
	if got := bucket(0); got != 0 {
		t.Errorf("bucket(0) = %d", got)
	}
}

func TestOffRecordsNothing(t *testing.T) {
	Reset()
	Enable(false)
	t.Cleanup(func() { Enable(false); Reset() })
	if s := Start(); s != 0 {
		t.Fatalf("Start() = %d while off, want 0", s)
	}
	Record(FileWrite, time.Millisecond)
	if Since(FileWrite, 12345) != 0 {
		t.Error("Since while off returned a time")
	}
	if n := Snapshot()[FileWrite].Count; n != 0 {
		t.Fatalf("recorded %d while off", n)
	}
	// A measurement started while off stays unmeasured once on.
	Enable(true)
	if Since(FileWrite, 0) != 0 {
		t.Error("Since(0) returned a time")
	}
	if n := Snapshot()[FileWrite].Count; n != 0 {
		t.Fatalf("a start of 0 was recorded (%d)", n)
	}
}

func TestSnapshotQuantilesAndPromBuckets(t *testing.T) {
	Reset()
	Enable(true)
	t.Cleanup(func() { Enable(false); Reset() })
	// 90 of 10 us, 10 of 1 ms.
	for range 90 {
		Record(FileFlush, 10*time.Microsecond)
	}
	for range 10 {
		Record(FileFlush, time.Millisecond)
	}
	h := Snapshot()[FileFlush]
	if h.Stage != "file_flush" || h.Count != 100 || h.Sum != 90*10*time.Microsecond+10*time.Millisecond {
		t.Fatalf("snapshot %+v", h)
	}
	within := func(got, want time.Duration) bool { return got >= want*4/5 && got <= want*5/4 }
	if got := h.Quantile(0.5); !within(got, 10*time.Microsecond) {
		t.Errorf("median %v, want about 10us", got)
	}
	if got := h.Quantile(0.99); !within(got, time.Millisecond) {
		t.Errorf("p99 %v, want about 1ms", got)
	}
	if got := h.Mean(); got != h.Sum/100 {
		t.Errorf("mean %v", got)
	}
	pb := h.PromBuckets()
	if got := pb[(16384 * time.Nanosecond).Seconds()]; got != 90 {
		t.Errorf("cumulative count at 16.384us = %d, want 90", got)
	}
	if got := pb[(1 << 19 * time.Nanosecond).Seconds()]; got != 90 {
		t.Errorf("cumulative count at 524.288us = %d, want 90", got)
	}
	if got := pb[(1 << 20 * time.Nanosecond).Seconds()]; got != 100 {
		t.Errorf("cumulative count at 1.048576ms = %d, want 100", got)
	}
	prev := uint64(0)
	for e := minExp + 1; e <= maxExp; e++ {
		n := pb[time.Duration(uint64(1)<<e).Seconds()]
		if n < prev {
			t.Fatalf("PromBuckets not cumulative at 2^%d", e)
		}
		prev = n
	}
}

func TestSinceChains(t *testing.T) {
	Reset()
	Enable(true)
	t.Cleanup(func() { Enable(false); Reset() })
	t0 := Start()
	t1 := Since(NBDRecv, t0)
	if t1 < t0 {
		t.Fatalf("Since returned %d before its start %d", t1, t0)
	}
	Since(NBDDispatch, t1)
	s := Snapshot()
	if s[NBDRecv].Count != 1 || s[NBDDispatch].Count != 1 {
		t.Fatalf("counts %d %d", s[NBDRecv].Count, s[NBDDispatch].Count)
	}
}

func TestStageNames(t *testing.T) {
	seen := map[string]bool{}
	for s := range NumStages {
		n := s.String()
		if n == "" || seen[n] {
			t.Fatalf("stage %d has name %q (empty or repeated)", s, n)
		}
		seen[n] = true
	}
}

func BenchmarkOff(b *testing.B) {
	Enable(false)
	for b.Loop() {
		Since(FileWrite, Start())
	}
}

func BenchmarkOn(b *testing.B) {
	Enable(true)
	b.Cleanup(func() { Enable(false); Reset() })
	for b.Loop() {
		Since(FileWrite, Start())
	}
}

// TestRequestsLevel: at Requests only the NBD server's whole requests
// record; the stages below pay no clock read (Start returns 0).
func TestRequestsLevel(t *testing.T) {
	Reset()
	SetLevel(Requests)
	t.Cleanup(func() { SetLevel(Off); Reset() })
	if s := Start(); s != 0 {
		t.Fatalf("Start() = %d at Requests, want 0", s)
	}
	t0 := StartRequest()
	if t0 == 0 {
		t.Fatal("StartRequest() = 0 at Requests")
	}
	if Since(NBDRecv, t0) != 0 {
		t.Error("a stage below the request recorded at Requests")
	}
	Record(FileWrite, time.Millisecond)
	if Since(NBDTotalRead, t0) == 0 {
		t.Error("a whole request did not record at Requests")
	}
	snap := Snapshot()
	if snap[NBDTotalRead].Count != 1 || snap[NBDRecv].Count != 0 || snap[FileWrite].Count != 0 {
		t.Fatalf("recorded: total read %d, recv %d, file write %d; want 1, 0, 0",
			snap[NBDTotalRead].Count, snap[NBDRecv].Count, snap[FileWrite].Count)
	}
	SetLevel(Off)
	if StartRequest() != 0 || Since(NBDTotalRead, t0) != 0 {
		t.Error("a request recorded while off")
	}
}

// TestRaise: Raise never lowers the level (the exporter's Requests must
// not switch off the stages NETRAID_LATENCY switched on).
func TestRaise(t *testing.T) {
	t.Cleanup(func() { SetLevel(Off) })
	SetLevel(Stages)
	Raise(Requests)
	if CurrentLevel() != Stages || !Enabled() {
		t.Fatalf("Raise(Requests) lowered Stages to %v", CurrentLevel())
	}
	SetLevel(Off)
	Raise(Requests)
	if CurrentLevel() != Requests || Enabled() {
		t.Fatalf("Raise(Requests) from Off gave %v", CurrentLevel())
	}
}
