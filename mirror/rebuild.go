package mirror

import (
	"context"
	"fmt"

	"github.com/netraid/netraid/resync"
)

// RebuildOptions say what a rebuild copies.
type RebuildOptions struct {
	// Visit marks the regions to visit (a bitmap of the volume's geometry,
	// usually in memory): those ever written, or dirty.
	Visit *resync.Bitmap
	// Pieces returns the parts of [off, off+n) to copy in a region whose
	// dirty bit is clear: the share of the disk being rebuilt. A dirty
	// region (one the target missed writes to) is copied whole.
	Pieces func(off, n int64) [][2]int64
}

// Rebuild is a Resync of target, a Resyncing leg, that visits the regions
// of o.Visit rather than the dirty ones, and copies only o.Pieces of the
// clean ones: a leg that lost one disk of its stripe gets back that
// disk's share, plus whatever it missed while it was failed. Like a
// resync, it runs while the volume is in use, and target becomes InSync
// at the end.
func (m *Mirror) Rebuild(ctx context.Context, target *Leg, e *resync.Engine, o RebuildOptions) error {
	if o.Visit == nil || o.Visit.VolumeSize() != m.size || o.Visit.RegionSize() != m.bm.RegionSize() || o.Pieces == nil {
		return fmt.Errorf("%w: rebuild needs a visit bitmap of the volume's geometry and a piece function", ErrLeg)
	}
	j, err := m.startResync(ctx, target)
	if err != nil {
		return err
	}
	defer j.release()
	return e.Run(ctx, &rebuildJob{copyJob: j, o: o})
}

// rebuildJob is a copyJob that iterates the visit bitmap and copies only
// the pieces of clean regions.
type rebuildJob struct {
	*copyJob
	o RebuildOptions
}

func (j *rebuildJob) Bitmap() *resync.Bitmap { return j.o.Visit }

// Copy copies region r: whole if the volume's bitmap says the target
// missed a write there, else only the pieces. A write that sets the bit
// after the check also reaches the target (it is Resyncing), so the rest
// of the region needs nothing.
func (j *rebuildJob) Copy(r int64, _ bool) error {
	if j.m.bm.Dirty(r) {
		return j.copyJob.Copy(r, false)
	}
	if err := j.firstErr(); err != nil {
		return err
	}
	off, n := j.m.bm.Span(r)
	pieces := j.o.Pieces(off, n)
	j.async(func() error {
		for _, p := range pieces {
			if err := j.copyRange(p[0], p[1]); err != nil {
				return err
			}
		}
		return nil
	})
	return nil
}
