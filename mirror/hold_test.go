package mirror

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev/fault"
)

// TestHold: Hold waits for the operations in flight, keeps new ones from
// starting until it is released, and refuses a second hold meanwhile.
func TestHold(t *testing.T) {
	r := newRig(t)
	r.fault["peer"].Hang(fault.Write)
	inflight := make(chan error, 1)
	go func() {
		_, err := r.m.WriteAt(make([]byte, 4096), 0)
		inflight <- err
	}()
	for r.fault["peer"].Blocked() == 0 {
		time.Sleep(time.Millisecond)
	}
	held := make(chan func(), 1)
	go func() {
		release, err := r.m.Hold(context.Background())
		if err != nil {
			t.Error(err)
		}
		held <- release
	}()
	select {
	case <-held:
		t.Fatal("Hold returned while a write was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	r.fault["peer"].Release()
	r.fault["peer"].Heal()
	if err := <-inflight; err != nil {
		t.Fatal(err)
	}
	release := <-held
	if _, err := r.m.Hold(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second Hold: %v, want ErrBusy", err)
	}
	later := make(chan error, 1)
	go func() {
		_, err := r.m.WriteAt(make([]byte, 4096), 4096)
		later <- err
	}()
	select {
	case err := <-later:
		t.Fatalf("a write ran during the hold (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-later; err != nil {
		t.Fatal(err)
	}
}

// TestHoldContext: a Hold whose context ends before the operations in
// flight do returns the context's error and holds nothing.
func TestHoldContext(t *testing.T) {
	r := newRig(t)
	r.fault["peer"].Hang(fault.Write)
	done := make(chan struct{})
	go func() {
		r.m.WriteAt(make([]byte, 4096), 0)
		close(done)
	}()
	for r.fault["peer"].Blocked() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.m.Hold(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hold = %v, want context.Canceled", err)
	}
	r.fault["peer"].Release()
	r.fault["peer"].Heal()
	<-done
	if _, err := r.m.WriteAt(make([]byte, 4096), 8192); err != nil {
		t.Fatalf("a write after the failed hold: %v", err)
	}
}
