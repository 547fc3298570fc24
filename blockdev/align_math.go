package blockdev

// Pure address arithmetic for Aligned, table-tested apart from the I/O.

// bouncePiece is one step of an unaligned request: the block-aligned
// device range [Start, End) that is read or written through one bounce
// buffer, and the part [From, To) of it that belongs to the request.
type bouncePiece struct {
	Start, End int64
	From, To   int64
}

// Head reports whether the piece's first block is only partly the
// request's (a write must read it first).
func (p bouncePiece) Head() bool { return p.From != p.Start }

// Tail reports whether the piece's last block is only partly the request's.
func (p bouncePiece) Tail() bool { return p.To != p.End }

// Len is the piece's bounce buffer length.
func (p bouncePiece) Len() int64 { return p.End - p.Start }

// roundDown and roundUp align x to a multiple of bs (x >= 0, bs > 0).
func roundDown(x, bs int64) int64 { return x - x%bs }
func roundUp(x, bs int64) int64   { return roundDown(x+bs-1, bs) }

// bouncePieces splits [off, off+n) into pieces whose aligned ranges are at
// most maxLen bytes (a multiple of bs, at least bs) and which together
// cover the blocks the request touches, in order. Only the first piece can
// have a partial head and only the last a partial tail. n must be > 0.
func bouncePieces(off, n, bs, maxLen int64) []bouncePiece {
	end := off + n
	start, stop := roundDown(off, bs), roundUp(end, bs)
	pieces := make([]bouncePiece, 0, (stop-start+maxLen-1)/maxLen)
	for s := start; s < stop; s += maxLen {
		e := min(s+maxLen, stop)
		pieces = append(pieces, bouncePiece{Start: s, End: e, From: max(s, off), To: min(e, end)})
	}
	return pieces
}

// innerBlocks returns the whole blocks inside [off, off+n): [lo, hi),
// empty (lo >= hi) if the range covers no whole block.
func innerBlocks(off, n, bs int64) (lo, hi int64) {
	return roundUp(off, bs), roundDown(off+n, bs)
}

// lockStripes is the size of Aligned's edge-block lock table.
const (
	lockStripeBits = 8
	lockStripes    = 1 << lockStripeBits
)

// stripeOf maps a block number to a lock stripe (Fibonacci hashing, so
// that neighbouring blocks land on different stripes).
func stripeOf(block int64) int {
	return int((uint64(block) * 0x9e3779b97f4a7c15) >> (64 - lockStripeBits))
}
