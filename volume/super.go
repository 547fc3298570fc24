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
// a member failed stays failed until Replace, whatever fn clears. Calls
// are serialised.
//
// A member that fails its write or flush is failed, and the update goes
// out again to the others, recording that failure. The outcome is exact:
//
//   - nil: the update is durable on at least one member that is not
//     recorded failed, and Super returns it. Every member failed in the
//     attempt is recorded failed in it (OnMemberFailed reports them), so
//     a crash leaves the volume opening with this superblock, or a later
//     one.
//   - an error: Super still returns the previous superblock, unchanged.
//     ErrIdentity, meta.ErrInvalid, blockdev.ErrReadOnly and
//     blockdev.ErrClosed come before any write: the update is nowhere.
//     ErrNoMemberLeft: every member has failed, in this attempt or
//     before; nothing can be recorded any more. The update may have
//     reached members that failed in the attempt (a write whose flush
//     failed, a write that timed out and landed later), none of them
//     recorded failed, so a restart may find it or the previous
//     superblock: treat the update as not made, and the local disks as
//     holding no record of anything since.
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
