package devtest

import "encoding/binary"

// Pattern returns n bytes of deterministic pseudo-random data for the range
// starting at device offset off. The byte at a device offset depends only
// on seed and that offset, so any sub-range of a pattern equals the pattern
// of the sub-range: Pattern(s, off, n)[i] == Pattern(s, off+i, 1)[0].
// Different seeds give different data.
func Pattern(seed, off int64, n int) []byte {
	p := make([]byte, n)
	FillPattern(p, seed, off)
	return p
}

// FillPattern fills p with Pattern(seed, off, len(p)) without allocating,
// for callers that need the data in a buffer of their own (an aligned one).
func FillPattern(p []byte, seed, off int64) {
	i := 0
	// A partial first word, byte by byte.
	for ; i < len(p) && (off+int64(i))&7 != 0; i++ {
		x := off + int64(i)
		p[i] = byte(patternWord(seed, x>>3) >> (8 * (x & 7)))
	}
	// Whole words.
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], patternWord(seed, (off+int64(i))>>3))
	}
	// A partial last word.
	if i < len(p) {
		w := patternWord(seed, (off+int64(i))>>3)
		for b := 0; i < len(p); i, b = i+1, b+1 {
			p[i] = byte(w >> (8 * b))
		}
	}
}

// patternWord is the splitmix64 finalizer of the word's index mixed with
// the seed; the additive constant keeps seed 0, word 0 from being zero.
func patternWord(seed, word int64) uint64 {
	z := uint64(word)*0x9e3779b97f4a7c15 + uint64(seed)*0xd1342543de82ef95 + 0x632be59bd9b4e019
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
