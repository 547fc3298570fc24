package devtest

import (
	"math/rand/v2"
	"sync"

	"github.com/netraid/netraid/blockdev"
)

// Load bounds for the concurrent subtests.
const (
	workers       = 8
	readsPerGor   = 32
	maxReadLen    = 128 << 10
	writtenRegion = 2 << 20
)

func testConcurrentReaders(e *env) {
	const seed = 7
	e.fill(seed, 0, e.size)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range readsPerGor {
				c := e.randomSpan(rng)
				if !e.readCheck(c, seed, "concurrent read") {
					return
				}
			}
		})
	}
	wg.Wait()
}

func testConcurrentWriters(e *env) {
	rng := rand.New(rand.NewPCG(2, 2))
	head := min(e.size, writtenRegion)
	pieces := e.pieces(rng, 0, head)
	pieces = append(pieces, e.pieces(rng, max(head, e.size-4*chunk), e.size)...)
	e.fill(10, 0, e.size)
	for round := range int64(2) {
		seed := 11 + round
		var wg sync.WaitGroup
		for g := range workers {
			wg.Go(func() {
				mine := everyNth(pieces, g, workers)
				if g%2 == 1 {
					reverse(mine)
				}
				for _, c := range mine {
					if !e.writeUnchecked(c, seed, "concurrent write") {
						return
					}
				}
			})
		}
		wg.Wait()
		if e.t.Failed() {
			return
		}
		for _, c := range pieces {
			FillPattern(e.shadow[c.off:c.off+c.n], seed, c.off)
		}
		e.verifyAll("after concurrent writes on adjacent ranges")
	}
}

// testConcurrentMixed reads ranges that concurrent writers leave alone but
// whose edge blocks they share: a read-modify-write below must not expose
// a stale or torn block to readers.
func testConcurrentMixed(e *env) {
	const still, moving = 20, 21
	rng := rand.New(rand.NewPCG(3, 3))
	pieces := e.pieces(rng, 0, min(e.size, writtenRegion))
	static, written := everyNth(pieces, 0, 2), everyNth(pieces, 1, 2)
	e.fill(still, 0, e.size)
	var wg sync.WaitGroup
	for g := range workers / 2 {
		wg.Go(func() {
			for _, c := range everyNth(written, g, workers/2) {
				if !e.writeUnchecked(c, moving, "concurrent write") {
					return
				}
			}
		})
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 4))
			for range readsPerGor {
				c := static[rng.IntN(len(static))]
				if !e.readCheck(c, still, "read beside concurrent writes") {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, c := range written {
		FillPattern(e.shadow[c.off:c.off+c.n], moving, c.off)
	}
	e.verifyAll("after concurrent reads and writes")
}

// randomSpan returns a random in-range span aligned to the unit.
func (e *env) randomSpan(rng *rand.Rand) span {
	off := rng.Int64N(e.size/e.unit) * e.unit
	n := (1 + rng.Int64N(maxReadLen/e.unit)) * e.unit
	return span{off, min(n, e.size-off)}
}

// pieces cuts [from, to) into adjacent spans of random length, aligned to
// the unit, so that byte-granular neighbours share edge blocks.
func (e *env) pieces(rng *rand.Rand, from, to int64) []span {
	var s []span
	for off := from; off < to; {
		var n int64
		if e.unit == 1 {
			n = 1 + rng.Int64N(3*e.blk)
		} else {
			n = (1 + rng.Int64N(16)) * e.blk
		}
		n = min(n, to-off)
		s = append(s, span{off, n})
		off += n
	}
	return s
}

// readCheck reads c from a goroutine and compares it with the pattern.
// It reports failures with Errorf and returns false on the first one.
func (e *env) readCheck(c span, seed int64, what string) bool {
	p := blockdev.GetBuffer(int(c.n), e.align)
	defer blockdev.PutBuffer(p)
	n, err := e.d.ReadAt(p, c.off)
	if err != nil || n != len(p) {
		e.t.Errorf("%s %v = %d, %v", what, c, n, err)
		return false
	}
	if i := diff(p, Pattern(seed, c.off, int(c.n))); i >= 0 {
		e.t.Errorf("%s %v: wrong byte at %d", what, c, c.off+int64(i))
		return false
	}
	return true
}

// writeUnchecked writes the pattern over c from a goroutine without
// touching the shadow copy; the caller updates it after the goroutines end.
func (e *env) writeUnchecked(c span, seed int64, what string) bool {
	p := blockdev.GetBuffer(int(c.n), e.align)
	defer blockdev.PutBuffer(p)
	FillPattern(p, seed, c.off)
	n, err := e.d.WriteAt(p, c.off)
	if err != nil || n != len(p) {
		e.t.Errorf("%s %v = %d, %v", what, c, n, err)
		return false
	}
	return true
}

func everyNth(s []span, first, step int) []span {
	var out []span
	for i := first; i < len(s); i += step {
		out = append(out, s[i])
	}
	return out
}

func reverse(s []span) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}
