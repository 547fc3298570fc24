package stripe

import (
	"fmt"
	"iter"
)

// Extent is the part of a volume request that lives on one member.
type Extent struct {
	// Disk is the member's index.
	Disk int
	// DiskOff is the byte offset on the member.
	DiskOff int64
	// Len is the length in bytes.
	Len int64
	// BufOff is the offset of this part in the request's buffer.
	BufOff int64
}

// Map splits the volume range [off, off+n) of a stripe of disks members
// with the given chunk size into per-member extents, in buffer order. Chunk
// i of the volume lives on member i%disks at member offset
// (i/disks)*chunk. With one member the range is a single extent; otherwise
// there is one extent per chunk touched, so extent k lies on member
// (ext[0].Disk+k)%disks. A zero length gives no extents.
//
// chunk and disks must be positive and off and n not negative; the caller
// checks the range against the volume's size.
func Map(off, n, chunk int64, disks int) []Extent {
	checkGeometry(off, n, chunk, disks)
	if n == 0 {
		return nil
	}
	count := int64(1)
	if disks > 1 {
		count = (off+n-1)/chunk - off/chunk + 1
	}
	ext := make([]Extent, 0, count)
	for e := range pieces(off, n, chunk, disks) {
		ext = append(ext, e)
	}
	return ext
}

// pieces yields Map's extents one by one, without allocating.
func pieces(off, n, chunk int64, disks int) iter.Seq[Extent] {
	return func(yield func(Extent) bool) {
		if n == 0 {
			return
		}
		if disks == 1 {
			yield(Extent{Disk: 0, DiskOff: off, Len: n})
			return
		}
		d := int64(disks)
		for c := off / chunk; c <= (off+n-1)/chunk; c++ {
			start := max(off, c*chunk)
			end := min(off+n, (c+1)*chunk)
			e := Extent{
				Disk:    int(c % d),
				DiskOff: c/d*chunk + start - c*chunk,
				Len:     end - start,
				BufOff:  start - off,
			}
			if !yield(e) {
				return
			}
		}
	}
}

// DiskRanges returns, for each member that the volume range [off, off+n)
// touches, the part of the member it covers, in member order. Each such
// part is contiguous on its member: the first chunk's tail, whole chunks,
// the last chunk's head. BufOff is zero: a member's part is spread over
// the volume range, interleaved with the other members'. Its cost does not
// depend on n, so it suits Trim and WriteZeroes of any size.
//
// The preconditions are Map's.
func DiskRanges(off, n, chunk int64, disks int) []Extent {
	checkGeometry(off, n, chunk, disks)
	if n == 0 {
		return nil
	}
	d := int64(disks)
	first, last := off/chunk, (off+n-1)/chunk
	ext := make([]Extent, 0, min(last-first+1, d))
	for disk := range d {
		// The first and last chunks of the range on this member.
		cf := first + (disk-first%d+d)%d
		cl := last - (last%d-disk+d)%d
		if cf > last {
			continue
		}
		start := cf/d*chunk + max(off, cf*chunk) - cf*chunk
		end := cl/d*chunk + min(off+n, (cl+1)*chunk) - cl*chunk
		ext = append(ext, Extent{Disk: int(disk), DiskOff: start, Len: end - start})
	}
	return ext
}

// checkGeometry panics on arguments that no caller may pass: they are
// programming errors, not I/O errors.
func checkGeometry(off, n, chunk int64, disks int) {
	if chunk <= 0 || disks <= 0 || off < 0 || n < 0 {
		panic(fmt.Sprintf("stripe: Map(off %d, n %d, chunk %d, disks %d): bad arguments", off, n, chunk, disks))
	}
}
