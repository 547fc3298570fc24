package volume

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// OpenOptions say how Open assembles a volume.
type OpenOptions struct {
	// ReadOnly opens the disks read-only: Data and Bitmap refuse writes
	// and UpdateSuper fails. The disks are still held exclusively.
	ReadOnly bool
	// Logger gets warnings about members (a stale or damaged superblock
	// slot); nil discards them.
	Logger *slog.Logger
	// WrapData, if set, wraps each member's data area before it joins the
	// stripe (and a replacement's): fault injection for tests.
	WrapData func(member int, d blockdev.Device) blockdev.Device
	// IOTimeout, if positive, bounds every I/O on each member's metadata
	// area, superblock slots and bitmaps (a call that overruns fails with
	// a *MemberError that wraps blockdev.ErrTimeout, and the member is
	// failed). The stuck call goes on in the background; see
	// blockdev.Timeout. The data path is the owner's to bound, with one
	// time-out around Data (no goroutine or copy per member): Stalled
	// then says which member hangs, and a failed member's data I/O is
	// refused at once (ErrMemberFailed).
	IOTimeout time.Duration
	// OnMemberFailed, if set, is told of each member the volume fails on
	// its own: one whose metadata write or flush (bitmap write, bitmap
	// flush, superblock write) failed or timed out; err is that failure,
	// a *MemberError. It is called once per member, on the goroutine of
	// the call that found the failure, after the failure is recorded in
	// the superblock (or found impossible to record: ErrNoMemberLeft) and
	// before that call returns, with no lock of the Volume held. It must
	// not block: that call waits for it. Members given to FailMembers
	// or marked failed through UpdateSuper are not reported.
	OnMemberFailed func(member int, err error)
	// OnNoMemberLeft, if set, is called by every bitmap write or flush
	// that persisted nothing because every member has failed (the call
	// succeeds all the same: see the package documentation), on that
	// call's goroutine before it returns, with no lock of the Volume
	// held. From the first such call on, no disk of this copy records
	// what is written: the owner makes that known elsewhere (a new data
	// generation on the peer) before answering a write. It must not
	// block.
	OnNoMemberLeft func()
	// OpenDisk, if set, opens the disks (of Open and of Replace) in place
	// of blockdev.OpenFile (O_DIRECT, exclusive): the paths are then names
	// it understands, and two disks are the same if their names are
	// equal. See OpenFunc.
	OpenDisk OpenFunc
}

// found is a disk Open has read a superblock from.
type found struct {
	*disk
	sb    *meta.Superblock
	slot  int
	other error // the other slot's damage, if any
}

// Open assembles a volume from its member disks, given in any order. It
// opens every disk exclusively, reads the superblocks, and refuses with an
// *AssembleError if a disk is not a member, is damaged, belongs to another
// volume, is given twice or claims a member index another disk holds, is
// too small, is in use, or has a superblock of a newer format, or if a
// member is missing. It writes nothing. It reads the bitmaps from the
// first member not recorded failed that answers, and fails, with the
// *MemberError of each, if none does.
func Open(paths []string, o OpenOptions) (*Volume, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("volume: no disks given")
	}
	op := opener{open: o.OpenDisk, timeout: o.IOTimeout}
	if err := op.distinct(paths); err != nil {
		return nil, err
	}
	var disks []*disk
	done := false
	defer func() {
		if !done {
			closeDisks(disks)
		}
	}()
	fs := make([]*found, 0, len(paths))
	for _, p := range paths {
		d, err := op.disk(p, o.ReadOnly)
		if err != nil {
			return nil, err
		}
		disks = append(disks, d)
		sb, slot, other, err := d.super()
		if err != nil {
			return nil, superError(p, err)
		}
		fs = append(fs, &found{disk: d, sb: sb, slot: slot, other: other})
	}
	members, newest, err := assemble(fs)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		if f.other != nil {
			log.Warn("superblock slot damaged, using the other", "dev", f.path, "slot", 1-f.slot, "err", f.other)
		}
		if f.sb.Seq < newest.Seq && !newest.MemberFailed(int(f.sb.Member)) {
			log.Warn("member superblock is behind the others; the next update rewrites it",
				"dev", f.path, "seq", f.sb.Seq, "newest", newest.Seq)
		}
	}
	v, err := newVolume(members, newest, o, log, op)
	if err != nil {
		return nil, err
	}
	done = true
	return v, nil
}

