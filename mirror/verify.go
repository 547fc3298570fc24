package mirror

import (
	"context"
	"fmt"
	"sync"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/resync"
)

// VerifyOptions and VerifyResult are resync's, named here for callers of
// Verify.
type (
	VerifyOptions = resync.VerifyOptions
	VerifyResult  = resync.VerifyResult
)

// Verify compares the in-sync legs region by region by checksum — each leg
// computes its own (blockdev.Checksum), so a remote leg's data does not
// cross the link — with writes to the range being compared held off. With
// o.Repair, mismatched regions are marked dirty and copied again from the
// primary leg (the one reads go to) to the others (see verifier.Repair).
func (m *Mirror) Verify(ctx context.Context, o VerifyOptions) (VerifyResult, error) {
	primary := m.source()
	if primary == nil {
		return VerifyResult{}, fmt.Errorf("%w: nothing to verify", ErrNoLeg)
	}
	legs := []*Leg{primary}
	for _, l := range m.Legs() {
		if l != primary && l.State() == InSync {
			legs = append(legs, l)
		}
	}
	if len(legs) < 2 {
		return VerifyResult{}, fmt.Errorf("%w: verify needs two in-sync legs", ErrNoLeg)
	}
	return resync.Verify(ctx, &verifier{m: m, legs: legs}, o)
}

// verifier is a resync.Verifier over a fixed set of in-sync legs, the
// primary first.
type verifier struct {
	m    *Mirror
	legs []*Leg
}

var _ resync.Verifier = (*verifier)(nil)

func (v *verifier) Bitmap() *resync.Bitmap { return v.m.bm }
func (v *verifier) Busy() bool             { return v.m.busy() }

// Repair copies regions from the primary leg to the others. The regions
// are held (see rangeLocks.hold) before their dirty bits are set, so that
// no cleaning clears a bit before the region is copied; the repair visits
// a set of its own, which no cleaning touches, and clears a region from it
// once copied, after which the next flush cleans the bit as usual.
func (v *verifier) Repair(ctx context.Context, regions []int64, o resync.Options) error {
	for _, l := range v.legs {
		if l.State() != InSync {
			return fmt.Errorf("%w: %s is %s, cannot repair", ErrLeg, l.name, l.State())
		}
	}
	set, err := resync.NewRegionSet(v.m.size, v.m.bm.RegionSize(), regions)
	if err != nil {
		return err
	}
	defer set.Close()
	v.m.locks.hold(set)
	defer v.m.locks.release(set)
	if err := v.m.bm.MarkRegions(regions); err != nil {
		return err
	}
	v.m.log.Info("mirror: repair", "from", v.legs[0].name, "regions", len(regions))
	j := &repairJob{copyJob: newCopyJob(v.m, v.legs[0], v.legs[1:], false), set: set}
	defer j.release()
	return resync.NewEngine(o).Run(ctx, j)
}

// repairJob is a copyJob over a repair's own set of regions.
type repairJob struct {
	*copyJob
	set *resync.Bitmap
}

func (j *repairJob) Bitmap() *resync.Bitmap { return j.set }

// Copy copies region r whole and then clears it from the set: from then
// on a flush may clean its dirty bit (one that begins after the copy, as
// for any copy).
func (j *repairJob) Copy(r int64, _ bool) error {
	if err := j.firstErr(); err != nil {
		return err
	}
	off, n := j.set.Span(r)
	j.async(func() error {
		if err := j.copyRange(off, n); err != nil {
			return err
		}
		j.set.Clean(r, r)
		return nil
	})
	return nil
}

// Compare compares region r chunk by chunk.
func (v *verifier) Compare(r int64) (bool, error) {
	off, n := v.m.bm.Span(r)
	same := true
	for pos := off; pos < off+n; pos += copyChunk {
		ok, err := v.compareChunk(pos, min(copyChunk, off+n-pos))
		if err != nil {
			return false, err
		}
		same = same && ok
	}
	return same, nil
}

func (v *verifier) compareChunk(off, n int64) (bool, error) {
	j := &copyJob{m: v.m, src: v.legs[0], dsts: v.legs[1:]}
	o, s, err := j.lock(off, n)
	if err != nil {
		return false, err
	}
	defer j.unlock(o, s, false)
	sums := make([]blockdev.Sum, len(v.legs))
	errs := make([]error, len(v.legs))
	var wg sync.WaitGroup
	for i, l := range v.legs {
		wg.Go(func() { sums[i], errs[i] = blockdev.Checksum(l.dev, off, n) })
	}
	wg.Wait()
	for i, l := range v.legs {
		if errs[i] != nil {
			return false, l.fail("checksum", off, n, errs[i])
		}
		l.count(kindRead, n)
	}
	for _, s := range sums[1:] {
		if s != sums[0] {
			return false, nil
		}
	}
	return true, nil
}
