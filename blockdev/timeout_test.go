package blockdev_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
)

// hangLimit is the time-out of the tests whose calls hang for good: it
// only decides how long they wait, never whether they pass.
const hangLimit = 50 * time.Millisecond

func TestTimeoutConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		return blockdev.WithTimeout(blockdev.NewMem(size), time.Minute)
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}

// timeoutStack returns a Mem, a fault device over it and a Timeout over that.
func timeoutStack(t *testing.T) (*blockdev.Mem, *fault.Device, *blockdev.Timeout) {
	t.Helper()
	m := blockdev.NewMem(1 << 20)
	f := fault.Wrap(m)
	return m, f, blockdev.WithTimeout(f, hangLimit)
}

// waitIdle polls until w has no call in flight.
func waitIdle(t *testing.T, w *blockdev.Timeout) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.Running() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls still running", w.Running())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTimeoutHungWrite(t *testing.T) {
	m, f, w := timeoutStack(t)
	f.Hang(fault.Write)
	p := devtest.Pattern(1, 4096, 4096)
	want := bytes.Clone(p)
	n, err := w.WriteAt(p, 4096)
	if !errors.Is(err, blockdev.ErrTimeout) || n != 0 {
		t.Fatalf("hung write = %d, %v; want 0, ErrTimeout", n, err)
	}
	if !strings.Contains(err.Error(), "write off 4096 len 4096") {
		t.Errorf("error %q does not name the op and range", err)
	}
	if w.Running() != 1 {
		t.Fatalf("Running() = %d after the time-out, want the stuck write", w.Running())
	}
	// The stuck write goes on from p: released, it lands what p holds.
	f.Release()
	waitIdle(t, w)
	if got := m.Bytes()[4096:8192]; !bytes.Equal(got, want) {
		t.Fatal("the write released after its time-out did not write the data it was given")
	}
	// The device still serves, and the next write wins.
	if _, err := w.WriteAt(make([]byte, 4096), 4096); err != nil {
		t.Fatalf("write after release: %v", err)
	}
	if got := m.Bytes()[4096:8192]; !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatal("a write after the stuck one was released did not land")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestTimeoutHungRead(t *testing.T) {
	m, f, w := timeoutStack(t)
	if _, err := m.WriteAt(devtest.Pattern(2, 0, 4096), 0); err != nil {
		t.Fatal(err)
	}
	f.Hang(fault.Read)
	p := bytes.Repeat([]byte{0xaa}, 4096)
	if _, err := w.ReadAt(p, 0); !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("hung read: %v, want ErrTimeout", err)
	}
	f.Release()
	waitIdle(t, w)
	if !bytes.Equal(p, bytes.Repeat([]byte{0xaa}, 4096)) {
		t.Fatal("a read that timed out wrote into the caller's buffer when it finished")
	}
	// Later reads work and deliver.
	if _, err := w.ReadAt(p, 0); err != nil || !bytes.Equal(p, devtest.Pattern(2, 0, 4096)) {
		t.Fatalf("read after release: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestTimeoutEveryOp(t *testing.T) {
	_, f, w := timeoutStack(t)
	t.Cleanup(func() { w.Close() })
	f.Hang(fault.Any)
	p := make([]byte, 512)
	errs := map[string]error{
		"flush": w.Flush(),
		"trim":  w.Trim(0, 512),
		"zero":  w.WriteZeroes(0, 512, false),
	}
	_, errs["read"] = w.ReadAt(p, 0)
	_, errs["write"] = w.WriteAt(p, 0)
	_, errs["fua"] = w.WriteAtFUA(p, 0)
	_, errs["map"] = w.Map(0, 512)
	_, errs["checksum"] = w.Checksum(0, 512)
	for op, err := range errs {
		if !errors.Is(err, blockdev.ErrTimeout) {
			t.Errorf("%s: %v, want ErrTimeout", op, err)
		}
	}
	f.Release()
	waitIdle(t, w)
}

func TestTimeoutCloseWithStuckCall(t *testing.T) {
	_, f, w := timeoutStack(t)
	f.Hang(fault.Flush)
	if err := w.Flush(); !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("hung flush: %v, want ErrTimeout", err)
	}
	if w.Running() != 1 {
		t.Fatalf("Running() = %d, want the stuck flush", w.Running())
	}
	// Close gives up on the stuck flush after the limit and closes the
	// fault device, which lets the flush go; goleak checks it ended.
	if err := w.Close(); !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("Close with a stuck call: %v, want ErrTimeout", err)
	}
	waitIdle(t, w)
	if err := w.Flush(); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("Flush after Close: %v, want ErrClosed", err)
	}
}

