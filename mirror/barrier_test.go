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
	m, err := New(volSize, bm, Options{Logger: quiet, OnLegFailed: func(*Leg, error) {
		close(entered)
		<-release
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
