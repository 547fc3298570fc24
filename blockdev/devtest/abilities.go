package devtest

import (
	"crypto/sha256"

	"github.com/netraid/netraid/blockdev"
)

func testFlush(e *env) {
	if err := e.d.Flush(); err != nil {
		e.t.Fatalf("Flush of a fresh device: %v", err)
	}
	for i, c := range e.cases() {
		e.fill(int64(i+1), c.off, c.n)
	}
	for range 2 {
		if err := e.d.Flush(); err != nil {
			e.t.Fatalf("Flush: %v", err)
		}
	}
	e.verifyAll("after Flush")
}

func testFUA(e *env) {
	for i, c := range e.cases() {
		data := Pattern(int64(i+1), c.off, int(c.n))
		p := e.buf(int(c.n), data)
		if n, err := blockdev.WriteFUA(e.d, p, c.off); err != nil || n != len(p) {
			e.t.Fatalf("WriteFUA(%v) = %d, %v", c, n, err)
		}
		blockdev.PutBuffer(p)
		copy(e.shadow[c.off:], data)
		e.verify("after WriteFUA "+c.String(), c.off-e.blk, c.n+2*e.blk)
	}
	e.verifyAll("after FUA writes")
}

// zeroCases are ranges for WriteZeroes and Trim: single blocks, ranges
// crossing chunks, whole chunks (which a file may deallocate), the end.
func (e *env) zeroCases() []span {
	b, z := e.blk, e.size
	c := []span{
		{b, b},
		{chunk - b, 2 * b},
		{2 * chunk, 3 * chunk},
		{6*chunk - b, 2*chunk + 2*b},
		{z - 2*b, 2 * b},
		{z - chunk, chunk},
		{5 * b, 0},
	}
	if e.o.Unaligned {
		c = append(c,
			span{1, 5},
			span{b - 3, 2*b + 6},
			span{9*chunk + 7, 2 * chunk},
			span{z - chunk - 9, 9},
			span{z - 9, 9},
		)
	}
	return c
}

func testWriteZeroes(e *env) {
	for i, mayTrim := range []bool{false, true} {
		e.fill(int64(50+i), 0, e.size)
		for _, c := range e.zeroCases() {
			if err := blockdev.WriteZeroes(e.d, c.off, c.n, mayTrim); err != nil {
				e.t.Fatalf("WriteZeroes(%v, mayTrim %v): %v", c, mayTrim, err)
			}
			clear(e.shadow[c.off : c.off+c.n])
			e.verify("after WriteZeroes "+c.String(), c.off-2*e.blk, c.n+4*e.blk)
		}
		e.verifyAll("after WriteZeroes")
		// A zeroed (perhaps deallocated) range takes data again.
		for j, c := range e.zeroCases() {
			e.fill(int64(60+j), c.off, c.n)
		}
		e.verifyAll("after rewriting zeroed ranges")
	}
}

// trimCases are the zeroCases aligned to blocks, and with Unaligned a few
// that start or end inside a block.
func (e *env) trimCases() []span {
	b, z := e.blk, e.size
	c := []span{{0, b}, {chunk, chunk}, {3*chunk - b, 2*chunk + 2*b}, {z - chunk, chunk}, {5 * b, 0}}
	if e.o.Unaligned {
		c = append(c, span{b + 1, 3 * b}, span{12*chunk - 5, 2*b + 10}, span{z - 3*b - 3, 2*b + 3})
	}
	return c
}

func testTrim(e *env) {
	e.fill(30, 0, e.size)
	for _, c := range e.trimCases() {
		if err := blockdev.Trim(e.d, c.off, c.n); err != nil {
			e.t.Fatalf("Trim(%v): %v", c, err)
		}
		got := e.read(c.off, c.n)
		for i, v := range got {
			if old := e.shadow[c.off+int64(i)]; v != old && v != 0 {
				e.t.Fatalf("Trim(%v): byte at %d is %#02x, neither the old %#02x nor zero",
					c, c.off+int64(i), v, old)
			}
		}
		if e.o.TrimZeroes {
			from := (c.off + e.blk - 1) &^ (e.blk - 1)
			to := (c.off + c.n) &^ (e.blk - 1)
			for i := from; i < to; i++ {
				if got[i-c.off] != 0 {
					e.t.Fatalf("Trim(%v): byte at %d is %#02x, want zero", c, i, got[i-c.off])
				}
			}
		}
		copy(e.shadow[c.off:], got)
		e.verify("neighbours of Trim "+c.String(), c.off-2*e.blk, c.n+4*e.blk)
	}
	for j, c := range e.trimCases() {
		e.fill(int64(70+j), c.off, c.n)
	}
	e.verifyAll("after rewriting trimmed ranges")
}

