package volume

import (
	"errors"
	"fmt"
)

// Sentinel errors, wrapped by AssembleError and the other errors of this
// package. Callers test with errors.Is.
var (
	// ErrNotMember: the disk carries no netraid superblock.
	ErrNotMember = errors.New("volume: not a netraid member")
	// ErrForeign: the disk belongs to another volume than the other disks.
	ErrForeign = errors.New("volume: disk of another volume")
	// ErrDuplicate: the same disk was given twice, or two disks claim the
	// same member index.
	ErrDuplicate = errors.New("volume: duplicate disk")
	// ErrMissing: a member of the volume was not given.
	ErrMissing = errors.New("volume: member missing")
	// ErrTooSmall: the disk cannot hold what the volume keeps on it.
	ErrTooSmall = errors.New("volume: disk too small")
	// ErrMismatch: members of one volume disagree on its geometry.
	ErrMismatch = errors.New("volume: members disagree")
	// ErrHasSuperblock: Create found a netraid superblock on the disk.
	ErrHasSuperblock = errors.New("volume: disk holds a netraid superblock")
	// ErrIdentity: UpdateSuper tried to change the volume's identity or
	// geometry.
	ErrIdentity = errors.New("volume: superblock update changes identity or geometry")
	// ErrNoMemberLeft: every member has failed, so no superblock can be
	// written: UpdateSuper, FailMembers and Replace's update return it.
	ErrNoMemberLeft = errors.New("volume: every member disk has failed; no superblock can be written")
)

// AssembleError reports a disk that Create or Open refused: which disk
// (Path, empty for a missing member), why and what to do (Reason), and the
// class of problem (Err: one of the sentinels above, or a meta or blockdev
// error such as meta.ErrBadChecksum, meta.ErrVersion, blockdev.ErrBusy).
type AssembleError struct {
	Path   string
	Reason string
	Err    error
}

func (e *AssembleError) Error() string {
	if e.Path == "" {
		return "volume: " + e.Reason
	}
	return fmt.Sprintf("volume: %s: %s", e.Path, e.Reason)
}

func (e *AssembleError) Unwrap() error { return e.Err }

// MemberError is an I/O failure on one member's metadata: a superblock or
// bitmap write, read or flush.
type MemberError struct {
	Member int
	Path   string
	// Op is what failed: "superblock write", "bitmap read", "flush"...
	Op string
	// Off and Len are the byte range on the member (zero for a flush).
	Off, Len int64
	Err      error
}

func (e *MemberError) Error() string {
	if e.Len == 0 {
		return fmt.Sprintf("volume: %s member %d (%s): %v", e.Op, e.Member, e.Path, e.Err)
	}
	return fmt.Sprintf("volume: %s member %d (%s) off %d len %d: %v", e.Op, e.Member, e.Path, e.Off, e.Len, e.Err)
}

func (e *MemberError) Unwrap() error { return e.Err }
