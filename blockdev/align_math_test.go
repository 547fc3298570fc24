package blockdev

import (
	"reflect"
	"testing"
)

func TestBouncePieces(t *testing.T) {
	const bs, max = 512, 2048
	p := func(start, end, from, to int64) bouncePiece { return bouncePiece{start, end, from, to} }
	cases := []struct {
		name   string
		off, n int64
		want   []bouncePiece
	}{
		{"one byte", 1, 1, []bouncePiece{p(0, 512, 1, 2)}},
		{"inside a block", 100, 300, []bouncePiece{p(0, 512, 100, 400)}},
		{"whole block", 512, 512, []bouncePiece{p(512, 1024, 512, 1024)}},
		{"last byte of a block", 511, 1, []bouncePiece{p(0, 512, 511, 512)}},
		{"across a block edge", 511, 2, []bouncePiece{p(0, 1024, 511, 513)}},
		{"aligned head, partial tail", 1024, 600, []bouncePiece{p(1024, 2048, 1024, 1624)}},
		{"partial head, aligned tail", 1000, 1048, []bouncePiece{p(512, 2048, 1000, 2048)}},
		{"exactly one piece", 0, 2048, []bouncePiece{p(0, 2048, 0, 2048)}},
		{"two pieces, edges partial", 10, 2048, []bouncePiece{p(0, 2048, 10, 2048), p(2048, 2560, 2048, 2058)}},
		{"three pieces", 2047, 4098, []bouncePiece{
			p(1536, 3584, 2047, 3584), p(3584, 5632, 3584, 5632), p(5632, 6656, 5632, 6145)}},
	}
	for _, c := range cases {
		got := bouncePieces(c.off, c.n, bs, max)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: bouncePieces(%d, %d) = %+v, want %+v", c.name, c.off, c.n, got, c.want)
		}
		// Only the first piece may have a partial head, the last a partial tail.
		for i, pc := range got {
			if (pc.Head() && i != 0) || (pc.Tail() && i != len(got)-1) {
				t.Errorf("%s: piece %d %+v has a partial edge inside the request", c.name, i, pc)
			}
			if pc.Start%bs != 0 || pc.End%bs != 0 || pc.Len() > max {
				t.Errorf("%s: piece %d %+v is not aligned or too long", c.name, i, pc)
			}
		}
	}
}

func TestInnerBlocks(t *testing.T) {
	cases := []struct{ off, n, lo, hi int64 }{
		{0, 512, 0, 512},
		{0, 511, 0, 0},
		{1, 511, 512, 512},
		{1, 1023, 512, 1024},
		{1, 1534, 512, 1024},
		{100, 300, 512, 0},
		{100, 2000, 512, 2048},
		{512, 0, 512, 512},
	}
	for _, c := range cases {
		lo, hi := innerBlocks(c.off, c.n, 512)
		if lo != c.lo || hi != c.hi {
			t.Errorf("innerBlocks(%d, %d) = [%d, %d), want [%d, %d)", c.off, c.n, lo, hi, c.lo, c.hi)
		}
	}
}

func TestStripeOf(t *testing.T) {
	seen := map[int]bool{}
	for b := range int64(lockStripes) {
		s := stripeOf(b)
		if s < 0 || s >= lockStripes {
			t.Fatalf("stripeOf(%d) = %d, out of the table", b, s)
		}
		if s == stripeOf(b+1) {
			t.Errorf("neighbouring blocks %d and %d share stripe %d", b, b+1, s)
		}
		seen[s] = true
	}
	if len(seen) < lockStripes/2 {
		t.Errorf("%d consecutive blocks use only %d stripes", lockStripes, len(seen))
	}
}
