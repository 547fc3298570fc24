package resync

import (
	"context"
	"fmt"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// Verifier is what Verify drives: a mirror, which implements it.
type Verifier interface {
	// Bitmap is the mirror's bitmap: its used bits select the regions
	// compared with UsedOnly.
	Bitmap() *Bitmap
	// Compare reports whether region r holds the same data on every
	// in-sync leg, comparing checksums each leg computes where its data
	// lives, with writes to the range compared held off meanwhile.
	Compare(r int64) (bool, error)
	// Busy reports whether the application did I/O since the last call.
	Busy() bool
	// Repair copies regions (in order) from the primary leg to the other
	// in-sync legs, paced by an engine of options o. Before it copies
	// anything it makes their dirty bits durable, and until a region's
	// copy is done and flushed nothing clears its bit — not the cleaning
	// after a write and flush to it, which says nothing of the rest of
	// the region — so a repair cut off is resumed by the next resync.
	Repair(ctx context.Context, regions []int64, o Options) error
}

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// UsedOnly compares only regions that were ever written (the used
	// bitmap's); otherwise every region is compared.
	UsedOnly bool
	// Repair copies mismatched regions again from the primary leg
	// (Verifier.Repair).
	Repair bool
	// Rate, Adaptive and FloorRate pace the compare (and the repair) as
	// they pace a resync.
	Rate      int64
	Adaptive  bool
	FloorRate int64
	// Progress, if set, is called after every BatchBytes compared
	// (DefaultBatchBytes if zero) and at the end; a repair reports its
	// own progress through it afterwards.
	Progress   func(Progress)
	BatchBytes int64
}

// VerifyResult is what Verify found.
type VerifyResult struct {
	// Regions is how many regions were compared, Bytes how many bytes
	// (on each leg).
	Regions int64
	Bytes   int64
	// Mismatched lists the regions whose copies differ, in order.
	Mismatched []int64
}

// Verify compares the in-sync legs of v region by region and, with Repair,
// has v copy the mismatched regions again from the primary leg. It returns
// what it found so far along with any error.
func Verify(ctx context.Context, v Verifier, o VerifyOptions) (VerifyResult, error) {
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	bm := v.Bitmap()
	p := newPacer(o.Rate, o.FloorRate, o.Adaptive)
	m := meter{start: time.Now()}
	total := bm.VolumeSize()
	if o.UsedOnly {
		total = bm.UsedBytes()
	}
	var res VerifyResult
	report := func() {
		if o.Progress != nil {
			o.Progress(m.progress(time.Now(), res.Bytes, total, 0))
		}
	}
	var batch int64
	for r := range bm.Regions() {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if o.UsedOnly && !bm.Used(r) {
			continue
		}
		_, n := bm.Span(r)
		if err := p.wait(ctx, n, v.Busy(), func(bool) {}); err != nil {
			return res, err
		}
		same, err := v.Compare(r)
		if err != nil {
			return res, fmt.Errorf("resync: verify region %d: %w", r, err)
		}
		res.Regions++
		res.Bytes += n
		if !same {
			res.Mismatched = append(res.Mismatched, r)
		}
		if batch += n; batch >= o.BatchBytes {
			batch = 0
			report()
		}
	}
	report()
	if !o.Repair || len(res.Mismatched) == 0 {
		return res, nil
	}
	err := v.Repair(ctx, res.Mismatched, Options{Rate: o.Rate, Adaptive: o.Adaptive, FloorRate: o.FloorRate, Progress: o.Progress, BatchBytes: o.BatchBytes})
	if err != nil {
		return res, fmt.Errorf("resync: repair: %w", err)
	}
	return res, nil
}

// NewRegionSet returns a bitmap in memory of the given geometry whose
// dirty bits are regions (in order): the set a Job visits when it is not
// the volume's dirty regions (a repair's, a rebuild's). Close it after.
func NewRegionSet(volSize, regionSize int64, regions []int64) (*Bitmap, error) {
	set, err := OpenBitmap(blockdev.NewMem(StoreSize(volSize, regionSize)), volSize, regionSize, BitmapOptions{})
	if err != nil {
		return nil, err
	}
	if err := set.MarkRegions(regions); err != nil {
		set.Close()
		return nil, err
	}
	return set, nil
}
