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
// primary leg (the one reads go to) to the others.
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

func (v *verifier) RepairJob() (resync.Job, error) {
	for _, l := range v.legs {
		if l.State() != InSync {
			return nil, fmt.Errorf("%w: %s is %s, cannot repair", ErrLeg, l.name, l.State())
		}
	}
	return &repairJob{newCopyJob(v.m, v.legs[0], v.legs[1:], false)}, nil
}

// repairJob releases its buffer once finished.
type repairJob struct{ *copyJob }

func (j *repairJob) Finish() error {
	j.release()
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
