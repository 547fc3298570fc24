package mirror

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/resync"
)

// checksumCounter is a leg that computes checksums itself, like an NBD
// client asking its server, and counts them.
type checksumCounter struct {
	*fault.Device
	sums int
}

func (c *checksumCounter) Checksum(off, n int64) (blockdev.Sum, error) {
	c.sums++
	return c.Device.Checksum(off, n)
}

// TestVerifyFindsAndRepairsCorruption: a block corrupted behind the
// mirror's back on one leg is found, and repair copies it from the
// primary.
func TestVerifyFindsAndRepairsCorruption(t *testing.T) {
	r := newRig(t)
	rng := rand.New(rand.NewPCG(12, 12))
	r.write(0, randBytes(rng, volSize/2))
	r.flush()
	// Bit rot on the peer, in regions 5 and 40 (40 was never written).
	for _, off := range []int64{5*rs + 4096, 40*rs + 1} {
		if _, err := r.mem["peer"].WriteAt([]byte{0xde, 0xad}, off); err != nil {
			t.Fatal(err)
		}
	}
	var reports int
	res, err := r.m.Verify(context.Background(), resync.VerifyOptions{Progress: func(resync.Progress) { reports++ }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Mismatched, []int64{5, 40}) || res.Regions != 64 || res.Bytes != volSize || reports == 0 {
		t.Fatalf("verify: %+v after %d reports", res, reports)
	}
	res, err = r.m.Verify(context.Background(), resync.VerifyOptions{UsedOnly: true})
	if err != nil || !slices.Equal(res.Mismatched, []int64{5}) || res.Regions != 32 {
		t.Fatalf("verify of used regions: %+v, %v", res, err)
	}
	res, err = r.m.Verify(context.Background(), resync.VerifyOptions{Repair: true})
	if err != nil || !slices.Equal(res.Mismatched, []int64{5, 40}) {
		t.Fatalf("verify and repair: %+v, %v", res, err)
	}
	r.same("local", "peer")
	if got := r.leg["peer"].Stats().SyncBytes; got != 2*rs {
		t.Fatalf("repair copied %d bytes, want two regions", got)
	}
	if got := dirty(r.bm); len(got) != 0 {
		t.Fatalf("dirty after the repair: %v", got)
	}
	if res, err := r.m.Verify(context.Background(), resync.VerifyOptions{}); err != nil || len(res.Mismatched) != 0 {
		t.Fatalf("verify after repair: %+v, %v", res, err)
	}
	for _, l := range r.m.Legs() {
		if l.State() != InSync {
			t.Fatalf("leg %s is %s", l.Name(), l.State())
		}
	}
}

// TestVerifyAsksLegsForChecksums: a leg that can checksum where its data
// lives is asked to, so the data does not cross the link.
func TestVerifyAsksLegsForChecksums(t *testing.T) {
	r := newRig(t)
	if err := r.m.RemoveLeg(r.leg["peer"]); err != nil {
		t.Fatal(err)
	}
	mem := blockdev.NewMem(volSize)
	remote := &checksumCounter{Device: fault.Wrap(mem)}
	if _, err := r.m.AddLeg("remote", remote, InSync, false); err != nil {
		t.Fatal(err)
	}
	r.fault["peer"].Close()
	if _, err := r.m.Verify(context.Background(), resync.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if remote.sums != 64 || remote.Count(fault.Read) != 64 {
		t.Fatalf("remote computed %d checksums (%d reads), want 64", remote.sums, remote.Count(fault.Read))
	}
}

func TestVerifyNeedsTwoLegsAndFailsALegThatErrs(t *testing.T) {
	r := newRig(t)
	r.fault["peer"].FailAll(fault.Read, errDead)
	var le *LegError
	_, err := r.m.Verify(context.Background(), resync.VerifyOptions{})
	if !errors.As(err, &le) || le.Leg != "peer" || le.Op != "checksum" {
		t.Fatalf("verify with a failing leg: %v", err)
	}
	if r.leg["peer"].State() != Failed {
		t.Fatal("peer not failed")
	}
	if _, err := r.m.Verify(context.Background(), resync.VerifyOptions{}); !errors.Is(err, ErrNoLeg) {
		t.Fatalf("verify with one in-sync leg: %v", err)
	}
}

// TestRepairSurvivesAConcurrentWrite: an application write and flush to a
// region that verify found mismatched, landing after the repair marked the
// region and before it copied it, neither clears the region's dirty bit
// nor keeps the repair from copying it (issue 13, bug 4). The write and
// flush only show that the write reached every leg, not that the rest of
// the region is the same.
func TestRepairSurvivesAConcurrentWrite(t *testing.T) {
	r := newRig(t)
	rng := rand.New(rand.NewPCG(13, 4))
	r.write(0, randBytes(rng, volSize/2))
	r.flush()
	if _, err := r.mem["peer"].WriteAt([]byte{0xde, 0xad}, 5*rs+4096); err != nil {
		t.Fatal(err)
	}
	// The compare reports last with every byte done; the next report is
	// the repair's first, before it copies anything: the application
	// writes elsewhere in region 5 then, and flushes.
	compared, wrote := false, false
	dirtyAfterFlush := false
	progress := func(p resync.Progress) {
		switch {
		case !compared:
			compared = p.Done == volSize
		case !wrote:
			wrote = true
			r.write(5*rs+8192, randBytes(rng, 4096))
			r.flush()
			dirtyAfterFlush = r.bm.Dirty(5)
		}
	}
	res, err := r.m.Verify(context.Background(), resync.VerifyOptions{Repair: true, Progress: progress})
	if err != nil || !slices.Equal(res.Mismatched, []int64{5}) {
		t.Fatalf("verify and repair: %+v, %v", res, err)
	}
	if !wrote {
		t.Fatal("the repair reported no progress: the write did not run")
	}
	if !dirtyAfterFlush {
		t.Error("a write and flush to a region awaiting repair cleaned its dirty bit")
	}
	r.same("local", "peer")
	if res, err := r.m.Verify(context.Background(), resync.VerifyOptions{}); err != nil || len(res.Mismatched) != 0 {
		t.Fatalf("verify after repair: %+v, %v", res, err)
	}
	r.flush()
	if got := dirty(r.bm); len(got) != 0 {
		t.Fatalf("dirty after the repair and a flush: %v", got)
	}
}

// TestRepairCutOffKeepsItsBits: a repair that ends early (its target
// fails) leaves the dirty bits of the regions it did not copy set, for the
// resync that follows, and holds nothing afterwards.
func TestRepairCutOffKeepsItsBits(t *testing.T) {
	r := newRig(t)
	for _, off := range []int64{5 * rs, 40 * rs} {
		if _, err := r.mem["peer"].WriteAt([]byte{0xde, 0xad}, off); err != nil {
			t.Fatal(err)
		}
	}
	progress := func(p resync.Progress) {
		if p.Done == volSize { // the compare is over
			r.fault["peer"].FailAll(fault.Write, errDead)
		}
	}
	var le *LegError
	res, err := r.m.Verify(context.Background(), resync.VerifyOptions{Repair: true, Progress: progress})
	if !errors.As(err, &le) || le.Leg != "peer" || !slices.Equal(res.Mismatched, []int64{5, 40}) {
		t.Fatalf("repair onto a failing leg: %+v, %v", res, err)
	}
	r.m.locks.mu.Lock()
	holds := len(r.m.locks.holds)
	r.m.locks.mu.Unlock()
	if holds != 0 {
		t.Fatalf("%d repairs still hold regions", holds)
	}
	if got := dirty(r.bm); !slices.Equal(got, []int64{5, 40}) {
		t.Fatalf("dirty after a failed repair: %v", got)
	}
}
