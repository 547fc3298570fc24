package resync

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestBitsAgainstModel checks the word-wise bit helpers against a []bool.
func TestBitsAgainstModel(t *testing.T) {
	const n = 300
	rng := rand.New(rand.NewPCG(1, 2))
	ws := make([]uint64, (n+63)/64)
	model := make([]bool, n)
	for i := range 2000 {
		first := rng.Int64N(n)
		last := first + rng.Int64N(n-first+1) - 1 // may be empty
		var want int64
		switch i % 2 {
		case 0:
			for k := first; k <= last; k++ {
				if !model[k] {
					want++
				}
				model[k] = true
			}
			if got := setBits(ws, first, last); got != want {
				t.Fatalf("setBits(%d, %d) = %d, want %d", first, last, got, want)
			}
		case 1:
			for k := first; k <= last; k++ {
				if model[k] {
					want++
				}
				model[k] = false
			}
			if got := clearBits(ws, first, last); got != want {
				t.Fatalf("clearBits(%d, %d) = %d, want %d", first, last, got, want)
			}
		}
		a, b := rng.Int64N(n), rng.Int64N(n)
		a, b = min(a, b), max(a, b)
		count, all := int64(0), true
		for k := a; k <= b; k++ {
			if model[k] {
				count++
			} else {
				all = false
			}
		}
		if got := countBits(ws, a, b); got != count {
			t.Fatalf("countBits(%d, %d) = %d, want %d", a, b, got, count)
		}
		if got := allSet(ws, a, b); got != all {
			t.Fatalf("allSet(%d, %d) = %v, want %v", a, b, got, all)
		}
		next, ok := int64(0), false
		for k := a; k < n; k++ {
			if model[k] {
				next, ok = k, true
				break
			}
		}
		if got, gotOK := nextSet(ws, a, n); got != next || gotOK != ok {
			t.Fatalf("nextSet(%d) = %d, %v, want %d, %v", a, got, gotOK, next, ok)
		}
	}
}

func TestEncodingIsLSBFirst(t *testing.T) {
	ws := make([]uint64, 2)
	setBits(ws, 0, 0)
	setBits(ws, 9, 9)
	setBits(ws, 64, 64)
	p := make([]byte, 16)
	encodeWords(p, ws)
	want := []byte{0x01, 0x02, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(p, want) {
		t.Fatalf("encoded % x, want % x", p, want)
	}
	back := make([]uint64, 2)
	decodeWords(back, p)
	if back[0] != ws[0] || back[1] != ws[1] {
		t.Fatalf("decode(encode(%x)) = %x", ws, back)
	}
}
