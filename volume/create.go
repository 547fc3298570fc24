package volume

import (
	"errors"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// CreateOptions say how Create lays out a new volume.
type CreateOptions struct {
	// Name names the volume: 1 to 64 bytes of [A-Za-z0-9._-].
	Name string
	// Chunk is the stripe chunk size; zero means meta.DefaultChunk.
	Chunk int64
	// Region is the bitmap region size; zero means meta.DefaultRegion
	// (or the chunk size, if larger).
	Region int64
	// Force overwrites disks that already carry a netraid superblock.
	Force bool
	// SetUUID names the member set; zero means a random one.
	SetUUID meta.UUID
	// OpenDisk, if set, opens the disks in place of blockdev.OpenFile
	// (O_DIRECT, exclusive): the paths are then names it understands, and
	// two disks are the same if their names are equal. See OpenFunc.
	OpenDisk OpenFunc
}

// Create makes a new volume of the disks at paths, in member order, and
// returns member 0's superblock. It checks every disk before it writes to
// any: each must open exclusively, appear once, carry no netraid
// superblock unless o.Force, and be large enough. Then it zeroes each
// member's metadata area, flushes, writes both superblock slots and
// flushes again. The data areas are not touched.
func Create(paths []string, o CreateOptions) (*meta.Superblock, error) {
	if err := meta.ValidName(o.Name); err != nil {
		return nil, err
	}
	if len(paths) == 0 || len(paths) > meta.MaxMembers {
		return nil, fmt.Errorf("volume: %d disks given, a volume has 1 to %d", len(paths), meta.MaxMembers)
	}
	op := opener{open: o.OpenDisk}
	if err := op.distinct(paths); err != nil {
		return nil, err
	}
	disks := make([]*disk, len(paths))
	defer closeDisks(disks)
	sizes := make([]int64, len(paths))
	for i, p := range paths {
		d, err := op.disk(p, false)
		if err != nil {
			return nil, err
		}
		disks[i] = d
		if err := checkBlank(d, o.Force); err != nil {
			return nil, err
		}
		sizes[i] = d.dev.Size()
	}
	l, err := meta.PlanLayout(sizes, o.Chunk, o.Region)
	var se *meta.SizeError
	switch {
	case errors.As(err, &se):
		return nil, &AssembleError{Path: paths[se.Disk], Err: ErrTooSmall, Reason: fmt.Sprintf(
			"is too small: %s, a member needs at least %s", humanize.IBytes(uint64(se.Size)), humanize.IBytes(uint64(se.Min)))}
	case err != nil:
		return nil, fmt.Errorf("volume: %w", err)
	}
	supers := newSupers(disks, l, o)
	if err := format(disks, l, supers); err != nil {
		return nil, err
	}
	if err := closeAll(disks); err != nil {
		return nil, err
	}
	return supers[0], nil
}

// checkBlank refuses a disk that carries a netraid superblock, even a
// damaged one, unless force.
func checkBlank(d *disk, force bool) error {
	sb, _, _, err := d.super()
	if force || errors.Is(err, meta.ErrNoSuperblock) {
		return nil
	}
	const use = "use --force to overwrite it"
	switch {
	case err == nil:
		return &AssembleError{Path: d.path, Err: ErrHasSuperblock, Reason: fmt.Sprintf(
			"belongs to netraid volume %q (set %s), member %d of %d; %s",
			sb.Name, sb.SetUUID, sb.Member, sb.Members, use)}
	case errors.Is(err, meta.ErrVersion):
		return &AssembleError{Path: d.path, Err: fmt.Errorf("%w: %w", ErrHasSuperblock, err), Reason: fmt.Sprintf(
			"carries a superblock of a newer netraid format; %s", use)}
	case errors.Is(err, meta.ErrBadChecksum), errors.Is(err, meta.ErrInvalid):
		return &AssembleError{Path: d.path, Err: fmt.Errorf("%w: %w", ErrHasSuperblock, err), Reason: fmt.Sprintf(
			"carries a damaged netraid superblock (%v); %s", err, use)}
	}
	return &AssembleError{Path: d.path, Err: err, Reason: err.Error()}
}

// newSupers returns the superblock of each member of a new volume.
func newSupers(disks []*disk, l meta.Layout, o CreateOptions) []*meta.Superblock {
	set := o.SetUUID
	if set.IsZero() {
		set = meta.NewUUID()
	}
	now := time.Now().Unix()
	out := make([]*meta.Superblock, len(disks))
	for i := range disks {
		sb := &meta.Superblock{
			Seq:         1,
			SetUUID:     set,
			DiskUUID:    meta.NewUUID(),
			Name:        o.Name,
			CreatedUnix: now,
			Member:      uint32(i),
			Role:        meta.Secondary,
			DiskState:   meta.JustCreated,
		}
		sb.SetLayout(l)
		out[i] = sb
	}
	return out
}

// format writes the metadata of a new volume: zeroed superblock slots and
// bitmaps, made durable, then both superblock slots, made durable. If the
// second step fails, it wipes the superblocks it may have written, so that
// no disk is left looking like a member of a half-made volume.
func format(disks []*disk, l meta.Layout, supers []*meta.Superblock) error {
	zero := func(i int, d *disk, n int64) error {
		if err := blockdev.WriteZeroes(d.meta, 0, n, false); err != nil {
			return &MemberError{Member: i, Path: d.path, Op: "metadata zeroing", Off: 0, Len: n, Err: err}
		}
		return d.flush(i)
	}
	area := l.BitmapOffset + 2*l.BitmapBytes
	if err := eachDisk(disks, func(i int, d *disk) error { return zero(i, d, area) }); err != nil {
		return err
	}
	err := eachDisk(disks, func(i int, d *disk) error {
		for slot := range meta.Slots {
			if err := d.writeSuper(i, slot, supers[i]); err != nil {
				return err
			}
		}
		return d.flush(i)
	})
	if err != nil {
		wipe := eachDisk(disks, func(i int, d *disk) error { return zero(i, d, meta.Slots*meta.SlotSize) })
		return errors.Join(err, wipe)
	}
	return nil
}

// closeAll closes every disk and clears the slice, so that the deferred
// closeDisks does nothing more.
func closeAll(disks []*disk) error {
	var errs []error
	for i, d := range disks {
		if err := d.close(); err != nil {
			errs = append(errs, fmt.Errorf("volume: close %s: %w", d.path, err))
		}
		disks[i] = nil
	}
	return errors.Join(errs...)
}
