package blockdev_test

import (
	"bytes"
	"errors"
	"strings"
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
