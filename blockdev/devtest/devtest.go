package devtest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/netraid/netraid/blockdev"
)

// Options describes what the device under test promises beyond the
// minimal contract.
type Options struct {
	// Size is the size asked of open; 8 MiB if zero. It must be at least
	// 1 MiB so that every case fits.
	Size int64
	// Unaligned: the device accepts byte-granular offsets, lengths and
	// buffer addresses. Without it the suite aligns everything to
	// blockdev.BlockSize(d).
	Unaligned bool
	// TrimZeroes: after Trim, every whole logical block of the range reads
	// as zeroes. Without it the suite only checks that Trim succeeds, that
	// the range reads as its old data or zeroes, and that neighbours are
	// unchanged.
	TrimZeroes bool
	// SkipClose: the suite never calls Close (open's caller closes the
	// device) and does not check that I/O fails after Close.
	SkipClose bool
}

const (
	defaultSize = 8 << 20
	minSize     = 1 << 20
	// chunk is the stripe chunk size the cases straddle.
	chunk = 64 << 10
	// ioChunk bounds the buffers the suite reads the whole device through.
	ioChunk = 1 << 20
)

// Run runs the conformance suite as subtests of t. open must return a
// fresh zero-filled device of at least size bytes; the suite uses d.Size().
func Run(t *testing.T, open func(t *testing.T, size int64) blockdev.Device, o Options) {
	t.Helper()
	if o.Size == 0 {
		o.Size = defaultSize
	}
	if o.Size < minSize {
		t.Fatalf("devtest: Options.Size %d is below the minimum %d", o.Size, minSize)
	}
	s := &suite{open: open, o: o}
	for _, c := range []struct {
		name string
		fn   func(*env)
	}{
		{"Size", testSize},
		{"ZeroFilled", testZeroFilled},
		{"RoundTrip", testRoundTrip},
		{"ZeroLength", testZeroLength},
		{"OutOfRange", testOutOfRange},
		{"NoRetain", testNoRetain},
		{"ConcurrentReaders", testConcurrentReaders},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ConcurrentMixed", testConcurrentMixed},
		{"Flush", testFlush},
		{"FUA", testFUA},
		{"Vector", testVector},
		{"WriteZeroes", testWriteZeroes},
		{"Trim", testTrim},
		{"Map", testMap},
		{"Checksum", testChecksum},
		{"Close", testClose},
	} {
		if c.name == "Close" && o.SkipClose {
			continue
		}
		t.Run(c.name, func(t *testing.T) { c.fn(s.env(t)) })
	}
}

type suite struct {
	open func(t *testing.T, size int64) blockdev.Device
	o    Options
}

// env is one subtest's device and the suite's model of its contents.
type env struct {
	t      *testing.T
	o      Options
	d      blockdev.Device
	size   int64
	blk    int64 // blockdev.BlockSize(d)
	unit   int64 // granularity of offsets and lengths: 1 or blk
	align  int   // buffer address alignment
	shadow []byte
	closed bool
}

func (s *suite) env(t *testing.T) *env {
	t.Helper()
	d := s.open(t, s.o.Size)
	if d == nil {
		t.Fatal("devtest: open returned a nil device")
	}
	e := &env{t: t, o: s.o, d: d, size: d.Size(), blk: int64(blockdev.BlockSize(d))}
	if !s.o.SkipClose {
		t.Cleanup(func() {
			if !e.closed {
				if err := d.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}
	if e.size < s.o.Size {
		t.Fatalf("Size() = %d, asked for at least %d", e.size, s.o.Size)
	}
	if e.blk <= 0 || e.blk&(e.blk-1) != 0 || e.blk > chunk {
		t.Fatalf("BlockSize = %d, want a power of two <= %d", e.blk, chunk)
	}
	e.unit = e.blk
	if s.o.Unaligned {
		e.unit = 1
	}
	e.align = max(int(e.blk), 4096)
	e.shadow = make([]byte, e.size)
	return e
}

// buf returns an aligned buffer of n bytes holding a copy of data, or
// zeroes if data is nil.
func (e *env) buf(n int, data []byte) []byte {
	b := blockdev.GetBuffer(n, e.align)
	if data != nil {
		copy(b, data)
	} else {
		clear(b)
	}
	return b
}

// write writes data at off, expecting success, and records it.
func (e *env) write(off int64, data []byte) {
	e.t.Helper()
	b := e.buf(len(data), data)
	defer blockdev.PutBuffer(b)
	n, err := e.d.WriteAt(b, off)
	if err != nil || n != len(data) {
		e.t.Fatalf("WriteAt(off %d, len %d) = %d, %v", off, len(data), n, err)
	}
	copy(e.shadow[off:], data)
}

// fill writes Pattern(seed, off, n) at off.
func (e *env) fill(seed, off, n int64) {
	e.t.Helper()
	for n > 0 {
		m := min(n, ioChunk)
		e.write(off, Pattern(seed, off, int(m)))
		off += m
		n -= m
	}
}

// read returns the n bytes at off, expecting success.
func (e *env) read(off, n int64) []byte {
	e.t.Helper()
	b := e.buf(int(n), nil)
	defer blockdev.PutBuffer(b)
	got, err := e.d.ReadAt(b, off)
	if err != nil || got != int(n) {
		e.t.Fatalf("ReadAt(off %d, len %d) = %d, %v", off, n, got, err)
	}
	return bytes.Clone(b)
}

// verify checks [off, off+n) against the shadow copy, clipped to the device.
func (e *env) verify(what string, off, n int64) {
	e.t.Helper()
	off, end := max(off, 0), min(off+n, e.size)
	for off < end {
		m := min(end-off, ioChunk)
		got := e.read(off, m)
		if i := diff(got, e.shadow[off:off+m]); i >= 0 {
			e.t.Fatalf("%s: byte at %d is %#02x, want %#02x", what, off+int64(i), got[i], e.shadow[off+int64(i)])
		}
		off += m
	}
}

// verifyAll checks the whole device against the shadow copy.
func (e *env) verifyAll(what string) {
	e.t.Helper()
	e.verify(what, 0, e.size)
}

// diff returns the index of the first byte where a and b differ, or -1.
func diff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// span is one request's range.
type span struct{ off, n int64 }

func (s span) String() string { return fmt.Sprintf("off %d len %d", s.off, s.n) }
