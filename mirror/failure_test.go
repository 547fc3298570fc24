package mirror

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
)

// TestFailedLegKeepsTheVolumeServing: a leg that fails writes is failed
// once; the volume goes on through the other, and the bits stay set.
func TestFailedLegKeepsTheVolumeServing(t *testing.T) {
	r := newRig(t)
	rng := rand.New(rand.NewPCG(3, 4))
	base := randBytes(rng, volSize)
	r.write(0, base)
	r.flush()
	if d := dirty(r.bm); len(d) != 0 {
		t.Fatalf("dirty after a flush with both legs in sync: %v", d)
	}
	r.fault["peer"].FailAll(fault.Write, errDead)
	p := randBytes(rng, 3*rs)
	r.write(5*rs+100, p) // regions 5-8
	copy(base[5*rs+100:], p)
	r.write(20*rs, p[:10])
	copy(base[20*rs:], p[:10])
	r.flush()
	peer := r.leg["peer"]
	if peer.State() != Failed {
		t.Fatalf("peer is %s", peer.State())
	}
	var le *LegError
	if !errors.As(peer.Err(), &le) || le.Leg != "peer" || le.Op != "write" || le.Off != 5*rs+100 || !errors.Is(le, errDead) {
		t.Fatalf("peer.Err() = %v", peer.Err())
	}
	if got := r.failedLegs(); !slices.Equal(got, []string{"peer"}) {
		t.Fatalf("OnLegFailed calls: %v, want one for peer", got)
	}
	if got, want := dirty(r.bm), []int64{5, 6, 7, 8, 20}; !slices.Equal(got, want) {
		t.Fatalf("dirty after flushes with a failed leg: %v, want %v", got, want)
	}
	got := make([]byte, volSize)
	if _, err := r.m.ReadAt(got, 0); err != nil || !bytes.Equal(got, base) {
		t.Fatalf("read back through the surviving leg: %v, equal %v", err, bytes.Equal(got, base))
	}
	if s := r.m.Status(); s.DirtyRegions != 5 || s.Legs[1].State != Failed || s.Legs[1].Stats.Errors != 1 {
		t.Fatalf("status %+v", s)
	}
	// The last in-sync leg fails: the write fails with its LegError.
	r.fault["local"].FailAll(fault.Write, errDead)
	_, err := r.m.WriteAt(p, 0)
	if !errors.As(err, &le) || le.Leg != "local" || le.Op != "write" {
		t.Fatalf("write with every leg dead: %v, want the local leg's *LegError", err)
	}
	if _, err := r.m.WriteAt(p, 0); !errors.Is(err, ErrNoLeg) {
		t.Fatalf("write with no leg left: %v, want ErrNoLeg", err)
	}
}

func TestBothLegsFailingInOneWrite(t *testing.T) {
	r := newRig(t)
	r.fault["local"].FailAll(fault.Write, errDead)
	r.fault["peer"].FailAll(fault.Write, errDead)
	_, err := r.m.WriteAt([]byte{1}, 0)
	var names []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var le *LegError
		if !errors.As(e, &le) {
			t.Fatalf("%v is not a *LegError", e)
		}
		names = append(names, le.Leg)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"local", "peer"}) {
		t.Fatalf("errors for legs %v", names)
	}
}

func TestReadFailsOver(t *testing.T) {
	r := newRig(t)
	r.write(0, []byte("hello"))
	r.fault["local"].FailAll(fault.Read, errDead)
	got := make([]byte, 5)
	if _, err := r.m.ReadAt(got, 0); err != nil || string(got) != "hello" {
		t.Fatalf("ReadAt = %q, %v", got, err)
	}
	if r.leg["local"].State() != Failed || r.leg["peer"].State() != InSync {
		t.Fatal("the leg that failed the read was not failed")
	}
	if s := r.leg["peer"].Stats(); s.Reads != 1 || s.ReadBytes != 5 {
		t.Fatalf("peer stats %+v", s)
	}
	r.fault["peer"].FailAll(fault.Read, errDead)
	var le *LegError
	if _, err := r.m.ReadAt(got, 0); !errors.As(err, &le) || le.Leg != "peer" {
		t.Fatalf("ReadAt with every leg failing: %v", err)
	}
}

func TestReadsPreferLocalAndNeverResyncing(t *testing.T) {
	r := newRig(t)
	r.add("spare", Resyncing, true)
	r.write(0, []byte("x"))
	for range 3 {
		if _, err := r.m.ReadAt(make([]byte, 1), 0); err != nil {
			t.Fatal(err)
		}
	}
	if r.fault["local"].Count(fault.Read) != 3 || r.fault["peer"].Count(fault.Read) != 0 || r.fault["spare"].Count(fault.Read) != 0 {
		t.Fatalf("reads: local %d peer %d spare %d", r.fault["local"].Count(fault.Read),
			r.fault["peer"].Count(fault.Read), r.fault["spare"].Count(fault.Read))
	}
	if r.fault["spare"].Count(fault.Write) != 1 {
		t.Fatal("the resyncing leg did not get the write")
	}
}

