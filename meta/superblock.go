package meta

import (
	"errors"
	"fmt"
)

// Format constants.
const (
	// Magic opens every superblock.
	Magic = "NETRAID\x00"
	// FormatVersion is the superblock format this build writes and the
	// newest it reads.
	FormatVersion = 1
	// SlotSize is the size of one superblock slot.
	SlotSize = 4096
	// Slots is the number of superblock slots, at offsets 0 and SlotSize.
	Slots = 2
	// MaxNameLen is the longest volume name, in bytes.
	MaxNameLen = 64
	// MaxMembers is the most member disks a volume can have (FailedMembers
	// is a 64-bit mask).
	MaxMembers = 64
	// ReservedBytes is the size of the reserved area at the end of the
	// superblock, kept zero by this version.
	ReservedBytes = SlotSize - offReserved
)

// Sentinel errors. Callers test with errors.Is.
var (
	// ErrBadMagic: the block does not start with Magic.
	ErrBadMagic = errors.New("meta: bad magic")
	// ErrBadChecksum: the block has the magic but its CRC does not match,
	// as after a torn write or media corruption.
	ErrBadChecksum = errors.New("meta: bad superblock checksum")
	// ErrVersion: the superblock is of a newer format than this build.
	ErrVersion = errors.New("meta: unsupported superblock format version")
	// ErrNoSuperblock: neither slot holds a superblock at all.
	ErrNoSuperblock = errors.New("meta: no superblock")
	// ErrInvalid: the checksum matches but a field is out of bounds or
	// inconsistent with another.
	ErrInvalid = errors.New("meta: invalid superblock")
	// ErrName: a volume name is empty, too long or has a byte outside
	// [A-Za-z0-9._-].
	ErrName = errors.New("meta: invalid volume name")
	// ErrLayout: a geometry parameter (chunk, region, disk count) is not
	// acceptable.
	ErrLayout = errors.New("meta: invalid layout")
	// ErrTooSmall: a disk cannot hold the metadata area and one chunk.
	ErrTooSmall = errors.New("meta: disk too small")
)

// Superblock flags.
const (
	// FlagNeedFullSync: a member of this node was replaced and its data
	// is not rebuilt; the node's copy must be synced in full from its
	// peer before it is trusted (cleared when that is done).
	FlagNeedFullSync uint32 = 1 << 0
	// FlagUsedIncomplete: this node has taken a primary's writes as its
	// secondary, which its used bitmap does not record; before it is a
	// source itself (promoted), every region must count as used (cleared
	// then).
	FlagUsedIncomplete uint32 = 1 << 1
	// FlagNeedFullVerify: this node's copy was made or taken over in a
	// way that leaves regions never written through the used bitmap
	// unchecked (it was promoted, or a full sync ended); the next verify
	// compares every region, not only the used ones. Cleared when a full
	// verify finds the copies the same or repairs them.
	FlagNeedFullVerify uint32 = 1 << 2
	// FlagFenced: this node demoted itself because it lost its election
	// in the witness (etcd) with no in-sync peer, failing the writes it
	// held unanswered. Whatever it holds beyond the primary that took
	// over was never acknowledged: when they meet, its changes are
	// discarded without an operator (a plain split brain is still
	// refused). Cleared when it is synced, or promoted.
	FlagFenced uint32 = 1 << 3
)

// Role is a node's replication role, as the superblock records it.
type Role uint8

// Roles.
const (
	Secondary Role = 0
	Primary   Role = 1
)

