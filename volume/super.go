package volume

import (
	"fmt"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// UpdateSuper changes the volume's superblock: fn edits a copy of the
// current one (as Super returns it), which then goes to every member not
// marked failed (in the edited copy), with that member's own Member and
// DiskUUID and Seq one higher than the newest copy on any member. Each
// member gets it in the slot not holding its newest copy, then a flush, in
// parallel. fn must not change the identity or geometry (ErrIdentity);
// a Seq it sets is ignored.
//
// If some members fail, the error joins a *MemberError for each; the
// update still counts (Super returns it) if at least one member took it,
// since on the next Open the newest copy wins. Calls are serialised.
func (v *Volume) UpdateSuper(fn func(*meta.Superblock)) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return errClosed
	}
	if v.readOnly {
		return fmt.Errorf("volume: update superblock: %w", blockdev.ErrReadOnly)
	}
	next := v.sb
	fn(&next)
	if !next.SameVolume(&v.sb) {
		return fmt.Errorf("%w: set %s, created %d, layout %+v; want set %s, created %d, layout %+v", ErrIdentity,
			next.SetUUID, next.CreatedUnix, next.Layout(), v.sb.SetUUID, v.sb.CreatedUnix, v.sb.Layout())
	}
	next.Seq = v.sb.Seq + 1
	next.Member, next.DiskUUID = 0, v.members[0].uuid
	if err := next.Validate(); err != nil {
		return fmt.Errorf("volume: update superblock: %w", err)
	}
	var targets []*member
	for _, m := range v.members {
		if !next.MemberFailed(m.index) {
			targets = append(targets, m)
		}
	}
	if len(targets) == 0 {
		return fmt.Errorf("volume: update superblock: every member is marked failed, none can hold it")
	}
	wrote := make([]bool, len(targets))
	err := eachMember(targets, func(i int, m *member) error {
		sb := next
		sb.Member, sb.DiskUUID = uint32(m.index), m.uuid
		if err := m.writeSuper(m.index, 1-m.slot, &sb); err != nil {
			return err
		}
		if err := m.flush(m.index); err != nil {
			return err
		}
		wrote[i] = true
		return nil
	})
	took := false
	for i, t := range targets {
		if wrote[i] {
			t.slot = 1 - t.slot
			took = true
		}
	}
	if took {
		v.sb = next
		v.failed.Store(next.FailedMembers)
	}
	if err != nil {
		return fmt.Errorf("volume: update superblock to seq %d: %w", next.Seq, err)
	}
	return nil
}
