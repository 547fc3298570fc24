package devtest

import (
	"errors"
	"math"

	"github.com/netraid/netraid/blockdev"
)

// cases returns ranges that cross blocks, 64 KiB chunks and the device end,
// aligned to the block size, plus byte-granular ones if the device takes
// them.
func (e *env) cases() []span {
	b, z := e.blk, e.size
	c := []span{
		{0, b},
		{b, 2 * b},
		{chunk - b, 2 * b},
		{3*chunk - 2*b, 2*chunk + 4*b},
		{chunk + b, (z / 2) &^ (b - 1)},
		{z - b, b},
		{z - chunk - b, chunk + b},
	}
	if e.o.Unaligned {
		c = append(c,
			span{1, 1},
			span{b - 1, 2},
			span{b + 1, b - 2},
			span{17, 3*b + 5},
			span{chunk - 3, 7},
			span{2*chunk + 5, chunk + 100},
			span{z - 1, 1},
			span{z - 7, 7},
			span{z - chunk - 13, chunk + 13},
		)
	}
	return c
}

func testSize(e *env) {
	if got := e.d.Size(); got != e.size {
		e.t.Errorf("Size() changed from %d to %d", e.size, got)
	}
	if e.size%e.blk != 0 {
		e.t.Errorf("Size() = %d is not a multiple of the block size %d", e.size, e.blk)
	}
}

func testZeroFilled(e *env) {
	e.verifyAll("fresh device")
}

func testRoundTrip(e *env) {
	for i, c := range e.cases() {
		data := Pattern(int64(i+1), c.off, int(c.n))
		e.write(c.off, data)
		if j := diff(e.read(c.off, c.n), data); j >= 0 {
			e.t.Fatalf("read back %v: first wrong byte at %d", c, c.off+int64(j))
		}
		// A wider read sees the write and its untouched neighbours.
		e.verify("neighbours of "+c.String(), c.off-e.blk, c.n+2*e.blk)
	}
	e.verifyAll("after round trips")
}

func testZeroLength(e *env) {
	e.fill(1, 0, chunk)
	e.fill(2, e.size-chunk, chunk)
	offs := []int64{0, e.blk, e.size - e.blk, e.size}
	if e.o.Unaligned {
		offs = append(offs, 1, e.size-1)
	}
	empty := e.buf(0, nil)
	for _, off := range offs {
		for _, p := range [][]byte{nil, empty} {
			if n, err := e.d.ReadAt(p, off); n != 0 || err != nil {
				e.t.Errorf("ReadAt(len 0, off %d) = %d, %v; want 0, nil", off, n, err)
			}
			if n, err := e.d.WriteAt(p, off); n != 0 || err != nil {
				e.t.Errorf("WriteAt(len 0, off %d) = %d, %v; want 0, nil", off, n, err)
			}
			if n, err := blockdev.WriteFUA(e.d, p, off); n != 0 || err != nil {
				e.t.Errorf("WriteFUA(len 0, off %d) = %d, %v; want 0, nil", off, n, err)
			}
		}
		for _, mayTrim := range []bool{false, true} {
			if err := blockdev.WriteZeroes(e.d, off, 0, mayTrim); err != nil {
				e.t.Errorf("WriteZeroes(off %d, len 0, mayTrim %v) = %v", off, mayTrim, err)
			}
		}
		if err := blockdev.Trim(e.d, off, 0); err != nil {
			e.t.Errorf("Trim(off %d, len 0) = %v", off, err)
		}
	}
	e.verifyAll("after zero-length requests")
}

// outOfRange returns ranges that are not inside the device.
func (e *env) outOfRange() []span {
	b, z := e.blk, e.size
	c := []span{
		{-b, b},
		{-b, 2 * b},
		{z - b, 2 * b},
		{z, b},
		{z + b, b},
		{math.MaxInt64 &^ (b - 1), b},
		{math.MinInt64, b},
	}
	if e.o.Unaligned {
		c = append(c, span{-1, 1}, span{z - 1, 2}, span{z, 1})
	}
	return c
}

func testOutOfRange(e *env) {
	e.fill(1, 0, chunk)
	e.fill(2, e.size-chunk, chunk)
	for _, c := range e.outOfRange() {
		p := e.buf(int(c.n), Pattern(9, 0, int(c.n)))
		if _, err := e.d.ReadAt(p, c.off); !isOutOfRange(err) {
			e.t.Errorf("ReadAt(%v) = %v, want ErrOutOfRange", c, err)
		}
		if n, err := e.d.WriteAt(p, c.off); n != 0 || !isOutOfRange(err) {
			e.t.Errorf("WriteAt(%v) = %d, %v; want 0, ErrOutOfRange", c, n, err)
		}
		e.outOfRangeAbilities(c, p)
	}
	for _, c := range []span{{0, -e.blk}, {e.size, -e.blk}} {
		e.outOfRangeAbilities(c, nil)
	}
	e.verifyAll("after out-of-range requests")
}

