package volume

import (
	"errors"
	"fmt"
	"sync"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// disk is one opened disk: the O_DIRECT file, and an Aligned view of it
// for metadata I/O (closing the view closes the file).
type disk struct {
	path string
	file *blockdev.File
	meta *blockdev.Aligned
}

// openDisk opens path exclusively, read-only if asked.
func openDisk(path string, readOnly bool) (*disk, error) {
	f, err := blockdev.OpenFile(path, blockdev.FileOptions{ReadOnly: readOnly, Exclusive: true})
	switch {
	case errors.Is(err, blockdev.ErrBusy):
		return nil, &AssembleError{Path: path,
			Reason: "is in use (mounted, or open in another netraid or program); stop whatever holds it first", Err: err}
	case err != nil:
		return nil, &AssembleError{Path: path, Reason: fmt.Sprintf("cannot open: %v", err), Err: err}
	}
	return &disk{path: path, file: f, meta: blockdev.NewAligned(f)}, nil
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
	if d.file.Size() < meta.Slots*meta.SlotSize {
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
	if err := d.file.Flush(); err != nil {
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
