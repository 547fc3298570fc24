package fault_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errInjected = errors.New("injected")

// plain hides every optional ability of the device it holds, so that the
// fallbacks run.
type plain struct{ blockdev.Device }

func TestConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		return fault.Wrap(blockdev.NewMem(size))
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}

func TestConformanceWithoutAbilities(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		return fault.Wrap(plain{blockdev.NewMem(size)})
	}, devtest.Options{Unaligned: true})
}

// wrapped returns a fault device over a fresh Mem, closed at the end.
func wrapped(t *testing.T, size int64) (*fault.Device, *blockdev.Mem) {
	t.Helper()
	m := blockdev.NewMem(size)
	f := fault.Wrap(m)
	t.Cleanup(func() { f.Close() })
	return f, m
}

func TestFailNth(t *testing.T) {
	f, _ := wrapped(t, 1<<16)
	p := make([]byte, 512)
	f.FailNth(fault.Write, 2, errInjected)
	f.FailNth(fault.Read, 0, errInjected)
	for i := range 5 {
		_, err := f.WriteAt(p, 0)
		if got, want := err != nil, i == 2; got != want {
			t.Fatalf("write %d: err = %v, want failure %v", i, err, want)
		}
		if err != nil && !errors.Is(err, errInjected) {
			t.Fatalf("write %d: err = %v, want it to wrap the injected error", i, err)
		}
	}
	if _, err := f.ReadAt(p, 0); !errors.Is(err, errInjected) {
		t.Fatalf("first read: %v, want injected", err)
	}
	if _, err := f.ReadAt(p, 0); err != nil {
		t.Fatalf("second read: %v", err)
	}
	if got := f.Count(fault.Write); got != 5 {
		t.Errorf("Count(Write) = %d, want 5", got)
	}
	if got := f.Count(fault.Any); got != 7 {
		t.Errorf("Count(Any) = %d, want 7", got)
	}
}

func TestFailNthTwoRules(t *testing.T) {
	f, _ := wrapped(t, 1<<16)
	errA, errB := errors.New("a"), errors.New("b")
	f.FailNth(fault.Any, 0, errA)
	f.FailNth(fault.Any, 1, errB)
	if err := f.Flush(); !errors.Is(err, errA) {
		t.Fatalf("op 0: %v, want a", err)
	}
	if err := f.Flush(); !errors.Is(err, errB) {
		t.Fatalf("op 1: %v, want b", err)
	}
	if err := f.Flush(); err != nil {
		t.Fatalf("op 2: %v", err)
	}
}

func TestFailAfterAndHeal(t *testing.T) {
	f, m := wrapped(t, 1<<16)
	f.FailAfter(fault.Write, 2, errInjected)
	p := bytes.Repeat([]byte{7}, 512)
	for i := range 6 {
		_, err := f.WriteAt(p, int64(i)*512)
		if got, want := err != nil, i >= 2; got != want {
			t.Fatalf("write %d: err = %v, want failure %v", i, err, want)
		}
	}
	if err := f.Flush(); err != nil {
		t.Fatalf("Flush is not a write: %v", err)
	}
	// The failed writes reached nothing.
	data := m.Bytes()
	if !bytes.Equal(data[:1024], bytes.Repeat([]byte{7}, 1024)) || !bytes.Equal(data[1024:3072], make([]byte, 2048)) {
		t.Fatal("failed writes changed the device")
	}
	f.Heal()
	if _, err := f.WriteAt(p, 0); err != nil {
		t.Fatalf("write after Heal: %v", err)
	}
}

func TestFailAll(t *testing.T) {
	f, _ := wrapped(t, 1<<16)
	f.FailAll(fault.Any, errInjected)
	p := make([]byte, 512)
	checks := map[string]error{
		"flush": f.Flush(),
		"trim":  f.Trim(0, 512),
		"zero":  f.WriteZeroes(0, 512, false),
	}
	_, checks["read"] = f.ReadAt(p, 0)
	_, checks["write"] = f.WriteAt(p, 0)
	_, checks["fua"] = f.WriteAtFUA(p, 0)
	_, checks["map"] = f.Map(0, 512)
	_, checks["checksum"] = f.Checksum(0, 512)
	for name, err := range checks {
		if !errors.Is(err, errInjected) {
			t.Errorf("%s: %v, want the injected error", name, err)
		}
	}
	f.Heal()
	if err := f.Flush(); err != nil {
		t.Fatalf("after Heal: %v", err)
	}
}

func TestTearNextWrite(t *testing.T) {
	f, m := wrapped(t, 1<<16)
	old := devtest.Pattern(1, 0, 4096)
	if _, err := f.WriteAt(old, 0); err != nil {
		t.Fatal(err)
	}
	f.TearNextWrite(1000)
	next := devtest.Pattern(2, 0, 4096)
	n, err := f.WriteAt(next, 0)
	if !errors.Is(err, fault.ErrTorn) || n != 1000 {
		t.Fatalf("torn write = %d, %v; want 1000, ErrTorn", n, err)
	}
	want := append(append([]byte(nil), next[:1000]...), old[1000:]...)
	if got := m.Bytes()[:4096]; !bytes.Equal(got, want) {
		t.Fatal("torn write did not write exactly its first 1000 bytes")
	}
	if _, err := f.WriteAt(next, 0); err != nil {
		t.Fatalf("write after the torn one: %v", err)
	}
}

// waitBlocked polls until n ops are held by Hang or Slow.
func waitBlocked(t *testing.T, f *fault.Device, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.Blocked() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Blocked() = %d, want %d", f.Blocked(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHangRelease(t *testing.T) {
	f, m := wrapped(t, 1<<16)
	f.Hang(fault.Write)
	p := bytes.Repeat([]byte{9}, 512)
	done := make(chan error, 1)
	go func() {
		_, err := f.WriteAt(p, 0)
		done <- err
	}()
	waitBlocked(t, f, 1)
	if err := f.Flush(); err != nil {
		t.Fatalf("a flush does not hang on a write hang: %v", err)
	}
	if m.Bytes()[0] != 0 {
		t.Fatal("hanging write reached the device")
	}
	f.Release()
	if err := <-done; err != nil {
		t.Fatalf("released write: %v", err)
	}
	if m.Bytes()[0] != 9 {
		t.Fatal("released write did not reach the device")
	}
	if _, err := f.WriteAt(p, 0); err != nil {
		t.Fatalf("write after Release: %v", err)
	}
}

func TestHangAndSlowEndAtClose(t *testing.T) {
	m := blockdev.NewMem(1 << 16)
	f := fault.Wrap(m)
	f.Hang(fault.Read)
	f.Slow(fault.Flush, time.Hour)
	errs := make(chan error, 2)
	go func() {
		_, err := f.ReadAt(make([]byte, 512), 0)
		errs <- err
	}()
	go func() { errs <- f.Flush() }()
	waitBlocked(t, f, 2)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, blockdev.ErrClosed) {
			t.Fatalf("op held at Close: %v, want ErrClosed", err)
		}
	}
	if _, err := m.ReadAt(make([]byte, 1), 0); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("wrapped device not closed: %v", err)
	}
}

func TestSlow(t *testing.T) {
	f, _ := wrapped(t, 1<<16)
	f.Slow(fault.Any, time.Millisecond)
	if _, err := f.WriteAt(make([]byte, 512), 0); err != nil {
		t.Fatalf("slow write: %v", err)
	}
	f.Slow(fault.Any, 0)
	if f.Blocked() != 0 {
		t.Fatalf("Blocked() = %d after the op ended", f.Blocked())
	}
}