// outOfRangeAbilities calls the device's own optional abilities (not the
// package helpers, which check the range themselves) out of range.
func (e *env) outOfRangeAbilities(c span, p []byte) {
	if p != nil {
		e.outOfRangeVector(c, p)
	}
	if f, ok := e.d.(blockdev.FUAWriter); ok && p != nil {
		if n, err := f.WriteAtFUA(p, c.off); n != 0 || !isOutOfRange(err) {
			e.t.Errorf("WriteAtFUA(%v) = %d, %v; want 0, ErrOutOfRange", c, n, err)
		}
	}
	if z, ok := e.d.(blockdev.Zeroer); ok {
		for _, mayTrim := range []bool{false, true} {
			if err := z.WriteZeroes(c.off, c.n, mayTrim); !isOutOfRange(err) {
				e.t.Errorf("WriteZeroes(%v, mayTrim %v) = %v, want ErrOutOfRange", c, mayTrim, err)
			}
		}
	}
	if tr, ok := e.d.(blockdev.Trimmer); ok {
		if err := tr.Trim(c.off, c.n); !isOutOfRange(err) {
			e.t.Errorf("Trim(%v) = %v, want ErrOutOfRange", c, err)
		}
	}
	if m, ok := e.d.(blockdev.Mapper); ok {
		if _, err := m.Map(c.off, c.n); !isOutOfRange(err) {
			e.t.Errorf("Map(%v) = %v, want ErrOutOfRange", c, err)
		}
	}
	if _, err := blockdev.Checksum(e.d, c.off, c.n); !isOutOfRange(err) {
		e.t.Errorf("Checksum(%v) = %v, want ErrOutOfRange", c, err)
	}
}

func testNoRetain(e *env) {
	for i, c := range e.cases() {
		data := Pattern(int64(i+1), c.off, int(c.n))
		p := e.buf(int(c.n), data)
		var n int
		var err error
		if i%2 == 0 {
			n, err = e.d.WriteAt(p, c.off)
		} else {
			n, err = blockdev.WriteFUA(e.d, p, c.off)
		}
		if err != nil || n != len(p) {
			e.t.Fatalf("write %v = %d, %v", c, n, err)
		}
		copy(e.shadow[c.off:], data)
		// Scribble over the caller's buffer: the device must have taken
		// its own copy (or finished with p) before WriteAt returned.
		for j := range p {
			p[j] = 0xa5
		}
		if err := e.d.Flush(); err != nil {
			e.t.Fatalf("Flush: %v", err)
		}
		e.verify("after scribbling on the written buffer "+c.String(), c.off, c.n)

		// A read must not fill p after returning either.
		r := e.buf(int(c.n), nil)
		if n, err := e.d.ReadAt(r, c.off); err != nil || n != len(r) {
			e.t.Fatalf("ReadAt(%v) = %d, %v", c, n, err)
		}
		e.write(c.off, Pattern(int64(100+i), c.off, int(c.n)))
		if j := diff(r, data); j >= 0 {
			e.t.Fatalf("buffer of an earlier ReadAt(%v) changed at %d", c, c.off+int64(j))
		}
	}
	e.verifyAll("after no-retain checks")
}

func testClose(e *env) {
	e.fill(1, 0, chunk)
	e.closed = true
	if err := e.d.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	p := e.buf(int(e.blk), nil)
	if _, err := e.d.ReadAt(p, 0); !isClosed(err) {
		e.t.Errorf("ReadAt after Close = %v, want ErrClosed", err)
	}
	if _, err := e.d.WriteAt(p, 0); !isClosed(err) {
		e.t.Errorf("WriteAt after Close = %v, want ErrClosed", err)
	}
	if err := e.d.Flush(); !isClosed(err) {
		e.t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
	if _, err := blockdev.WriteFUA(e.d, p, 0); !isClosed(err) {
		e.t.Errorf("WriteFUA after Close = %v, want ErrClosed", err)
	}
	if _, err := blockdev.ReadV(e.d, [][]byte{p}, 0); !isClosed(err) {
		e.t.Errorf("ReadV after Close = %v, want ErrClosed", err)
	}
	if _, err := blockdev.WriteV(e.d, [][]byte{p}, 0); !isClosed(err) {
		e.t.Errorf("WriteV after Close = %v, want ErrClosed", err)
	}
	if err := blockdev.WriteZeroes(e.d, 0, e.blk, false); !isClosed(err) {
		e.t.Errorf("WriteZeroes after Close = %v, want ErrClosed", err)
	}
	if blockdev.CanTrim(e.d) {
		if err := blockdev.Trim(e.d, 0, e.blk); !isClosed(err) {
			e.t.Errorf("Trim after Close = %v, want ErrClosed", err)
		}
	}
	if _, ok := e.d.(blockdev.Mapper); ok {
		if _, err := blockdev.Map(e.d, 0, e.blk); !isClosed(err) {
			e.t.Errorf("Map after Close = %v, want ErrClosed", err)
		}
	}
}

func isOutOfRange(err error) bool { return errors.Is(err, blockdev.ErrOutOfRange) }
func isClosed(err error) bool     { return errors.Is(err, blockdev.ErrClosed) }