func TestFlushFailurePolicy(t *testing.T) {
	r := newRig(t)
	r.write(0, []byte{1})
	r.fault["peer"].FailAll(fault.Flush, errDead)
	if err := r.m.Flush(); err != nil {
		t.Fatalf("Flush with one leg failing: %v", err)
	}
	if r.leg["peer"].State() != Failed {
		t.Fatal("peer not failed by its flush error")
	}
	if !r.bm.Dirty(0) {
		t.Fatal("cleaned a region after a flush that failed on a leg")
	}
	r.fault["local"].FailAll(fault.Flush, errDead)
	var le *LegError
	if err := r.m.Flush(); !errors.As(err, &le) || le.Op != "flush" {
		t.Fatalf("Flush with every leg failing: %v", err)
	}
}

// TestCleaningIsExact: a flush cleans the regions whose writes completed
// before it, never one with a write in flight.
func TestCleaningIsExact(t *testing.T) {
	r := newRig(t)
	r.write(6*rs, []byte{6})
	r.fault["peer"].Hang(fault.Write)
	t.Cleanup(r.fault["peer"].Release) // a failing test must not leave Close waiting
	done := make(chan error, 1)
	go func() {
		_, err := r.m.WriteAt([]byte{5}, 5*rs)
		done <- err
	}()
	waitFor(t, "the write to hang on the peer", func() bool { return r.fault["peer"].Blocked() == 1 })
	r.flush()
	if got := dirty(r.bm); !slices.Equal(got, []int64{5}) {
		t.Fatalf("dirty after a flush with region 5 in flight: %v, want [5]", got)
	}
	r.fault["peer"].Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !r.bm.Dirty(5) {
		t.Fatal("region 5 cleaned before a flush")
	}
	r.flush()
	if got := dirty(r.bm); len(got) != 0 {
		t.Fatalf("dirty after the last flush: %v", got)
	}
}

func TestRemoveLegWaitsForItsIO(t *testing.T) {
	r := newRig(t)
	r.fault["peer"].Hang(fault.Write)
	t.Cleanup(r.fault["peer"].Release) // a failing test must not leave Close waiting
	wrote := make(chan error, 1)
	go func() {
		_, err := r.m.WriteAt([]byte{1}, 0)
		wrote <- err
	}()
	waitFor(t, "the write to hang", func() bool { return r.fault["peer"].Blocked() == 1 })
	removed := make(chan error, 1)
	go func() { removed <- r.m.RemoveLeg(r.leg["peer"]) }()
	waitFor(t, "the peer to leave the leg list", func() bool { return len(r.m.Legs()) == 1 })
	select {
	case err := <-removed:
		t.Fatalf("RemoveLeg returned (%v) with a write in flight on the leg", err)
	default:
	}
	r.fault["peer"].Release()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if err := r.m.RemoveLeg(r.leg["peer"]); !errors.Is(err, ErrLeg) {
		t.Fatalf("second RemoveLeg: %v", err)
	}
	r.fault["peer"].Close()
}

// TestReadBufferFailsOver: ReadBuffer reads as ReadAt does, the other leg
// taking over from one that fails.
func TestReadBufferFailsOver(t *testing.T) {
	r := newRig(t)
	r.write(0, []byte("hello"))
	buf, err := r.m.ReadBuffer(5, 0)
	if err != nil || string(buf) != "hello" {
		t.Fatalf("ReadBuffer = %q, %v", buf, err)
	}
	blockdev.PutBuffer(buf)
	r.fault["local"].FailAll(fault.Read, errDead)
	buf, err = r.m.ReadBuffer(5, 0)
	if err != nil || string(buf) != "hello" {
		t.Fatalf("ReadBuffer with the local leg failing = %q, %v", buf, err)
	}
	blockdev.PutBuffer(buf)
	if r.leg["local"].State() != Failed || r.leg["peer"].State() != InSync {
		t.Fatal("the leg that failed the read was not failed")
	}
	r.fault["peer"].FailAll(fault.Read, errDead)
	var le *LegError
	if buf, err := r.m.ReadBuffer(5, 0); !errors.As(err, &le) || le.Leg != "peer" || buf != nil {
		t.Fatalf("ReadBuffer with every leg failing = %d bytes, %v", len(buf), err)
	}
	if _, err := r.m.ReadBuffer(5, r.m.Size()); err == nil {
		t.Fatal("ReadBuffer past the end succeeded")
	}
}
