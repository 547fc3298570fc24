package mirror

import (
	"errors"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/resync"
)

// TestWriteWaitsForFailureCallback: a leg fails and OnLegFailed is slow
// (the node persists a new data generation there); a write that starts
// meanwhile, and so skips the failed leg, must not be answered before the
// callback returns.
func TestWriteWaitsForFailureCallback(t *testing.T) {
	st := newStore()
	bm, err := resync.OpenBitmap(st, volSize, rs, resync.BitmapOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer bm.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	m, err := New(volSize, bm, Options{Logger: quiet, OnLegFailed: func(*Leg, error) error {
		close(entered)
		<-release
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	peer := fault.Wrap(blockdev.NewMem(volSize))
	if _, err := m.AddLeg("local", blockdev.NewMem(volSize), InSync, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddLeg("peer", peer, InSync, false); err != nil {
		t.Fatal(err)
	}
	dead := errors.New("link down")
	peer.FailAll(fault.Write, dead)

	first := make(chan error, 1)
	go func() { _, err := m.WriteAt(make([]byte, 4096), 0); first <- err }()
	<-entered
	second := make(chan error, 1)
	go func() { _, err := m.WriteAt(make([]byte, 4096), 1<<20); second <- err }()
	select {
	case err := <-second:
		close(release)
		<-first
		t.Fatalf("a write was answered (err %v) while the leg failure was still being recorded", err)
	case err := <-first:
		close(release)
		<-second
		t.Fatalf("the failing write was answered (err %v) before its callback returned", err)
	case <-time.After(200 * time.Millisecond):
		// Neither may answer until the callback returns; this only bounds
		// how long the test looks for a premature answer.
	}
	close(release)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatalf("write through the surviving leg: %v", err)
		}
	}
}

// TestFrozenWhenFailureNotRecorded: when OnLegFailed cannot record the
// failure, neither the write that saw it nor any later operation is
// answered as a success.
func TestFrozenWhenFailureNotRecorded(t *testing.T) {
	st := newStore()
	bm, err := resync.OpenBitmap(st, volSize, rs, resync.BitmapOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer bm.Close()
	unrecorded := errors.New("cannot record a new generation")
	m, err := New(volSize, bm, Options{Logger: quiet, OnLegFailed: func(*Leg, error) error { return unrecorded }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	peer := fault.Wrap(blockdev.NewMem(volSize))
	if _, err := m.AddLeg("local", blockdev.NewMem(volSize), InSync, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddLeg("peer", peer, InSync, false); err != nil {
		t.Fatal(err)
	}
	peer.FailAll(fault.Write, errors.New("link down"))
	if _, err := m.WriteAt(make([]byte, 4096), 0); !errors.Is(err, ErrFrozen) || !errors.Is(err, unrecorded) {
		t.Fatalf("the write that failed the leg: %v, want ErrFrozen with the callback's error", err)
	}
	if _, err := m.WriteAt(make([]byte, 4096), 1<<20); !errors.Is(err, ErrFrozen) {
		t.Fatalf("a later write: %v, want ErrFrozen", err)
	}
	if err := m.Flush(); !errors.Is(err, ErrFrozen) {
		t.Fatalf("a later flush: %v, want ErrFrozen", err)
	}
}

// TestHoldAcks: while answers are held, an application write that
// succeeded on its legs waits; released for every reason that held it,
// it is answered; failed, it and every later one fail.
func TestHoldAcks(t *testing.T) {
	r := newRig(t)
	r.m.HoldAcks("a")
	r.m.HoldAcks("b")
	r.m.HoldAcks("a")
	if !r.m.AcksHeld() {
		t.Fatal("AcksHeld is false after HoldAcks")
	}
	done := make(chan error, 1)
	go func() { _, err := r.m.WriteAt(make([]byte, 4096), 0); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a write was answered (%v) while answers were held", err)
	case <-time.After(100 * time.Millisecond):
	}
	r.m.ReleaseAcks("a")
	if !r.m.AcksHeld() {
		t.Fatal("AcksHeld is false with one of two reasons released")
	}
	select {
	case err := <-done:
		t.Fatalf("a write was answered (%v) while one reason of two still held it", err)
	default:
	}
	r.m.ReleaseAcks("b")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.m.HoldAcks("a")
	go func() { done <- r.m.Flush() }()
	fenced := errors.New("fenced")
	r.m.FailAcks(fenced)
	if err := <-done; !errors.Is(err, fenced) {
		t.Fatalf("a held flush after FailAcks: %v, want the error", err)
	}
	if _, err := r.m.WriteAt(make([]byte, 4096), 0); !errors.Is(err, ErrFrozen) {
		t.Fatalf("a later write: %v, want ErrFrozen", err)
	}
}
