package volume

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/stripe"
)

// testIOTimeout is the I/O time-out of the tests that hang a member. It
// must be long enough that a member that does not hang never overruns
// it, even under the race detector on a loaded machine (50 ms was not);
// each hung call waits for it, so the tests that hang run in parallel.
const testIOTimeout = 2 * time.Second

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

// TestIOTimeoutData: a data write that hangs on one member, bounded by
// the owner's time-out around Data, names no member; Stalled does, and
// once that member is failed its data I/O is refused at once, while the
// other member's share landed.
func TestIOTimeoutData(t *testing.T) {
	t.Parallel()
	ds, names := newMemDisks(t, 2, 4*mib)
	memCreate(t, ds, names, CreateOptions{Chunk: 64 * kib})
	v := hangOpen(t, ds, names, names[1], fault.Write, OpenOptions{})
	data := pattern(3, 128*kib) // chunk 0 on member 0, chunk 1 on member 1
	dev := blockdev.WithTimeout(v.Data(), testIOTimeout)
	t.Cleanup(func() { ds.fault(names[1]).Release(); dev.Close() })
	err := returns(t, "data write", func() error { _, err := dev.WriteAt(data, 0); return err })
	if !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("data write with member 1 hung: %v, want ErrTimeout", err)
	}
	if got := v.Stalled(testIOTimeout / 2); got != 0b10 {
		t.Fatalf("Stalled = %#b, want member 1", got)
	}
	checkData(t, v, 0, data[:64*kib])
	if err := v.FailMembers(0b10, err); err != nil {
		t.Fatal(err)
	}
	err = returns(t, "data write to the failed member", func() error { _, err := v.Data().WriteAt(data, 0); return err })
	var de *stripe.DiskError
	if !errors.As(err, &de) || de.Disk != 1 || !errors.Is(err, ErrMemberFailed) {
		t.Fatalf("data write after member 1 failed: %v, want a DiskError of disk 1 wrapping ErrMemberFailed", err)
	}
	if got := v.Stalled(0); got != 0b10 {
		t.Fatalf("Stalled(0) = %#b: the hung call still runs on member 1", got)
	}
}