// TestTimeoutReadBuffer: ReadBuffer hands over the buffer it read into;
// a read that times out, or fails, hands over none.
func TestTimeoutReadBuffer(t *testing.T) {
	m, f, w := timeoutStack(t)
	t.Cleanup(func() { w.Close() })
	want := devtest.Pattern(3, 8192, 8192)
	if _, err := m.WriteAt(want, 8192); err != nil {
		t.Fatal(err)
	}
	buf, err := blockdev.ReadBuffer(w, 8192, 8192)
	if err != nil || !bytes.Equal(buf, want) {
		t.Fatalf("ReadBuffer = %d bytes, %v; want the %d written", len(buf), err, len(want))
	}
	if !blockdev.IsAligned(buf, 4096) {
		t.Error("ReadBuffer's buffer is not aligned for direct I/O")
	}
	blockdev.PutBuffer(buf)

	f.Hang(fault.Read)
	if buf, err := w.ReadBuffer(4096, 0); !errors.Is(err, blockdev.ErrTimeout) || buf != nil {
		t.Fatalf("hung ReadBuffer = %d bytes, %v; want none, ErrTimeout", len(buf), err)
	}
	f.Release()
	waitIdle(t, w)

	errDead := errors.New("dead sector")
	f.FailAll(fault.Read, errDead)
	if buf, err := w.ReadBuffer(4096, 0); !errors.Is(err, errDead) || buf != nil {
		t.Fatalf("failing ReadBuffer = %d bytes, %v; want none, the device's error", len(buf), err)
	}
}

// TestReadBufferWithoutBufferReader: a device without ReadBuffer is read
// with ReadAt into a pool buffer, and a short read is an error.
func TestReadBufferWithoutBufferReader(t *testing.T) {
	m := blockdev.NewMem(1 << 16)
	want := devtest.Pattern(4, 0, 4096)
	if _, err := m.WriteAt(want, 4096); err != nil {
		t.Fatal(err)
	}
	buf, err := blockdev.ReadBuffer(m, 4096, 4096)
	if err != nil || !bytes.Equal(buf, want) {
		t.Fatalf("ReadBuffer = %d bytes, %v; want the %d written", len(buf), err, len(want))
	}
	blockdev.PutBuffer(buf)
	if buf, err := blockdev.ReadBuffer(short{m}, 4096, 0); !errors.Is(err, io.ErrUnexpectedEOF) || buf != nil {
		t.Fatalf("ReadBuffer of a short read = %d bytes, %v; want none, io.ErrUnexpectedEOF", len(buf), err)
	}
}

// short reads half of what is asked, without an error.
type short struct{ *blockdev.Mem }

func (s short) ReadAt(p []byte, off int64) (int, error) { return s.Mem.ReadAt(p[:len(p)/2], off) }

func TestWholeRead(t *testing.T) {
	errX := errors.New("x")
	for _, c := range []struct {
		got, want int
		err, res  error
	}{
		{4, 4, nil, nil},
		{4, 4, io.EOF, nil},
		{3, 4, io.EOF, io.EOF},
		{3, 4, nil, io.ErrUnexpectedEOF},
		{0, 4, errX, errX},
		{4, 4, errX, errX},
	} {
		if res := blockdev.WholeRead(c.got, c.want, c.err); res != c.res {
			t.Errorf("WholeRead(%d, %d, %v) = %v, want %v", c.got, c.want, c.err, res, c.res)
		}
	}
}

// TestTimeoutNotBeforeTheLimit: the watchdog answers a stuck call once it
// has run for the limit, never before, and goes on answering calls that
// finish in time with their own results.
func TestTimeoutNotBeforeTheLimit(t *testing.T) {
	m, f, w := timeoutStack(t)
	t.Cleanup(func() { w.Close() })
	want := devtest.Pattern(5, 0, 4096)
	if _, err := m.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	f.Hang(fault.Flush)
	start := time.Now()
	if err := w.Flush(); !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("hung flush: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < hangLimit {
		t.Fatalf("hung flush answered after %v, before the limit (%v)", d, hangLimit)
	}
	// Reads are not hung: they are answered with their data while the
	// flush is still stuck.
	p := make([]byte, 4096)
	if _, err := w.ReadAt(p, 0); err != nil || !bytes.Equal(p, want) {
		t.Fatalf("read beside a stuck flush: %v", err)
	}
	f.Release()
	waitIdle(t, w)
}

// TestTimeoutStuckAndPromptCallsTogether: many callers at once, some of
// whose calls hang, with the hung ones released at about the moment they
// time out (the race between the watchdog and the worker answering):
// every caller gets exactly one answer, its data or ErrTimeout, and the
// calls are recycled without being shared (the race detector watches).
func TestTimeoutStuckAndPromptCallsTogether(t *testing.T) {
	m, f, w := timeoutStack(t)
	t.Cleanup(func() { w.Close() })
	want := devtest.Pattern(6, 0, 4096)
	if _, err := m.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	for round := range 6 {
		f.Hang(fault.Flush)
		var timedOut, ok atomic.Int64
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				if i%2 == 0 {
					err := w.Flush()
					if errors.Is(err, blockdev.ErrTimeout) {
						timedOut.Add(1)
					} else if err != nil {
						t.Errorf("flush: %v", err)
					} else {
						ok.Add(1)
					}
					return
				}
				p := make([]byte, 4096)
				if _, err := w.ReadAt(p, 0); err != nil || !bytes.Equal(p, want) {
					t.Errorf("read: %v", err)
				}
			})
		}
		// Release the flushes near their limit: some are answered by the
		// watchdog, some (in later rounds, perhaps) by their workers.
		time.Sleep(hangLimit - time.Duration(round)*5*time.Millisecond)
		f.Release()
		wg.Wait()
		if timedOut.Load()+ok.Load() != 8 {
			t.Fatalf("round %d: %d flushes timed out and %d succeeded, want 8 answers", round, timedOut.Load(), ok.Load())
		}
		waitIdle(t, w)
	}
}
