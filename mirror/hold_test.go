package mirror

import (
	"bytes"
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

// TestHoldWrites: a write marked while writes are held goes to no leg
// until ReleaseWrites; one held when FailWrites or FailAcks comes fails
// without any leg having seen it, and so do later ones until writes are
// released (FailWrites) or for good (FailAcks freezes the mirror).
func TestHoldWrites(t *testing.T) {
	r := newRig(t)
	data := bytes.Repeat([]byte{7}, 4096)
	sent := func() int { return r.fault["local"].Count(fault.Write) + r.fault["peer"].Count(fault.Write) }
	errStop := errors.New("the node stopped being primary")
	errNoCopy := errors.New("no copy can take the write")
	for i, c := range []struct {
		name string
		end  func()
		want func(error) bool // the held write's outcome
		then func(error) bool // a later write's
	}{
		{"released", r.m.ReleaseWrites,
			func(err error) bool { return err == nil },
			func(err error) bool { return err == nil }},
		{"failed", func() { r.m.FailWrites(errNoCopy) },
			func(err error) bool { return errors.Is(err, errNoCopy) },
			func(err error) bool { return errors.Is(err, errNoCopy) }},
		{"frozen", func() { r.m.FailAcks(errStop) },
			func(err error) bool { var fe *FrozenError; return errors.As(err, &fe) },
			func(err error) bool { var fe *FrozenError; return errors.As(err, &fe) }},
	} {
		off := int64(2*i) * rs
		before := sent()
		r.m.HoldWrites()
		done := make(chan error, 1)
		go func() {
			_, err := r.m.WriteAt(data, off)
			done <- err
		}()
		waitFor(t, c.name+": the write's region marked", func() bool { return r.bm.Dirty(off / rs) })
		if n := sent() - before; n != 0 {
			t.Fatalf("%s: %d leg writes while writes are held", c.name, n)
		}
		c.end()
		err := <-done
		_, later := r.m.WriteAt(data, off+rs)
		n, wantN := sent()-before, 0
		if err == nil {
			wantN = 4 // both writes, on both legs
		}
		if !c.want(err) || !c.then(later) || n != wantN {
			t.Fatalf("%s: the held write %v, a later one %v, %d leg writes (want %d)", c.name, err, later, n, wantN)
		}
		if c.name == "failed" {
			r.m.ReleaseWrites()
			if _, err := r.m.WriteAt(data, off+rs); err != nil || sent()-before != 2 {
				t.Fatalf("failed: once released, a write: %v, %d leg writes", err, sent()-before)
			}
		}
	}
}
