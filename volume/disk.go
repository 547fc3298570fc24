package volume

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// OpenFunc opens a member disk for Create, Open and Replace: path names
// it, and readOnly asks for a device that refuses writes. The device must
// keep the blockdev.Device contract; optional abilities (block size, FUA,
// write zeroes...) are found by type assertion, as everywhere.
type OpenFunc func(path string, readOnly bool) (blockdev.Device, error)

// opener opens member disks and tells them apart: with the default (nil
// open) a path is a file or block device, opened with O_DIRECT and
// exclusively, and two paths are the same disk if they reach the same
// inode or device; with a custom open function a path is an opaque name,
// and two names are the same disk if they are equal.
type opener struct {
	open OpenFunc
	// timeout, if positive, bounds every metadata I/O of a disk (see
	// disk.meta); the Volume bounds data I/O with it too.
	timeout time.Duration
}

// distinct refuses a list in which one disk appears twice.
func (o opener) distinct(paths []string) error {
	if o.open == nil {
		return checkDistinct(paths)
	}
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		if seen[p] {
			return &AssembleError{Path: p, Reason: "is given twice; give each disk once", Err: ErrDuplicate}
		}
		seen[p] = true
	}
	return nil
}

// disk opens path, read-only if asked.
func (o opener) disk(path string, readOnly bool) (*disk, error) {
	var dev blockdev.Device
	var err error
	if o.open == nil {
		dev, err = blockdev.OpenFile(path, blockdev.FileOptions{ReadOnly: readOnly, Exclusive: true})
	} else if dev, err = o.open(path, readOnly); err == nil && dev == nil {
		err = errors.New("the open function returned no device")
	}
	switch {
	case errors.Is(err, blockdev.ErrBusy):
		return nil, &AssembleError{Path: path,
			Reason: "is in use (mounted, or open in another netraid or program); stop whatever holds it first", Err: err}
	case err != nil:
		return nil, &AssembleError{Path: path, Reason: fmt.Sprintf("cannot open: %v", err), Err: err}
	}
	d := &disk{path: path, dev: dev, mdev: dev}
	if o.timeout > 0 {
		d.mdev = blockdev.WithTimeout(dev, o.timeout)
	}
	d.meta = blockdev.NewAligned(d.mdev)
	return d, nil
}

// disk is one opened disk. Metadata I/O (superblocks, bitmaps, flushes)
// goes through mdev, which bounds each call's time if the volume has an
// I/O time-out; data I/O goes through a section of dev, bounded apart
// (Volume.dataDev).
type disk struct {
	path string
	dev  blockdev.Device
	mdev blockdev.Device   // dev, or dev with a time-out
	meta *blockdev.Aligned // aligned view of mdev; closing it closes dev
}

func (d *disk) close() error { return d.meta.Close() }

// closeDisks closes every disk, for the error paths of Create and Open.
func closeDisks(ds []*disk) {
	for _, d := range ds {
		if d != nil {
			d.close()
		}
	}
}

// super reads both superblock slots and picks the newest valid one. It
// also returns the error of the other slot if that one is damaged, so that
// the caller can warn of a torn write.
func (d *disk) super() (sb *meta.Superblock, slot int, other error, err error) {
	if d.dev.Size() < meta.Slots*meta.SlotSize {
		return nil, 0, nil, meta.ErrNoSuperblock
	}
	b := make([]byte, meta.Slots*meta.SlotSize)
	if _, err := d.meta.ReadAt(b, 0); err != nil {
		return nil, 0, nil, fmt.Errorf("volume: read superblocks of %s: %w", d.path, err)
	}
	a, c := b[:meta.SlotSize], b[meta.SlotSize:]
	sb, slot, err = meta.Pick(a, c)
	if err != nil {
		return nil, 0, nil, err
	}
	if _, err := meta.Decode([][]byte{a, c}[1-slot]); err != nil && !errors.Is(err, meta.ErrBadMagic) {
		other = err
	}
	return sb, slot, other, nil
}

// superError turns a failure to find a superblock into an AssembleError
// that says what to do.
func superError(path string, err error) error {
	switch {
	case errors.Is(err, meta.ErrVersion):
		return &AssembleError{Path: path, Err: err, Reason: fmt.Sprintf(
			"has a superblock of a newer netraid format than this build reads (%d): %v; use a newer netraid", meta.FormatVersion, err)}
	case errors.Is(err, meta.ErrNoSuperblock):
		return &AssembleError{Path: path, Err: ErrNotMember,
			Reason: "is not a netraid member (no superblock); run netraid create to make one"}
	case errors.Is(err, meta.ErrBadChecksum):
		return &AssembleError{Path: path, Err: err,
			Reason: "has a damaged netraid superblock (bad checksum in both slots); check the disk, or rebuild it from the peer"}
	case errors.Is(err, meta.ErrInvalid):
		return &AssembleError{Path: path, Err: err, Reason: fmt.Sprintf("has an invalid netraid superblock: %v", err)}
	}
	return &AssembleError{Path: path, Err: err, Reason: err.Error()}
}

// writeSuper writes sb to the given slot of member i (not flushed).
func (d *disk) writeSuper(i, slot int, sb *meta.Superblock) error {
	off := meta.SlotOffset(slot)
	if _, err := d.meta.WriteAt(sb.Encode(), off); err != nil {
		return &MemberError{Member: i, Path: d.path, Op: "superblock write", Off: off, Len: meta.SlotSize, Err: err}
	}
	return nil
}

// flush makes member i's writes durable.
func (d *disk) flush(i int) error {
	if err := d.meta.Flush(); err != nil {
		return &MemberError{Member: i, Path: d.path, Op: "flush", Err: err}
	}
	return nil
}

// eachDisk runs f on every disk in parallel, the caller's goroutine taking
// the first, and joins the errors in disk order.
func eachDisk(disks []*disk, f func(i int, d *disk) error) error {
	errs := make([]error, len(disks))
	var wg sync.WaitGroup
	for i := 1; i < len(disks); i++ {
		wg.Go(func() { errs[i] = f(i, disks[i]) })
	}
	if len(disks) > 0 {
		errs[0] = f(0, disks[0])
	}
	wg.Wait()
	return errors.Join(errs...)
}
