package meta

import (
	"fmt"
	"math"

	"github.com/dustin/go-humanize"
)

// Geometry limits and defaults.
const (
	// MinChunk and MaxChunk bound the stripe chunk size.
	MinChunk = 4 << 10
	MaxChunk = 1 << 30
	// MaxRegion bounds the bitmap region size.
	MaxRegion = 1 << 30

	// DefaultChunk is the stripe chunk size when none is given. 64 KiB
	// keeps the small I/O of a filesystem or a broker (4 to 64 KiB) on
	// one member, so one request is one disk I/O, while a large
	// sequential request (from 128 KiB up) is still spread over several
	// members in parallel.
	DefaultChunk = 64 << 10

	// DefaultRegion is the write-intent bitmap granularity when none is
	// given. Every write to a clean region costs a synchronous bitmap
	// write (to every member) before the data may go out, and every dirty
	// bit costs a whole region of copying when a resync runs. Smaller
	// regions make resyncs after a crash or a disconnect shorter but put a
	// metadata write in front of more data writes; larger ones the
	// opposite. At 1 MiB a 4 TiB volume has a 512 KiB bitmap, writes that
	// are local in time (a log, a filesystem journal, hot files) mostly
	// land in regions already dirty, and the worst case after a crash is
	// resyncing 1 MiB per region that was being written — the regions
	// open at a crash are few, so that is seconds, not hours.
	DefaultRegion = 1 << 20

	// DataAlign is the alignment of the data area on every member.
	DataAlign = 1 << 20

	// bitmapAlign is the alignment of the bitmap area and its size.
	bitmapAlign = 4096
)

// Layout is the geometry of a volume's members. Every member has the same
// layout; see the package documentation for the picture.
type Layout struct {
	// Members is the number of member disks.
	Members int
	// Chunk is the stripe chunk size.
	Chunk int64
	// Region is the bitmap region size.
	Region int64
	// DataOffset is where data starts on each member: the size of the
	// metadata area, a multiple of DataAlign.
	DataOffset int64
	// MemberDataSize is the data bytes used on each member, a multiple of
	// Chunk: the smallest member decides it.
	MemberDataSize int64
	// VolumeSize is Members * MemberDataSize.
	VolumeSize int64
	// BitmapOffset is where the two bitmaps start on each member.
	BitmapOffset int64
	// BitmapBytes is the size of one bitmap.
	BitmapBytes int64
}

// SizeError reports a disk too small to be a member. It wraps ErrTooSmall.
type SizeError struct {
	// Disk is the index of the disk in the list given to PlanLayout.
	Disk int
	// Size is the disk's size and Min the smallest size that would do.
	Size, Min int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("meta: disk %d is too small: %s (%d bytes), a member needs at least %s (%d bytes) for metadata and one chunk",
		e.Disk, humanize.IBytes(uint64(max(e.Size, 0))), e.Size, humanize.IBytes(uint64(e.Min)), e.Min)
}

func (e *SizeError) Unwrap() error { return ErrTooSmall }

// BitmapBytes returns the size of one bitmap for a volume of the given size
// and region size: one bit per region, rounded up to 4096 bytes.
func BitmapBytes(volumeSize, region int64) int64 {
	if volumeSize <= 0 || region <= 0 {
		return 0
	}
	bits := (volumeSize-1)/region + 1
	return roundUp((bits+7)/8, bitmapAlign)
}

// PlanLayout lays out a volume over disks of the given sizes (in member
// order). A zero chunk means DefaultChunk and a zero region means
// DefaultRegion, or the chunk size if that is larger. The metadata area (two superblock slots, then two bitmaps) is
// rounded up to DataAlign and the same on every member; the smallest disk
// decides MemberDataSize, rounded down to the chunk. Errors wrap ErrLayout,
// or are a *SizeError naming the first disk too small.
func PlanLayout(diskSizes []int64, chunk, region int64) (Layout, error) {
	if chunk == 0 {
		chunk = DefaultChunk
	}
	if region == 0 {
		region = max(DefaultRegion, chunk)
	}
	n := len(diskSizes)
	if n == 0 || n > MaxMembers {
		return Layout{}, fmt.Errorf("%w: %d disks, want 1 to %d", ErrLayout, n, MaxMembers)
	}
	if chunk < 0 || region < 0 {
		return Layout{}, fmt.Errorf("%w: negative chunk %d or region %d", ErrLayout, chunk, region)
	}
	if err := checkChunkRegion(uint64(chunk), uint64(region)); err != nil {
		return Layout{}, fmt.Errorf("%w: %w", ErrLayout, err)
	}
	smallest := int64(math.MaxInt64)
	for _, s := range diskSizes {
		smallest = min(smallest, s)
	}
	// Size the bitmaps for the volume the disks would make with no
	// metadata at all: an upper bound, so the area is big enough.
	perMember := max(smallest, 0) / chunk * chunk
	if perMember > math.MaxInt64/int64(n) {
		return Layout{}, fmt.Errorf("%w: %d disks of %d bytes overflow a 64-bit volume size", ErrLayout, n, smallest)
	}
	area := roundUp(Slots*SlotSize+2*BitmapBytes(int64(n)*perMember, region), DataAlign)
	need := area + chunk
	for i, s := range diskSizes {
		if s < need {
			return Layout{}, &SizeError{Disk: i, Size: s, Min: need}
		}
	}
	l := Layout{
		Members:        n,
		Chunk:          chunk,
		Region:         region,
		DataOffset:     area,
		MemberDataSize: (smallest - area) / chunk * chunk,
		BitmapOffset:   Slots * SlotSize,
	}
	l.VolumeSize = int64(n) * l.MemberDataSize
	l.BitmapBytes = BitmapBytes(l.VolumeSize, region)
	return l, nil
}

// roundUp rounds n up to a multiple of align, a power of two.
func roundUp(n, align int64) int64 { return (n + align - 1) &^ (align - 1) }
