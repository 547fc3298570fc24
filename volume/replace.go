package volume

import (
	"fmt"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// Replace puts the disk at path in the place of member index, while the
// volume runs: the new disk gets the volume's superblock (its own member
// index and disk UUID) and the bitmaps, and from then on takes that
// member's share of every read and write. Its data area is not copied:
// the caller rebuilds it (the node copies that share from its peer), and
// marks the superblock so until then: update, if not nil, edits the
// superblock that the new disk starts with and that then goes to every
// member, as UpdateSuper's fn does. The member is no longer failed.
//
// The new disk must open exclusively, be distinct from the other members,
// be large enough, and carry no netraid superblock unless force. It gets
// its bitmaps, then its superblock, each made durable before the next
// step, so that a crash at any point leaves it either no member at all or
// a member with the bitmaps and the updated superblock, the newest. The
// old member's disk is closed. Replace works when every member has
// failed, a volume of one member included: the bitmaps come from the
// copy the volume keeps in memory.
//
// It returns an error, and changes nothing, if the new disk fails before
// it is in place; after that, as UpdateSuper: nil once the update is
// durable on a member not failed (the new disk may have failed in it,
// then OnMemberFailed reports it), ErrNoMemberLeft if none is left.
func (v *Volume) Replace(index int, path string, force bool, update func(*meta.Superblock)) error {
	var fs []failure
	defer func() { v.report(fs) }()
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.closed:
		return errClosed
	case v.readOnly:
		return fmt.Errorf("volume: replace: %w", blockdev.ErrReadOnly)
	case index < 0 || index >= len(v.members):
		return fmt.Errorf("volume: no member %d (the volume has %d)", index, len(v.members))
	}
	bit := uint64(1) << uint(index)
	next := v.sb
	next.FailedMembers &^= bit
	if update != nil {
		update(&next)
	}
	next.FailedMembers = next.FailedMembers&^bit | v.failed.Load()&^bit
	next.Seq = v.seq + 1
	if !next.SameVolume(&v.sb) {
		return fmt.Errorf("%w: in the update given to Replace", ErrIdentity)
	}
	if err := next.Validate(); err != nil {
		return fmt.Errorf("volume: replace: %w", err)
	}
	paths := []string{path}
	for i, m := range v.members {
		if i != index {
			paths = append(paths, m.path)
		}
	}
	if err := v.opener.distinct(paths); err != nil {
		return err
	}
	d, err := v.opener.disk(path, false)
	if err != nil {
		return err
	}
	if err := v.takeDisk(index, d, force, next); err != nil {
		d.close()
		return err
	}
	if err := v.commitLocked(next, &fs); err != nil {
		return fmt.Errorf("volume: replace member %d: %w", index, err)
	}
	return nil
}

// takeDisk gives d the metadata of member index, with superblock sb, and
// swaps it in. Callers hold v.mu.
func (v *Volume) takeDisk(index int, d *disk, force bool, sb meta.Superblock) error {
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
	v.seq++
	sb.Seq = v.seq
	sb.Member, sb.DiskUUID = uint32(index), meta.NewUUID()
	if err := v.bm.adopt(index, d, bmSec, &sb); err != nil {
		data.Close()
		return err
	}
	// adopt made the disk member index's bitmap copy; set.Replace cannot
	// fail here (v.mu is held, so the volume is open, and the sizes
	// match), and the member list follows.
	old, err := v.set.Replace(index, data)
	if err != nil {
		return fmt.Errorf("volume: replace member %d in the stripe: %w", index, err)
	}
	v.membersMu.Lock()
	prev := v.members[index]
	v.members[index] = &member{disk: d, index: index, uuid: sb.DiskUUID, slot: 0}
	v.membersMu.Unlock()
	v.closeReplaced(old, prev)
	return nil
}

// adopt gives d the metadata of member index, with the bitmap device
// locked against I/O: it wipes d's superblock slots, writes the bitmaps
// (the copy in memory) to sec, d's bitmap area, then sb to both slots,
// each step made durable before the next. Then sec is member index's
// bitmap area and the member is no longer failed in memory.
func (b *bitmapDev) adopt(index int, d *disk, sec *blockdev.Section, sb *meta.Superblock) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	if err := blockdev.WriteZeroes(d.meta, 0, meta.Slots*meta.SlotSize, false); err != nil {
		return &MemberError{Member: index, Path: d.path, Op: "superblock wipe", Off: 0, Len: meta.Slots * meta.SlotSize, Err: err}
	}
	if err := d.flush(index); err != nil {
		return err
	}
	if _, err := sec.WriteAt(b.shadow, 0); err != nil {
		return &MemberError{Member: index, Path: d.path, Op: "bitmap write", Off: b.base, Len: b.size, Err: err}
	}
	if err := d.flush(index); err != nil {
		return err
	}
	for slot := range meta.Slots {
		if err := d.writeSuper(index, slot, sb); err != nil {
			return err
		}
	}
	if err := d.flush(index); err != nil {
		return err
	}
	b.secs[index], b.paths[index] = sec, d.path
	b.v.failed.And(^(uint64(1) << uint(index)))
	return nil
}

// closeReplaced closes a replaced member's data area and disk once no
// call is in flight on it. A disk that hangs keeps its calls: it is
// closed when they return, if ever; until then Close leaves the stripe
// open rather than wait for them.
func (v *Volume) closeReplaced(old blockdev.Device, prev *member) {
	closeIt := func() {
		if err := old.Close(); err != nil {
			v.log.Warn("closing the replaced member's data area", "path", prev.path, "err", err)
		}
		if err := prev.close(); err != nil {
			v.log.Warn("closing the replaced member", "path", prev.path, "err", err)
		}
	}
	io, ok := old.(*memberIO)
	if !ok {
		closeIt()
		return
	}
	io.retire()
	select {
	case <-io.drained:
		closeIt()
		return
	default:
	}
	v.ioMu.Lock()
	v.lingering[io] = struct{}{}
	v.ioMu.Unlock()
	v.log.Warn("the replaced disk still has I/O in flight (it hangs): it is closed when that returns", "path", prev.path)
	go func() {
		<-io.drained
		closeIt()
		v.ioMu.Lock()
		delete(v.lingering, io)
		v.ioMu.Unlock()
		v.log.Info("the replaced disk's I/O returned: closed", "path", prev.path)
	}()
}
