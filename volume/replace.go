package volume

import (
	"errors"
	"fmt"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// Replace puts the disk at path in the place of member index, while the
// volume runs: the new disk gets the volume's superblock (its own member
// index and disk UUID) and a copy of the bitmaps, and from then on takes
// that member's share of every read and write. Its data area is not
// copied: the caller rebuilds it (the node copies that share from its
// peer), and marks the superblock so until then (update, a function
// applied to the superblock written to every member, does that).
//
// The new disk must open exclusively, be distinct from the other members,
// be large enough, and carry no netraid superblock unless force. The old
// member's disk is closed.
func (v *Volume) Replace(index int, path string, force bool, update func(*meta.Superblock)) error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return errClosed
	}
	if index < 0 || index >= len(v.members) {
		v.mu.Unlock()
		return fmt.Errorf("volume: no member %d (the volume has %d)", index, len(v.members))
	}
	paths := []string{path}
	for i, m := range v.members {
		if i != index {
			paths = append(paths, m.path)
		}
	}
	if err := v.opener.distinct(paths); err != nil {
		v.mu.Unlock()
		return err
	}
	d, err := v.opener.disk(path, false)
	if err != nil {
		v.mu.Unlock()
		return err
	}
	if err := v.takeDisk(index, d, force); err != nil {
		v.mu.Unlock()
		d.close()
		return err
	}
	v.mu.Unlock()
	// The new member holds a copy of the superblock now; the update makes
	// every member's copy current, with the member no longer failed.
	return v.UpdateSuper(func(sb *meta.Superblock) {
		sb.FailedMembers &^= 1 << uint(index)
		if update != nil {
			update(sb)
		}
	})
}

// takeDisk formats d as member index and swaps it in. Callers hold v.mu.
func (v *Volume) takeDisk(index int, d *disk, force bool) error {
	if err := checkBlank(d, force); err != nil {
		return err
	}
	l := v.sb.Layout()
	if need := l.DataOffset + l.MemberDataSize; d.dev.Size() < need {
		return &AssembleError{Path: d.path, Err: ErrTooSmall, Reason: fmt.Sprintf(
			"is too small to replace member %d: %d bytes, it needs %d", index, d.dev.Size(), need)}
	}
	data, bmSec, err := v.sections(index, d)
	if err != nil {
		return err
	}
	sb := v.sb
	sb.Member, sb.DiskUUID = uint32(index), meta.NewUUID()
	// Metadata first, with the bitmaps copied under the bitmap device's
	// exclusive lock so that no bit changes meanwhile.
	if err := v.bm.adopt(index, bmSec, func() error {
		return format([]*disk{d}, l, []*meta.Superblock{&sb})
	}); err != nil {
		data.Close()
		return err
	}
	old, err := v.set.Replace(index, data)
	if err != nil {
		data.Close()
		return err
	}
	prev := v.members[index]
	v.members[index] = &member{disk: d, index: index, uuid: sb.DiskUUID, slot: 0}
	if prev != nil {
		if c, ok := old.(interface{ Close() error }); ok {
			c.Close()
		}
		if err := prev.close(); err != nil {
			v.log.Warn("closing the replaced member", "path", prev.path, "err", err)
		}
	}
	return nil
}

// adopt formats a new member (fmt) and copies the current bitmaps onto
// its bitmap section, then makes sec member index's bitmap copy, all with
// the bitmap device locked against I/O.
func (b *bitmapDev) adopt(index int, sec *blockdev.Section, fmtNew func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	if err := fmtNew(); err != nil {
		return err
	}
	buf := blockdev.GetBuffer(int(b.size), max(b.bs, 4096))
	defer blockdev.PutBuffer(buf)
	var src error = errNoMember
	failed := b.v.failed.Load()
	for i, s := range b.secs {
		if i == index || failed&(1<<uint(i)) != 0 {
			continue
		}
		if _, src = s.ReadAt(buf, 0); src == nil {
			break
		}
	}
	if src != nil {
		return fmt.Errorf("volume: copying the bitmaps to the new member: %w", src)
	}
	if _, err := sec.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("volume: writing the bitmaps to the new member: %w", err)
	}
	if err := sec.Flush(); err != nil {
		return errors.Join(fmt.Errorf("volume: flushing the new member"), err)
	}
	b.secs[index] = sec
	return nil
}
