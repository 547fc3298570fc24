package nbd

import (
	"bytes"

	"github.com/netraid/netraid/blockdev"
)

// sparse is a Mem that maps its all-zero 4 KiB pages as holes.
type sparse struct{ *blockdev.Mem }

var _ blockdev.Mapper = sparse{}

func newSparse(size int64) sparse { return sparse{blockdev.NewMem(size)} }

func (s sparse) Map(off, n int64) ([]blockdev.Extent, error) {
	if err := blockdev.CheckRange(s.Size(), off, n); err != nil {
		return nil, err
	}
	data := make([]byte, n)
	if _, err := s.ReadAt(data, off); err != nil {
		return nil, err
	}
	var out []blockdev.Extent
	for pos := off; pos < off+n; {
		end := min((pos/4096+1)*4096, off+n)
		zero := !bytes.ContainsFunc(data[pos-off:end-off], func(r rune) bool { return r != 0 })
		if k := len(out) - 1; k >= 0 && out[k].Hole == zero {
			out[k].Len += end - pos
		} else {
			out = append(out, blockdev.Extent{Off: pos, Len: end - pos, Hole: zero, Zero: zero})
		}
		pos = end
	}
	return out, nil
}