func (r Role) String() string {
	switch r {
	case Secondary:
		return "secondary"
	case Primary:
		return "primary"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// MarshalText formats r as String does, so that JSON shows it readably.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses what MarshalText produces for a known role.
func (r *Role) UnmarshalText(b []byte) error {
	for _, k := range []Role{Secondary, Primary} {
		if string(b) == k.String() {
			*r = k
			return nil
		}
	}
	return fmt.Errorf("meta: unknown role %q", b)
}

// DiskState is what a node knows about the data on its disks.
type DiskState uint8

// Disk states, in the manner of DRBD.
const (
	// JustCreated: the volume was created and has never been synced or
	// promoted; its data is meaningless.
	JustCreated DiskState = 0
	// Inconsistent: a resync onto these disks is under way or was cut off.
	Inconsistent DiskState = 1
	// Outdated: consistent, but the peer is known to hold newer data.
	Outdated DiskState = 2
	// UpToDate: consistent and as new as any copy.
	UpToDate DiskState = 3
	// Failed: the local disks failed and hold nothing to rely on.
	Failed DiskState = 4
)

func (s DiskState) String() string {
	switch s {
	case JustCreated:
		return "just-created"
	case Inconsistent:
		return "inconsistent"
	case Outdated:
		return "outdated"
	case UpToDate:
		return "up-to-date"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("disk-state(%d)", uint8(s))
}

// MarshalText formats s as String does, so that JSON shows it readably.
func (s DiskState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses what MarshalText produces for a known state.
func (s *DiskState) UnmarshalText(b []byte) error {
	for k := JustCreated; k <= Failed; k++ {
		if string(b) == k.String() {
			*s = k
			return nil
		}
	}
	return fmt.Errorf("meta: unknown disk state %q", b)
}

// Generations are a node's data generation identifiers, in the manner of
// DRBD's UUIDs (see package node for how they evolve). Zero means none.
type Generations struct {
	// Current names the data this node holds.
	Current uint64
	// Bitmap is the generation the dirty bitmap is relative to.
	Bitmap uint64
	// History holds earlier generations, newest first.
	History [4]uint64
}

// Superblock is one member disk's metadata. Every member of a node's
// volume carries the same fields except Member and DiskUUID; Seq orders
// the copies.
type Superblock struct {
	// Seq increases by one with every update; of two valid slots the one
	// with the higher Seq is current.
	Seq uint64
	// SetUUID names this node's member set: every disk of one node's
	// volume shares it.
	SetUUID UUID
	// DiskUUID names this disk.
	DiskUUID UUID
	// Name is the volume's name: 1 to MaxNameLen bytes of [A-Za-z0-9._-].
	Name string
	// CreatedUnix is when the volume was created, in Unix seconds.
	CreatedUnix int64
	// Member is this disk's index in the stripe, below Members.
	Member uint32
	// Members is the number of member disks.
	Members uint32
	// Chunk is the stripe chunk size in bytes: a power of two >= MinChunk.
	Chunk uint64
	// DataOffset is where data starts on every member; DataAlign aligned.
	DataOffset uint64
	// MemberDataSize is the data bytes used on each member, a multiple of
	// Chunk.
	MemberDataSize uint64
	// VolumeSize is Members * MemberDataSize.
	VolumeSize uint64
	// RegionSize is the write-intent bitmap granularity: one bit covers
	// RegionSize bytes of the volume. A power of two >= Chunk.
	RegionSize uint64
	// BitmapOffset is where the bitmap area starts on each member, inside
	// the metadata area (after both superblock slots).
	BitmapOffset uint64
	// BitmapBytes is the size of ONE bitmap, a multiple of 4096. The area
	// holds two back to back: the dirty (out-of-sync) bitmap, then the
	// "used" (ever written) bitmap.
	BitmapBytes uint64
	// Role is the node's replication role.
	Role Role
	// DiskState is what the node knows of its data.
	DiskState DiskState
	// Flags are state flags (Flag*); unknown bits are kept.
	Flags uint32
	// Generations are the node's data generation identifiers.
	Generations Generations
	// ResyncCursor is how many bytes of the volume the current resync has
	// done; with ResyncTotal it lets a resync resume after a restart.
	ResyncCursor uint64
	// ResyncTotal is the size of the current resync in bytes, zero if none.
	ResyncTotal uint64
	// PeerSetUUID is the peer node's SetUUID once the nodes have met.
	PeerSetUUID UUID
	// FailedMembers is a bit mask of the members marked failed (bit i for
	// member i).
	FailedMembers uint64

	// Rebuilding: a rebuild of one replaced member (RebuildMember) is
	// under way on this node, so that a restart can resume it instead of
	// syncing the whole copy. RebuildCursor is the volume offset of the
	// first region whose share of that member may not be on the disk yet
	// (a multiple of RegionSize, or VolumeSize): below it the member holds
	// its share of every region, except the regions the dirty bitmap
	// names. It only counts while FlagNeedFullSync is set too (see
	// ResumableRebuild). Written in the reserved area: a build that does
	// not know it keeps it, and a record such a build's update left
	// behind reads as no rebuild (Decode checks its stamp).
	Rebuilding    bool
	RebuildMember uint32
	RebuildCursor uint64

	// pad and reserved are the bytes of the block this version does not
	// interpret, kept across Decode and Encode.
	pad          [offPadEnd - offPad]byte
	staleRebuild [offRebuildEnd - offRebuild]byte
	reserved     [ReservedBytes]byte
}

// SetRebuild records a rebuild of member from cursor on.
func (sb *Superblock) SetRebuild(member uint32, cursor uint64) {
	sb.Rebuilding, sb.RebuildMember, sb.RebuildCursor = true, member, cursor
	sb.staleRebuild = [len(sb.staleRebuild)]byte{}
}

// ClearRebuild removes the rebuild record, and any stale one.
func (sb *Superblock) ClearRebuild() {
	sb.Rebuilding, sb.RebuildMember, sb.RebuildCursor = false, 0, 0
	sb.staleRebuild = [len(sb.staleRebuild)]byte{}
}

// ResumableRebuild reports the member and cursor of an unfinished
// one-member rebuild that the node may resume instead of a full sync: a
// rebuild record with FlagNeedFullSync, on a copy that is inconsistent
// and has no failed member. Anything else is not a rebuild to resume.
func (sb *Superblock) ResumableRebuild() (member int, cursor int64, ok bool) {
	if !sb.Rebuilding || sb.Flags&FlagNeedFullSync == 0 || sb.DiskState != Inconsistent || sb.FailedMembers != 0 {
		return 0, 0, false
	}
	return int(sb.RebuildMember), int64(sb.RebuildCursor), true
}

// MemberFailed reports whether member i is marked failed.
func (sb *Superblock) MemberFailed(i int) bool {
	return i >= 0 && i < 64 && sb.FailedMembers&(1<<uint(i)) != 0
}

// SlotOffset returns the byte offset of superblock slot i on a member.
func SlotOffset(i int) int64 { return int64(i) * SlotSize }

// Layout returns the superblock's geometry.
func (sb *Superblock) Layout() Layout {
	return Layout{
		Members:        int(sb.Members),
		Chunk:          int64(sb.Chunk),
		Region:         int64(sb.RegionSize),
		DataOffset:     int64(sb.DataOffset),
		MemberDataSize: int64(sb.MemberDataSize),
		VolumeSize:     int64(sb.VolumeSize),
		BitmapOffset:   int64(sb.BitmapOffset),
		BitmapBytes:    int64(sb.BitmapBytes),
	}
}

// SetLayout copies l's geometry into the superblock.
func (sb *Superblock) SetLayout(l Layout) {
	sb.Members = uint32(l.Members)
	sb.Chunk = uint64(l.Chunk)
	sb.RegionSize = uint64(l.Region)
	sb.DataOffset = uint64(l.DataOffset)
	sb.MemberDataSize = uint64(l.MemberDataSize)
	sb.VolumeSize = uint64(l.VolumeSize)
	sb.BitmapOffset = uint64(l.BitmapOffset)
	sb.BitmapBytes = uint64(l.BitmapBytes)
}

// SameVolume reports whether o describes the same volume with the same
// geometry as sb: SetUUID, CreatedUnix and Layout agree. The name and the
// replication state may differ between copies of different Seq.
func (sb *Superblock) SameVolume(o *Superblock) bool {
	return sb.SetUUID == o.SetUUID && sb.CreatedUnix == o.CreatedUnix &&
		sb.Layout() == o.Layout()
}
