package stripe

import (
	"errors"
	"fmt"

	"github.com/netraid/netraid/blockdev"
)

// errBadMap: a member's allocation map does not cover the range asked.
var errBadMap = errors.New("member's allocation map does not cover the range asked")

// Map reports the allocation of the volume range [off, off+n): each touched
// member maps its part (in parallel), and the members' maps are woven back
// into volume order, adjacent extents with equal flags merged. A zero
// length gives no extents.
func (s *Set) Map(off, n int64) ([]blockdev.Extent, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if err := blockdev.CheckRange(s.size, off, n); err != nil {
		return nil, fmt.Errorf("stripe: %s: %w", opMap, err)
	}
	ranges := DiskRanges(off, n, s.chunk, len(s.disks))
	maps := make([][]blockdev.Extent, len(s.disks))
	_, err := s.run(opMap, ranges, len(ranges), func(d blockdev.Device, e Extent) (int64, error) {
		m, err := blockdev.Map(d, e.DiskOff, e.Len)
		if err != nil {
			return 0, err
		}
		if !covers(m, e.DiskOff, e.Len) {
			return 0, fmt.Errorf("%w: %+v", errBadMap, m)
		}
		maps[e.Disk] = m
		return e.Len, nil
	})
	if err != nil {
		return nil, err
	}
	return s.weave(off, n, maps), nil
}

// covers reports whether m is a run of non-empty extents covering
// [off, off+n) exactly, in order.
func covers(m []blockdev.Extent, off, n int64) bool {
	pos := off
	for _, x := range m {
		if x.Off != pos || x.Len <= 0 {
			return false
		}
		pos += x.Len
	}
	return pos == off+n
}

// weave walks the volume range chunk piece by chunk piece and takes each
// piece's flags from its member's map, which it consumes in order: a
// member's pieces come in increasing member offset.
func (s *Set) weave(off, n int64, maps [][]blockdev.Extent) []blockdev.Extent {
	var out []blockdev.Extent
	next := make([]int, len(s.disks)) // index into maps[disk]
	for p := range pieces(off, n, s.chunk, len(s.disks)) {
		vol, pos, left := off+p.BufOff, p.DiskOff, p.Len
		for left > 0 {
			x := maps[p.Disk][next[p.Disk]]
			take := min(x.Off+x.Len-pos, left)
			out = appendMerged(out, blockdev.Extent{Off: vol, Len: take, Hole: x.Hole, Zero: x.Zero})
			vol, pos, left = vol+take, pos+take, left-take
			if pos == x.Off+x.Len {
				next[p.Disk]++
			}
		}
	}
	return out
}

// appendMerged appends x to out, extending out's last extent instead if x
// follows it with the same flags.
func appendMerged(out []blockdev.Extent, x blockdev.Extent) []blockdev.Extent {
	if k := len(out) - 1; k >= 0 {
		last := &out[k]
		if last.Off+last.Len == x.Off && last.Hole == x.Hole && last.Zero == x.Zero {
			last.Len += x.Len
			return out
		}
	}
	return append(out, x)
}
