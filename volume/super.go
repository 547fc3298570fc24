package volume

import (
	"errors"
	"fmt"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// UpdateSuper changes the volume's superblock: fn edits a copy of the
// current one (as Super returns it), which then goes to every member not
// failed, with that member's own Member and DiskUUID and Seq one higher
// than any written before. Each member gets it in the slot not holding
// its newest copy, then a flush, in parallel. fn must not change the
// identity or geometry (ErrIdentity); a Seq it sets is ignored. Members
// fn marks failed in FailedMembers are failed at once, as by FailMembers;
// a member failed stays failed until Replace, whatever fn clears.
//
// A member that fails its write or flush is failed (OnMemberFailed), and
// the update goes out again to the others, recording that. Calls are
// serialised.
func (v *Volume) UpdateSuper(fn func(*meta.Superblock)) error {
	var fs []failure
	defer func() { v.report(fs) }()
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
	next.Seq = v.seq + 1
	next.Member, next.DiskUUID = 0, v.members[0].uuid
	next.FailedMembers |= v.failed.Load()
	if err := next.Validate(); err != nil {
		return fmt.Errorf("volume: update superblock: %w", err)
	}
	v.failOwnLocked(next.FailedMembers, errors.New("marked failed in a superblock update"))
	if err := v.commitLocked(next, &fs); err != nil {
		return fmt.Errorf("volume: update superblock: %w", err)
	}
	return nil
}