// TestStalledProgress: a member that finishes calls is not stalled,
// however busy it is.
func TestStalledProgress(t *testing.T) {
	t.Parallel()
	ds, names := newMemDisks(t, 2, 4*mib)
	memCreate(t, ds, names, CreateOptions{Chunk: 64 * kib})
	v := memOpen(t, ds, names, OpenOptions{})
	t.Cleanup(func() { mustClose(t, v) })
	for range 10 {
		if _, err := v.Data().WriteAt(pattern(1, 128*kib), 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.Stalled(0); got != 0 {
		t.Fatalf("Stalled = %#b with nothing running", got)
	}
}

// TestIOTimeoutOpen: a disk that hangs when Open reads its superblocks
// makes Open fail, naming the disk.
func TestIOTimeoutOpen(t *testing.T) {
	t.Parallel()
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

// TestHungMemberFlow is issue 13's bug 3 on the volume: member 1 hangs
// for good. A data write times out, Stalled names it, the owner fails it, and bitmap
// marks and superblock updates go on with member 0 alone; nothing more is
// sent to member 1.
func TestHungMemberFlow(t *testing.T) {
	t.Parallel()
	ds, names := newMemDisks(t, 2, 4*mib)
	memCreate(t, ds, names, CreateOptions{Chunk: 64 * kib})
	var log failLog
	v := hangOpen(t, ds, names, names[1], fault.Any, OpenOptions{OnMemberFailed: log.add})
	dev := blockdev.WithTimeout(v.Data(), testIOTimeout)
	t.Cleanup(func() { ds.fault(names[1]).Release(); dev.Close() })
	err := returns(t, "data write", func() error { _, err := dev.WriteAt(pattern(1, 128*kib), 0); return err })
	mask := v.Stalled(testIOTimeout / 2)
	if mask != 0b10 || !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("data write: %v, stalled %#b; want a time-out with member 1 stalled", err, mask)
	}
	if err := returns(t, "FailMembers", func() error { return v.FailMembers(mask, err) }); err != nil {
		t.Fatalf("FailMembers: %v", err)
	}
	f := ds.fault(names[1])
	seen := f.Count(fault.Any)
	for name, op := range metaOps {
		if err := returns(t, name, func() error { return op(v) }); err != nil {
			t.Fatalf("%s after member 1 failed: %v", name, err)
		}
	}
	if got := f.Count(fault.Any); got != seen {
		t.Fatalf("%d metadata ops reached the failed member", got-seen)
	}
	if sb := v.Super(); sb.FailedMembers != 0b10 {
		t.Fatalf("recorded failed members %#x, want 0b10", sb.FailedMembers)
	}
	if calls := log.get(); len(calls) != 0 {
		t.Fatalf("OnMemberFailed called for a member the owner failed: %v", calls)
	}
}

// TestAnswersWhileHung: with no time-out, a superblock update waits for a
// hung member as long as it hangs; meanwhile Super (still the previous
// superblock) and Members answer.
func TestAnswersWhileHung(t *testing.T) {
	ds, names := newMemDisks(t, 2, 4*mib)
	memCreate(t, ds, names, CreateOptions{})
	v := memOpen(t, ds, names, OpenOptions{})
	t.Cleanup(func() { mustClose(t, v) })
	f := ds.fault(names[1])
	f.Hang(fault.Write)
	t.Cleanup(f.Release)
	before := v.Super()
	done := make(chan error, 1)
	go func() { done <- v.UpdateSuper(func(sb *meta.Superblock) { sb.Role = meta.Primary }) }()
	waitBlocked(t, f, 1)
	if got := returns(t, "Super", func() error {
		if v.Super() != before {
			return errors.New("Super changed before the update returned")
		}
		return nil
	}); got != nil {
		t.Fatal(got)
	}
	if err := returns(t, "Members", func() error { v.Members(); return nil }); err != nil {
		t.Fatal(err)
	}
	f.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v.Super().Role != meta.Primary {
		t.Fatal("the update is not in Super after it returned")
	}
}

// waitBlocked polls until n ops are held by f's Hang.
func waitBlocked(t *testing.T, f *fault.Device, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for f.Blocked() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Blocked() = %d, want %d", f.Blocked(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReplaceHungMember: a member whose data write hangs for good is
// failed and replaced: Replace does not wait for the hung call (it
// waited for as long as the disk hung), the new disk takes the member's
// share at once, and the old disk is closed when its call returns.
func TestReplaceHungMember(t *testing.T) {
	t.Parallel()
	ds, names := newMemDisks(t, 3, 4*mib)
	memCreate(t, ds, names[:2], CreateOptions{Chunk: 64 * kib})
	v := hangOpen(t, ds, names[:2], names[1], fault.Write, OpenOptions{})
	dev := blockdev.WithTimeout(v.Data(), testIOTimeout)
	t.Cleanup(func() { dev.Close() })
	_, err := dev.WriteAt(pattern(1, 128*kib), 0)
	if !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("a write on the hung member: %v, want a time-out", err)
	}
	if err := returns(t, "FailMembers", func() error { return v.FailMembers(0b10, err) }); err != nil {
		t.Fatal(err)
	}
	if err := returns(t, "Replace", func() error { return v.Replace(1, names[2], false, nil) }); err != nil {
		t.Fatalf("replacing the hung member: %v", err)
	}
	data := pattern(2, 128*kib) // chunk 1 is the new member's
	if _, err := returns2(t, "a write after the replace", func() (int, error) { return dev.WriteAt(data, 0) }); err != nil {
		t.Fatalf("a write after the replace: %v", err)
	}
	got := make([]byte, len(data))
	if _, err := dev.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back after the replace: %v, equal %v", err, bytes.Equal(got, data))
	}
	lingering := func() int {
		v.ioMu.Lock()
		defer v.ioMu.Unlock()
		return len(v.lingering)
	}
	if lingering() != 1 {
		t.Fatalf("%d replaced members wait for their calls, want the hung one", lingering())
	}
	ds.fault(names[1]).Release()
	deadline := time.Now().Add(time.Minute)
	for lingering() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the replaced disk was not closed after its hung call returned")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// returns2 is returns for a call that also gives a count.
func returns2(t *testing.T, what string, f func() (int, error)) (int, error) {
	t.Helper()
	var n int
	err := returns(t, what, func() error {
		var err error
		n, err = f()
		return err
	})
	return n, err
}
