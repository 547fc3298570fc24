package volume

import (
	"fmt"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// failure is a member the volume failed on its own, to report to
// OnMemberFailed once the call that found it holds no lock.
type failure struct {
	member int
	err    error
}

// failMember marks member i failed in memory, at once: no metadata I/O
// issued from now on goes to it. If it was not failed already, it logs
// the failure and adds it to fs, for report.
func (v *Volume) failMember(i int, err error, fs *[]failure) {
	bit := uint64(1) << uint(i)
	if v.failed.Or(bit)&bit != 0 {
		return
	}
	v.log.Error("member disk failed: no more metadata I/O goes to it", "member", i, "err", err)
	*fs = append(*fs, failure{i, err})
}

// report tells OnMemberFailed of the members a call failed. Callers hold
// no lock of the Volume.
func (v *Volume) report(fs []failure) {
	if v.onFailed == nil {
		return
	}
	for _, f := range fs {
		v.onFailed(f.member, f.err)
	}
}

// settle returns once every member failed in memory is recorded failed in
// the superblock of the members left: at once if it is already, else
// after writing that superblock (commitLocked). It returns
// ErrNoMemberLeft if no member is left to hold it, an error wrapping
// blockdev.ErrClosed if the volume closed first.
func (v *Volume) settle(fs *[]failure) error {
	if v.failed.Load()&^v.recorded.Load() == 0 {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return errClosed
	}
	if v.failed.Load()&^v.sb.FailedMembers == 0 {
		return nil
	}
	return v.commitLocked(v.sb, fs)
}

// FailMembers marks the members of mask (bit i: member i) failed, as the
// volume does on its own when their metadata I/O fails: at once in
// memory, so that no metadata I/O goes to them any more, then durably, in
// the superblock of the members left, before it returns. The owner calls
// it for members it found failed by data errors (a *stripe.DiskError);
// cause is logged. OnMemberFailed is not called for the members of mask.
//
// It returns nil once the record is durable on a member not failed (at
// once if it was already), and ErrNoMemberLeft if every member has
// failed: then nothing could be recorded, and the members stay failed in
// memory all the same.
func (v *Volume) FailMembers(mask uint64, cause error) error {
	var fs []failure
	defer func() { v.report(fs) }()
	v.mu.Lock()
	defer v.mu.Unlock()
	switch n := len(v.members); {
	case v.closed:
		return errClosed
	case v.readOnly:
		return fmt.Errorf("volume: fail members: %w", blockdev.ErrReadOnly)
	case n < 64 && mask>>uint(n) != 0:
		return fmt.Errorf("volume: fail members %#x: the volume has %d members", mask, n)
	}
	v.failOwnLocked(mask, cause)
	if v.failed.Load()&^v.sb.FailedMembers == 0 {
		return nil
	}
	return v.commitLocked(v.sb, &fs)
}

// failOwnLocked marks the members of mask failed in memory, for the
// owner (FailMembers, UpdateSuper), and logs those it newly failed.
// Callers hold v.mu.
func (v *Volume) failOwnLocked(mask uint64, cause error) {
	if add := mask &^ v.failed.Or(mask); add != 0 {
		v.log.Error("member disks failed: no more metadata I/O goes to them", "members", fmt.Sprintf("%#x", add), "err", cause)
	}
}

// commitLocked makes next the volume's superblock. With every member
// failed in memory recorded failed in it, and Seq one above any written
// before, it goes to every member not failed, in the slot that does not
// hold that member's newest copy, then a flush, in parallel. A member
// that fails its write or flush is failed, and if others took it the
// superblock goes out again, recording that failure, until a round has
// no failure: then it returns nil, and v.sb is the last round's.
//
// If no member is left, it returns ErrNoMemberLeft and puts v.sb back as
// it was before the call; the members that failed in the attempt may
// hold any of its rounds. Callers hold v.mu.
func (v *Volume) commitLocked(next meta.Superblock, fs *[]failure) error {
	prev := v.sb
	next.Member, next.DiskUUID = 0, v.members[0].uuid
	for {
		failed := v.failed.Load()
		next.FailedMembers |= failed
		var targets []*member
		for _, m := range v.members {
			if failed&(1<<uint(m.index)) == 0 {
				targets = append(targets, m)
			}
		}
		if len(targets) == 0 {
			v.setSuperLocked(prev, false)
			return ErrNoMemberLeft
		}
		v.seq++
		next.Seq = v.seq
		errs := make([]error, len(targets))
		eachMember(targets, func(i int, m *member) error {
			sb := next
			sb.Member, sb.DiskUUID = uint32(m.index), m.uuid
			if errs[i] = m.writeSuper(m.index, 1-m.slot, &sb); errs[i] == nil {
				errs[i] = m.flush(m.index)
			}
			return nil
		})
		took, clean := false, true
		for i, m := range targets {
			if errs[i] != nil {
				v.failMember(m.index, errs[i], fs)
				clean = false
				continue
			}
			m.slot = 1 - m.slot
			took = true
		}
		if took {
			v.setSuperLocked(next, clean)
		}
		if clean {
			return nil
		}
	}
}