func testMap(e *env) {
	b, z := e.blk, e.size
	e.fill(80, 0, 2*chunk)
	e.fill(81, 4*chunk, 4*chunk)
	if err := blockdev.Trim(e.d, 4*chunk, 4*chunk); err != nil {
		e.t.Fatalf("Trim: %v", err)
	}
	copy(e.shadow[4*chunk:], e.read(4*chunk, 4*chunk))
	e.fill(82, 10*chunk, 2*chunk)
	if err := blockdev.WriteZeroes(e.d, 10*chunk, 2*chunk, true); err != nil {
		e.t.Fatalf("WriteZeroes: %v", err)
	}
	clear(e.shadow[10*chunk : 12*chunk])
	e.fill(83, z-chunk, b)

	ranges := []span{{0, z}, {0, 0}, {chunk - b, 2 * b}, {3 * chunk, 10 * chunk}, {z - b, b}, {z, 0}}
	if e.o.Unaligned {
		ranges = append(ranges, span{1, chunk}, span{chunk + 3, 5}, span{z - chunk - 1, 2})
	}
	for _, r := range ranges {
		ext, err := blockdev.Map(e.d, r.off, r.n)
		if err != nil {
			e.t.Fatalf("Map(%v): %v", r, err)
		}
		e.checkExtents(r, ext)
	}
	e.verifyAll("after Map")
}

// checkExtents checks that ext covers r exactly, in order and without gaps,
// and that every range it calls zero holds zeroes.
func (e *env) checkExtents(r span, ext []blockdev.Extent) {
	e.t.Helper()
	pos := r.off
	for i, x := range ext {
		switch {
		case x.Off != pos:
			e.t.Fatalf("Map(%v): extent %d %+v starts at %d, want %d", r, i, x, x.Off, pos)
		case x.Len <= 0:
			e.t.Fatalf("Map(%v): extent %d %+v is empty", r, i, x)
		case x.Hole && !x.Zero:
			e.t.Fatalf("Map(%v): extent %d %+v is a hole that does not read as zeroes", r, i, x)
		}
		if x.Zero {
			for j, v := range e.shadow[x.Off : x.Off+x.Len] {
				if v != 0 {
					e.t.Fatalf("Map(%v): extent %d %+v says zero, byte at %d is %#02x",
						r, i, x, x.Off+int64(j), v)
				}
			}
		}
		pos += x.Len
	}
	if pos != r.off+r.n {
		e.t.Fatalf("Map(%v): extents %+v end at %d, want %d", r, ext, pos, r.off+r.n)
	}
}

func testChecksum(e *env) {
	b := e.blk
	n := 2*chunk + b
	a, c := b, 4*chunk+2*b
	data := Pattern(40, 0, int(n))
	e.write(a, data)
	e.write(c, data)
	sum := sha256.Sum256(data)
	e.checksum(a, n, sum, "first copy")
	e.checksum(c, n, sum, "second copy")
	e.checksum(8*chunk, chunk, sha256.Sum256(make([]byte, chunk)), "zeroes")
	e.checksum(0, 0, sha256.Sum256(nil), "empty range")
	if e.o.Unaligned {
		e.checksum(a+1, n-2, sha256.Sum256(data[1:n-1]), "unaligned range")
	}

	// One changed byte changes the sum.
	k := n / 2
	changed := append([]byte(nil), data...)
	changed[k] ^= 0x5a
	blk := k &^ (b - 1)
	e.write(c+blk, changed[blk:blk+b])
	got, err := blockdev.Checksum(e.d, c, n)
	if err != nil {
		e.t.Fatalf("Checksum: %v", err)
	}
	if got == blockdev.Sum(sum) {
		e.t.Fatalf("Checksum did not change when byte %d changed", c+k)
	}
	e.checksum(c, n, sha256.Sum256(changed), "changed copy")
	e.checksum(0, e.size, sha256.Sum256(e.shadow), "whole device")
}

// checksum checks that blockdev.Checksum of [off, off+n) is want.
func (e *env) checksum(off, n int64, want [sha256.Size]byte, what string) {
	e.t.Helper()
	got, err := blockdev.Checksum(e.d, off, n)
	if err != nil {
		e.t.Fatalf("Checksum(%s, off %d len %d): %v", what, off, n, err)
	}
	if got != blockdev.Sum(want) {
		e.t.Fatalf("Checksum(%s, off %d len %d) = %x, want %x", what, off, n, got[:8], want[:8])
	}
}
