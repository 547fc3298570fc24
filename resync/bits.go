package resync

import (
	"encoding/binary"
	"math/bits"
)

// Bit ranges over []uint64 words: bit i is bit i%64 of word i/64, which
// encoded little-endian is bit i%8 of byte i/8 — the on-disk order.

// wordMask returns the mask of bits [lo, hi] of word w (bit positions in
// the whole array), or 0 if the word does not meet the range.
func wordMask(w, lo, hi int64) uint64 {
	base := w * 64
	if hi < base || lo > base+63 {
		return 0
	}
	from, to := max(lo-base, 0), min(hi-base, 63)
	return (^uint64(0) >> (63 - to)) &^ (1<<from - 1)
}

// eachWord calls fn for every word meeting bits [first, last] with the
// mask of the range within that word.
func eachWord(first, last int64, fn func(w int64, mask uint64)) {
	if last < first {
		return
	}
	for w := first / 64; w <= last/64; w++ {
		fn(w, wordMask(w, first, last))
	}
}

// setBits sets bits [first, last] and returns how many were clear.
func setBits(ws []uint64, first, last int64) (n int64) {
	eachWord(first, last, func(w int64, m uint64) {
		n += int64(bits.OnesCount64(m &^ ws[w]))
		ws[w] |= m
	})
	return n
}

// clearBits clears bits [first, last] and returns how many were set.
func clearBits(ws []uint64, first, last int64) (n int64) {
	eachWord(first, last, func(w int64, m uint64) {
		n += int64(bits.OnesCount64(m & ws[w]))
		ws[w] &^= m
	})
	return n
}

// allSet reports whether bits [first, last] are all set.
func allSet(ws []uint64, first, last int64) bool {
	ok := true
	eachWord(first, last, func(w int64, m uint64) {
		ok = ok && ws[w]&m == m
	})
	return ok
}

// countBits counts the set bits in [first, last].
func countBits(ws []uint64, first, last int64) (n int64) {
	eachWord(first, last, func(w int64, m uint64) {
		n += int64(bits.OnesCount64(ws[w] & m))
	})
	return n
}

// nextSet returns the first set bit at or after from and below limit.
func nextSet(ws []uint64, from, limit int64) (int64, bool) {
	if from < 0 {
		from = 0
	}
	for w := from / 64; w*64 < limit; w++ {
		v := ws[w]
		if w == from/64 {
			v &^= 1<<(from%64) - 1
		}
		if v != 0 {
			i := w*64 + int64(bits.TrailingZeros64(v))
			return i, i < limit
		}
	}
	return 0, false
}

// getBit reports whether bit i is set.
func getBit(ws []uint64, i int64) bool { return ws[i/64]&(1<<(i%64)) != 0 }

// encodeWords writes ws little-endian into p (len(p) == 8*len(ws)).
func encodeWords(p []byte, ws []uint64) {
	for i, v := range ws {
		binary.LittleEndian.PutUint64(p[8*i:], v)
	}
}

// decodeWords reads len(ws) little-endian words from p.
func decodeWords(ws []uint64, p []byte) {
	for i := range ws {
		ws[i] = binary.LittleEndian.Uint64(p[8*i:])
	}
}
