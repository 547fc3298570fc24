package meta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Byte offsets of the superblock fields. The first three (magic, version,
// crc) never move between format versions.
const (
	offMagic          = 0   // [8]byte
	offVersion        = 8   // uint32
	offCRC            = 12  // uint32
	offSeq            = 16  // uint64
	offSetUUID        = 24  // [16]byte
	offDiskUUID       = 40  // [16]byte
	offCreated        = 56  // int64
	offMember         = 64  // uint32
	offMembers        = 68  // uint32
	offChunk          = 72  // uint64
	offDataOffset     = 80  // uint64
	offMemberDataSize = 88  // uint64
	offVolumeSize     = 96  // uint64
	offRegionSize     = 104 // uint64
	offBitmapOffset   = 112 // uint64
	offBitmapBytes    = 120 // uint64
	offFlags          = 128 // uint32
	offRole           = 132 // uint8
	offDiskState      = 133 // uint8
	offPad            = 134 // [2]byte, reserved
	offPadEnd         = 136
	offGenCurrent     = 136 // uint64
	offGenBitmap      = 144 // uint64
	offGenHistory     = 152 // [4]uint64
	offResyncCursor   = 184 // uint64
	offResyncTotal    = 192 // uint64
	offPeerSetUUID    = 200 // [16]byte
	offFailedMembers  = 216 // uint64
	offName           = 224 // [MaxNameLen]byte, NUL padded
	// The rebuild record sits where the reserved area began in the first
	// builds of format 1, which wrote it zero ("no rebuild") and keep it
	// as it is when they rewrite the superblock; see rebuildStamp.
	offRebuild       = offName + MaxNameLen // start of the rebuild record
	offRebuildMember = offRebuild           // uint32, member index + 1; 0: none
	offRebuildCursor = offRebuild + 8       // uint64 (4 bytes of padding before)
	offRebuildStamp  = offRebuild + 16      // uint64, Seq of the block that wrote it
	offRebuildEnd    = offRebuild + 24
	offReserved      = offRebuildEnd
)

var (
	le         = binary.LittleEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// checksum returns the CRC32C of a 4096-byte block with its CRC field
// taken as zero.
func checksum(b []byte) uint32 {
	var zero [4]byte
	c := crc32.Update(0, castagnoli, b[:offCRC])
	c = crc32.Update(c, castagnoli, zero[:])
	return crc32.Update(c, castagnoli, b[offCRC+4:SlotSize])
}

// Encode returns the superblock as a 4096-byte block with its CRC set. It
// does not validate: callers check with Validate first. A Name longer than
// MaxNameLen cannot be encoded and panics.
func (sb *Superblock) Encode() []byte {
	if len(sb.Name) > MaxNameLen {
		panic(fmt.Sprintf("meta: Encode: name of %d bytes exceeds %d", len(sb.Name), MaxNameLen))
	}
	b := make([]byte, SlotSize)
	copy(b[offMagic:], Magic)
	le.PutUint32(b[offVersion:], FormatVersion)
	le.PutUint64(b[offSeq:], sb.Seq)
	copy(b[offSetUUID:], sb.SetUUID[:])
	copy(b[offDiskUUID:], sb.DiskUUID[:])
	le.PutUint64(b[offCreated:], uint64(sb.CreatedUnix))
	le.PutUint32(b[offMember:], sb.Member)
	le.PutUint32(b[offMembers:], sb.Members)
	le.PutUint64(b[offChunk:], sb.Chunk)
	le.PutUint64(b[offDataOffset:], sb.DataOffset)
	le.PutUint64(b[offMemberDataSize:], sb.MemberDataSize)
	le.PutUint64(b[offVolumeSize:], sb.VolumeSize)
	le.PutUint64(b[offRegionSize:], sb.RegionSize)
	le.PutUint64(b[offBitmapOffset:], sb.BitmapOffset)
	le.PutUint64(b[offBitmapBytes:], sb.BitmapBytes)
	le.PutUint32(b[offFlags:], sb.Flags)
	b[offRole] = uint8(sb.Role)
	b[offDiskState] = uint8(sb.DiskState)
	copy(b[offPad:offPadEnd], sb.pad[:])
	le.PutUint64(b[offGenCurrent:], sb.Generations.Current)
	le.PutUint64(b[offGenBitmap:], sb.Generations.Bitmap)
	for i, g := range sb.Generations.History {
		le.PutUint64(b[offGenHistory+8*i:], g)
	}
	le.PutUint64(b[offResyncCursor:], sb.ResyncCursor)
	le.PutUint64(b[offResyncTotal:], sb.ResyncTotal)
	copy(b[offPeerSetUUID:], sb.PeerSetUUID[:])
	le.PutUint64(b[offFailedMembers:], sb.FailedMembers)
	copy(b[offName:offRebuild], sb.Name)
	sb.encodeRebuild(b[offRebuild:offRebuildEnd])
	copy(b[offReserved:], sb.reserved[:])
	le.PutUint32(b[offCRC:], checksum(b))
	return b
}

// Decode parses and validates a superblock from the first SlotSize bytes
// of b. It returns an error wrapping ErrNoSuperblock if b is short,
// ErrBadMagic, ErrBadChecksum, ErrVersion or ErrInvalid.
func Decode(b []byte) (*Superblock, error) {
	if len(b) < SlotSize {
		return nil, fmt.Errorf("%w: block of %d bytes, need %d", ErrNoSuperblock, len(b), SlotSize)
	}
	b = b[:SlotSize]
	if string(b[offMagic:offMagic+len(Magic)]) != Magic {
		return nil, ErrBadMagic
	}
	if got, want := le.Uint32(b[offCRC:]), checksum(b); got != want {
		return nil, fmt.Errorf("%w: stored %#08x, computed %#08x", ErrBadChecksum, got, want)
	}
	switch v := le.Uint32(b[offVersion:]); {
	case v > FormatVersion:
		return nil, fmt.Errorf("%w: format version %d, this build reads up to %d", ErrVersion, v, FormatVersion)
	case v < FormatVersion:
		return nil, fmt.Errorf("%w: format version %d", ErrInvalid, v)
	}
	sb, err := decodeFields(b)
	if err != nil {
		return nil, err
	}
	if err := sb.Validate(); err != nil {
		return nil, err
	}
	return sb, nil
}

// decodeFields reads every field of a block whose magic, CRC and version
// have been checked.
func decodeFields(b []byte) (*Superblock, error) {
	sb := &Superblock{
		Seq:            le.Uint64(b[offSeq:]),
		CreatedUnix:    int64(le.Uint64(b[offCreated:])),
		Member:         le.Uint32(b[offMember:]),
		Members:        le.Uint32(b[offMembers:]),
		Chunk:          le.Uint64(b[offChunk:]),
		DataOffset:     le.Uint64(b[offDataOffset:]),
		MemberDataSize: le.Uint64(b[offMemberDataSize:]),
		VolumeSize:     le.Uint64(b[offVolumeSize:]),
		RegionSize:     le.Uint64(b[offRegionSize:]),
		BitmapOffset:   le.Uint64(b[offBitmapOffset:]),
		BitmapBytes:    le.Uint64(b[offBitmapBytes:]),
		Flags:          le.Uint32(b[offFlags:]),
		Role:           Role(b[offRole]),
		DiskState:      DiskState(b[offDiskState]),
		ResyncCursor:   le.Uint64(b[offResyncCursor:]),
		ResyncTotal:    le.Uint64(b[offResyncTotal:]),
		FailedMembers:  le.Uint64(b[offFailedMembers:]),
	}
	copy(sb.SetUUID[:], b[offSetUUID:])
	copy(sb.DiskUUID[:], b[offDiskUUID:])
	copy(sb.PeerSetUUID[:], b[offPeerSetUUID:])
	copy(sb.pad[:], b[offPad:offPadEnd])
	copy(sb.reserved[:], b[offReserved:])
	sb.decodeRebuild(b[offRebuild:offRebuildEnd])
	sb.Generations.Current = le.Uint64(b[offGenCurrent:])
	sb.Generations.Bitmap = le.Uint64(b[offGenBitmap:])
	for i := range sb.Generations.History {
		sb.Generations.History[i] = le.Uint64(b[offGenHistory+8*i:])
	}
	name := b[offName:offRebuild]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		if bytes.ContainsFunc(name[i:], func(r rune) bool { return r != 0 }) {
			return nil, fmt.Errorf("%w: name field has bytes after its terminating NUL", ErrInvalid)
		}
		name = name[:i]
	}
	sb.Name = string(name)
	return sb, nil
}

// encodeRebuild writes the rebuild record into r (offRebuild to
// offRebuildEnd): the one in force, stamped with sb.Seq, or else the bytes
// a decode found stale, unchanged.
func (sb *Superblock) encodeRebuild(r []byte) {
	if !sb.Rebuilding {
		copy(r, sb.staleRebuild[:])
		return
	}
	le.PutUint32(r[offRebuildMember-offRebuild:], sb.RebuildMember+1)
	le.PutUint64(r[offRebuildCursor-offRebuild:], sb.RebuildCursor)
	le.PutUint64(r[offRebuildStamp-offRebuild:], sb.Seq)
}

// decodeRebuild reads the rebuild record from r. A record is in force
// only if its stamp is the block's Seq and its padding zero: a build that
// predates the record keeps its bytes when it rewrites the superblock
// (with a higher Seq), and what it then did (finish that rebuild, start
// another) the record does not describe. A stale record is kept as bytes
// only, and Validate does not look at it.
func (sb *Superblock) decodeRebuild(r []byte) {
	tag := le.Uint32(r[offRebuildMember-offRebuild:])
	pad := le.Uint32(r[offRebuildMember-offRebuild+4:])
	if tag != 0 && pad == 0 && le.Uint64(r[offRebuildStamp-offRebuild:]) == sb.Seq {
		sb.Rebuilding = true
		sb.RebuildMember = tag - 1
		sb.RebuildCursor = le.Uint64(r[offRebuildCursor-offRebuild:])
		return
	}
	copy(sb.staleRebuild[:], r)
}

// Pick decodes both superblock slots of a member and returns the valid one
// with the highest Seq (slot 0 on a tie) and its slot number. A slot
// holding a superblock of a newer format makes Pick fail with ErrVersion
// even if the other is valid: the newer one may hold the current state.
// If neither slot is valid the error wraps ErrNoSuperblock when neither
// even has the magic, and otherwise both slots' errors.
func Pick(slotA, slotB []byte) (*Superblock, int, error) {
	a, errA := Decode(slotA)
	b, errB := Decode(slotB)
	switch {
	case errors.Is(errA, ErrVersion):
		return nil, 0, fmt.Errorf("slot 0: %w", errA)
	case errors.Is(errB, ErrVersion):
		return nil, 1, fmt.Errorf("slot 1: %w", errB)
	case errA == nil && errB == nil:
		if b.Seq > a.Seq {
			return b, 1, nil
		}
		return a, 0, nil
	case errA == nil:
		return a, 0, nil
	case errB == nil:
		return b, 1, nil
	case errors.Is(errA, ErrBadMagic) && errors.Is(errB, ErrBadMagic):
		return nil, 0, ErrNoSuperblock
	}
	return nil, 0, fmt.Errorf("meta: no valid superblock: slot 0: %w; slot 1: %w", errA, errB)
}
