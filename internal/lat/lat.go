package lat

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Stage is a step of the data path whose duration is measured.
type Stage uint8

// The stages. A request's own stages are per operation (write, flush,
// FUA write, read) where they differ by what they wait for.
const (
	// NBD server, per request: from the request's header read to its
	// handler being handed it (a write's payload read is in it).
	NBDRecv Stage = iota
	// From the hand-off to the handler running: a goroutine wake-up.
	NBDDispatch
	// The device call of a request (the handler's own time, reply aside).
	NBDExecWrite
	NBDExecFUA
	NBDExecFlush
	NBDExecRead
	// Sending a reply: the combiner (its yield) and the writev.
	NBDReply
	// A whole request, from its header read to its reply written.
	NBDTotalWrite
	NBDTotalFUA
	NBDTotalFlush
	NBDTotalRead

	// Mirror: the write intent (bitmap mark) before a write goes out.
	MirrorMark
	// Each leg's part of a write or a flush, as the fan-out sees it.
	MirrorLocalWrite
	MirrorLocalFlush
	MirrorRemoteWrite
	MirrorRemoteFlush
	// From the first leg's answer to the last's (what the faster leg
	// waits for the slower).
	MirrorLegSkew

	// blockdev.Timeout: from a call's hand-off to its worker running it,
	// and from its end to the caller going on again.
	TimeoutDispatch
	TimeoutWake
	// blockdev.File: a data transfer (submission to completion) and an
	// fdatasync.
	FileWrite
	FileRead
	FileFlush
	// Native AIO: from a transfer's completion event being reaped to its
	// goroutine going on.
	AIOWake

	// resync.Bitmap: a metadata write with its flush (a commit), and a
	// mark's wait for one.
	BitmapCommit
	BitmapWait

	// nbd.Client (the link to the peer): sending a request (the
	// combiner and the writev); from the start of that send to its reply
	// being read; and from the reply to the caller going on.
	ClientSend
	ClientRoundTrip
	ClientWake

	NumStages
)

var names = [NumStages]string{
	NBDRecv: "nbd_recv", NBDDispatch: "nbd_dispatch",
	NBDExecWrite: "nbd_exec_write", NBDExecFUA: "nbd_exec_fua", NBDExecFlush: "nbd_exec_flush", NBDExecRead: "nbd_exec_read",
	NBDReply:      "nbd_reply",
	NBDTotalWrite: "nbd_total_write", NBDTotalFUA: "nbd_total_fua", NBDTotalFlush: "nbd_total_flush", NBDTotalRead: "nbd_total_read",
	MirrorMark: "mirror_mark", MirrorLocalWrite: "mirror_local_write", MirrorLocalFlush: "mirror_local_flush",
	MirrorRemoteWrite: "mirror_remote_write", MirrorRemoteFlush: "mirror_remote_flush", MirrorLegSkew: "mirror_leg_skew",
	TimeoutDispatch: "timeout_dispatch", TimeoutWake: "timeout_wake",
	FileWrite: "file_write", FileRead: "file_read", FileFlush: "file_flush", AIOWake: "aio_wake",
	BitmapCommit: "bitmap_commit", BitmapWait: "bitmap_wait",
	ClientSend: "client_send", ClientRoundTrip: "client_round_trip", ClientWake: "client_wake",
}

// String is the stage's name, the value of the exporter's stage label.
func (s Stage) String() string {
	if s < NumStages {
		return names[s]
	}
	return "unknown"
}

// Bucket layout: four per power of two from 2^minExp ns up to 2^maxExp
// ns, then one for everything above.
const (
	minExp   = 8
	maxExp   = 34
	perOct   = 4
	nBuckets = (maxExp-minExp)*perOct + 1 // the last: above 2^maxExp
)

type hist struct {
	counts [nBuckets]atomic.Uint64
	sum    atomic.Int64 // ns
}

// Level says which histograms record.
type Level int32

const (
	// Off: nothing records.
	Off Level = iota
	// Requests: only the whole requests of the NBD server (NBDTotal*
	// stages), each measured by two clock reads and two atomic adds; the
	// level the metrics exporter runs at.
	Requests
	// Stages: every stage, about a dozen clock reads per request along
	// the data path; for finding where the time goes.
	Stages
)

var (
	level atomic.Int32
	base  = time.Now()
	hists [NumStages]hist
)

// SetLevel sets which histograms record.
func SetLevel(l Level) { level.Store(int32(l)) }

// CurrentLevel returns the level set.
func CurrentLevel() Level { return Level(level.Load()) }

// Raise sets the level to l unless it is already higher.
func Raise(l Level) {
	for {
		cur := level.Load()
		if cur >= int32(l) || level.CompareAndSwap(cur, int32(l)) {
			return
		}
	}
}

// Enable switches every stage on (Stages) or everything off.
func Enable(v bool) {
	if v {
		SetLevel(Stages)
	} else {
		SetLevel(Off)
	}
}

// Enabled reports whether every stage records.
func Enabled() bool { return Level(level.Load()) >= Stages }

// Start returns a start time for Since, or 0 unless every stage records.
func Start() int64 {
	if Level(level.Load()) < Stages {
		return 0
	}
	return now()
}

// StartRequest returns the start time of an NBD request (its header
// read), or 0 when not even whole requests record.
func StartRequest() int64 {
	if Level(level.Load()) < Requests {
		return 0
	}
	return now()
}

// records reports whether s records at the level set now.
func records(s Stage) bool {
	lv := Level(level.Load())
	switch s {
	case NBDTotalWrite, NBDTotalFUA, NBDTotalFlush, NBDTotalRead:
		return lv >= Requests
	}
	return lv >= Stages
}

// now is monotonic nanoseconds since the package started, never 0.
func now() int64 { return int64(time.Since(base)) | 1 }

// Since records the time from start (a Start or StartRequest) to now
// under s, and returns now, to start the next stage with (0 if start was
// 0 or s does not record at the level set).
func Since(s Stage, start int64) int64 {
	if start == 0 || !records(s) {
		return 0
	}
	t := now()
	Record(s, time.Duration(t-start))
	return t
}

// Record adds one duration under s, if s records at the level set.
func Record(s Stage, d time.Duration) {
	if s >= NumStages || !records(s) {
		return
	}
	if d < 0 {
		d = 0
	}
	h := &hists[s]
	h.counts[bucket(d)].Add(1)
	h.sum.Add(int64(d))
}

// bucket is the index of the bucket d falls in.
func bucket(d time.Duration) int {
	x := uint64(d)
	if x < 1<<minExp {
		return 0
	}
	e := bits.Len64(x) - 1 // 2^e <= x < 2^(e+1)
	if e >= maxExp {
		return nBuckets - 1
	}
	q := int(x>>(e-2)) & (perOct - 1) // the quarter of the octave
	return (e-minExp)*perOct + q
}

// upper is the exclusive upper bound of bucket i (0 for the last, which
// has none).
func upper(i int) time.Duration {
	if i >= nBuckets-1 {
		return 0
	}
	e, q := minExp+i/perOct, i%perOct
	return time.Duration(uint64(1)<<e + uint64(q+1)<<(e-2))
}

// Reset zeroes every histogram.
func Reset() {
	for s := range hists {
		for i := range hists[s].counts {
			hists[s].counts[i].Store(0)
		}
		hists[s].sum.Store(0)
	}
}
