package meta

import (
	"fmt"
	"math"
)

// ValidName reports whether name can name a volume: 1 to MaxNameLen bytes
// of ASCII letters, digits, '.', '_' and '-'. The error wraps ErrName and
// says why not.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w %q: %d bytes, at most %d", ErrName, name, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w %q: byte %d (%q) is not one of [A-Za-z0-9._-]", ErrName, name, i, c)
		}
	}
	return nil
}

// Validate checks that the superblock is self-consistent: a valid name,
// known role and disk state, and a geometry that PlanLayout could have
// produced (any bitmap at least as large as needed is accepted). Errors
// wrap ErrInvalid.
func (sb *Superblock) Validate() error {
	if err := ValidName(sb.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if sb.Role > Primary {
		return fmt.Errorf("%w: unknown role %d", ErrInvalid, sb.Role)
	}
	if sb.DiskState > Failed {
		return fmt.Errorf("%w: unknown disk state %d", ErrInvalid, sb.DiskState)
	}
	if sb.Members == 0 || sb.Members > MaxMembers {
		return fmt.Errorf("%w: %d members, want 1 to %d", ErrInvalid, sb.Members, MaxMembers)
	}
	if sb.Member >= sb.Members {
		return fmt.Errorf("%w: member index %d of %d", ErrInvalid, sb.Member, sb.Members)
	}
	if sb.Members < 64 && sb.FailedMembers>>sb.Members != 0 {
		return fmt.Errorf("%w: failed-member mask %#x names members beyond %d", ErrInvalid, sb.FailedMembers, sb.Members)
	}
	if err := sb.validateGeometry(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := sb.validateRebuild(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// validateRebuild checks the rebuild record against the geometry.
func (sb *Superblock) validateRebuild() error {
	if !sb.Rebuilding {
		if sb.RebuildMember != 0 || sb.RebuildCursor != 0 {
			return fmt.Errorf("rebuild member %d and cursor %d without a rebuild", sb.RebuildMember, sb.RebuildCursor)
		}
		return nil
	}
	if sb.RebuildMember >= sb.Members {
		return fmt.Errorf("rebuild of member %d of %d", sb.RebuildMember, sb.Members)
	}
	if c := sb.RebuildCursor; c > sb.VolumeSize || c%sb.RegionSize != 0 && c != sb.VolumeSize {
		return fmt.Errorf("rebuild cursor %d is not a region boundary (%d) within the volume (%d bytes)", c, sb.RegionSize, sb.VolumeSize)
	}
	return nil
}

// validateGeometry checks the layout fields against each other.
func (sb *Superblock) validateGeometry() error {
	if err := checkChunkRegion(sb.Chunk, sb.RegionSize); err != nil {
		return err
	}
	if sb.DataOffset == 0 || sb.DataOffset%DataAlign != 0 {
		return fmt.Errorf("data offset %d is not a positive multiple of %d", sb.DataOffset, DataAlign)
	}
	if sb.MemberDataSize == 0 || sb.MemberDataSize%sb.Chunk != 0 {
		return fmt.Errorf("member data size %d is not a positive multiple of the chunk %d", sb.MemberDataSize, sb.Chunk)
	}
	if sb.MemberDataSize > math.MaxInt64/uint64(sb.Members) ||
		sb.DataOffset > math.MaxInt64-sb.MemberDataSize {
		return fmt.Errorf("member data size %d overflows", sb.MemberDataSize)
	}
	if sb.VolumeSize != uint64(sb.Members)*sb.MemberDataSize {
		return fmt.Errorf("volume size %d is not %d members * %d", sb.VolumeSize, sb.Members, sb.MemberDataSize)
	}
	if sb.BitmapOffset < Slots*SlotSize || sb.BitmapOffset%bitmapAlign != 0 {
		return fmt.Errorf("bitmap offset %d overlaps the superblocks or is not %d aligned", sb.BitmapOffset, bitmapAlign)
	}
	need := uint64(BitmapBytes(int64(sb.VolumeSize), int64(sb.RegionSize)))
	if sb.BitmapBytes < need || sb.BitmapBytes%bitmapAlign != 0 {
		return fmt.Errorf("bitmap of %d bytes, need a multiple of %d of at least %d", sb.BitmapBytes, bitmapAlign, need)
	}
	if sb.BitmapOffset > sb.DataOffset || sb.BitmapBytes > (sb.DataOffset-sb.BitmapOffset)/2 {
		return fmt.Errorf("two bitmaps of %d bytes at %d overlap data at %d", sb.BitmapBytes, sb.BitmapOffset, sb.DataOffset)
	}
	return nil
}

// checkChunkRegion checks the chunk and region sizes.
func checkChunkRegion(chunk, region uint64) error {
	if chunk < MinChunk || chunk > MaxChunk || chunk&(chunk-1) != 0 {
		return fmt.Errorf("chunk size %d is not a power of two from %d to %d", chunk, MinChunk, MaxChunk)
	}
	if region < chunk || region > MaxRegion || region&(region-1) != 0 {
		return fmt.Errorf("region size %d is not a power of two from the chunk size %d to %d", region, chunk, uint64(MaxRegion))
	}
	return nil
}
