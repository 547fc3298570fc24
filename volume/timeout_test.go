package volume

import (
	"errors"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/stripe"
)

// testIOTimeout is the I/O time-out of the tests that hang a member. No
// assertion depends on its value: it only has to be short, since each
// hung call waits for it.
const testIOTimeout = 50 * time.Millisecond

// returns runs f and fails the test unless f returns within a deadline
// far beyond any time-out of the volume: a hung call returning at all is
// what the tests assert, never how fast.
func returns(t *testing.T, what string, f func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return", what)
		panic("unreachable")
	}
}

// hangOpen opens a volume on ds with the test time-out, closed at the
// end of the test, and makes the ops of kind op on disk name hang until
// the end of the test (released before the volume closes).
func hangOpen(t *testing.T, ds *memDisks, names []string, name string, op fault.Op, o OpenOptions) *Volume {
	t.Helper()
	o.IOTimeout = testIOTimeout
	v := memOpen(t, ds, names, o)
	t.Cleanup(func() { mustClose(t, v) })
	f := ds.fault(name)
	f.Hang(op)
	t.Cleanup(f.Release) // runs before the Close above
	return v
}

// TestIOTimeoutData: a data write that hangs on one member fails with a
// stripe.DiskError naming that member; the other member's share lands.
func TestIOTimeoutData(t *testing.T) {
	ds, names := newMemDisks(t, 2, 4*mib)
	memCreate(t, ds, names, CreateOptions{Chunk: 64 * kib})
	v := hangOpen(t, ds, names, names[1], fault.Write, OpenOptions{})
	data := pattern(3, 128*kib) // chunk 0 on member 0, chunk 1 on member 1
	err := returns(t, "data write", func() error { _, err := v.Data().WriteAt(data, 0); return err })
	var de *stripe.DiskError
	if !errors.As(err, &de) || de.Disk != 1 || !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("data write with member 1 hung: %v, want a DiskError of disk 1 wrapping ErrTimeout", err)
	}
	checkData(t, v, 0, data[:64*kib])
}

// TestIOTimeoutOpen: a disk that hangs when Open reads its superblocks
// makes Open fail, naming the disk.
func TestIOTimeoutOpen(t *testing.T) {
	ds, names := newMemDisks(t, 2, 4*mib)
	memCreate(t, ds, names, CreateOptions{})
	var hung *fault.Device
	ds.atOpen = func(name string, f *fault.Device) {
		if name == names[1] {
			f.Hang(fault.Read)
			hung = f
		}
	}
	t.Cleanup(func() { hung.Release() })
	err := returns(t, "Open", func() error {
		_, err := Open(names, OpenOptions{OpenDisk: ds.openFunc, IOTimeout: testIOTimeout})
		return err
	})
	refused(t, err, names[1], blockdev.ErrTimeout)
}