// assemble checks that the disks make up one whole volume and returns them
// in member order with the newest superblock.
func assemble(fs []*found) ([]*member, *meta.Superblock, error) {
	set, err := pickSet(fs)
	if err != nil {
		return nil, nil, err
	}
	newest := fs[0]
	for _, f := range fs {
		if f.sb.Seq > newest.sb.Seq {
			newest = f
		}
	}
	sb := newest.sb
	members := make([]*member, sb.Members)
	for _, f := range fs {
		if f.sb.SetUUID != set {
			continue
		}
		if !f.sb.SameVolume(sb) {
			return nil, nil, &AssembleError{Path: f.path, Err: ErrMismatch, Reason: fmt.Sprintf(
				"superblock (seq %d) disagrees with the newest one (seq %d, on %s) on the geometry of volume %q; these disks cannot be assembled together",
				f.sb.Seq, sb.Seq, newest.path, sb.Name)}
		}
		if m := members[f.sb.Member]; m != nil {
			copyNote := ""
			if m.uuid == f.sb.DiskUUID {
				copyNote = " with the same disk UUID (one is a copy of the other)"
			}
			return nil, nil, &AssembleError{Path: f.path, Err: ErrDuplicate, Reason: fmt.Sprintf(
				"claims to be member %d of volume %q, as does %s%s; give each member once",
				f.sb.Member, sb.Name, m.path, copyNote)}
		}
		if need := int64(sb.DataOffset + sb.MemberDataSize); f.dev.Size() < need {
			return nil, nil, &AssembleError{Path: f.path, Err: ErrTooSmall, Reason: fmt.Sprintf(
				"is %s, but volume %q keeps %s on each member; was the disk shrunk?",
				humanize.IBytes(uint64(f.dev.Size())), sb.Name, humanize.IBytes(uint64(need)))}
		}
		members[f.sb.Member] = &member{disk: f.disk, index: int(f.sb.Member), uuid: f.sb.DiskUUID, slot: f.slot}
	}
	var missing []string
	for i, m := range members {
		if m == nil {
			missing = append(missing, fmt.Sprint(i))
		}
	}
	if len(missing) > 0 {
		what, verb := "member "+missing[0], "is"
		if len(missing) > 1 {
			what, verb = "members "+strings.Join(missing, ", "), "are"
		}
		return nil, nil, &AssembleError{Err: ErrMissing, Reason: fmt.Sprintf(
			"%s of %d of volume %q (set %s) %s missing: give all member disks", what, sb.Members, sb.Name, sb.SetUUID, verb)}
	}
	return members, sb, nil
}

// pickSet returns the SetUUID most of the disks carry (the first disk's on
// a tie), and an error naming a disk of another set if there is one.
func pickSet(fs []*found) (meta.UUID, error) {
	count := map[meta.UUID]int{}
	for _, f := range fs {
		count[f.sb.SetUUID]++
	}
	best := fs[0].sb
	for _, f := range fs {
		if count[f.sb.SetUUID] > count[best.SetUUID] {
			best = f.sb
		}
	}
	for _, f := range fs {
		if f.sb.SetUUID != best.SetUUID {
			return meta.UUID{}, &AssembleError{Path: f.path, Err: ErrForeign, Reason: fmt.Sprintf(
				"belongs to volume %q (set %s), the other disks to volume %q (set %s); give the disks of one volume only",
				f.sb.Name, f.sb.SetUUID, best.Name, best.SetUUID)}
		}
	}
	return best.SetUUID, nil
}
