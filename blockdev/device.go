package blockdev

import (
	"errors"
	"fmt"
	"io"
)

// Device is a block device: a fixed-size, randomly addressable byte array.
type Device interface {
	io.ReaderAt
	io.WriterAt
	// Flush makes every write that completed before it durable.
	Flush() error
	// Size is the device's size in bytes; it does not change while open.
	Size() int64
	Close() error
}

// Trimmer discards a range: later reads of it return zeroes or the old
// data (callers must not rely on either), and the space may be released.
type Trimmer interface {
	Trim(off, length int64) error
}

// Zeroer writes zeroes over a range without a data buffer. If mayTrim is
// true the device may deallocate the range as long as reads return zeroes.
type Zeroer interface {
	WriteZeroes(off, length int64, mayTrim bool) error
}

// FUAWriter writes p so that it is durable when the call returns (Force
// Unit Access), without flushing anything else.
type FUAWriter interface {
	WriteAtFUA(p []byte, off int64) (int, error)
}

// BufferReader reads into a buffer of its own and hands it over, where
// reading into the caller's memory would cost a copy: Timeout reads into a
// private buffer (a late read must not land in memory the caller has
// reused), which it can give away but not move into p for free.
type BufferReader interface {
	// ReadBuffer returns the n bytes at off in a buffer from GetBuffer,
	// which the caller owns and gives back with PutBuffer. It reads all n
	// bytes or fails, and then returns no buffer.
	ReadBuffer(n int, off int64) ([]byte, error)
}

// BlockSizer reports the device's logical block size: the alignment that
// offsets, lengths and buffer addresses of direct I/O must have.
type BlockSizer interface {
	BlockSize() int
}

// Extent is one run of a device's allocation map.
type Extent struct {
	Off, Len int64
	// Hole: the range is not allocated (reads return zeroes).
	Hole bool
	// Zero: the range reads as zeroes (true for every hole).
	Zero bool
}

// Mapper reports which parts of [off, off+length) are allocated. The
// extents are contiguous, in order, non-empty, and cover the range exactly
// (no extents for an empty range).
type Mapper interface {
	Map(off, length int64) ([]Extent, error)
}

// Sentinel errors. Callers test with errors.Is.
var (
	ErrOutOfRange = errors.New("blockdev: I/O out of range")
	ErrUnaligned  = errors.New("blockdev: unaligned I/O")
	ErrClosed     = errors.New("blockdev: device closed")
	ErrReadOnly   = errors.New("blockdev: device is read-only")
	ErrNoSpace    = errors.New("blockdev: no space left")
	ErrTimeout    = errors.New("blockdev: I/O timed out")
	// ErrBusy: an exclusive open found the device held by someone else (a
	// mounted filesystem, another netraid, another OpenFile).
	ErrBusy = errors.New("blockdev: device in use")
)

// CheckRange returns an error wrapping ErrOutOfRange if [off, off+n) is not
// inside a device of the given size.
func CheckRange(size, off, n int64) error {
	if off < 0 || n < 0 || off > size || n > size-off {
		return fmt.Errorf("%w: off %d len %d, device size %d", ErrOutOfRange, off, n, size)
	}
	return nil
}

// BlockSize returns d's logical block size, 512 if it does not say.
func BlockSize(d Device) int {
	if b, ok := d.(BlockSizer); ok {
		if n := b.BlockSize(); n > 0 {
			return n
		}
	}
	return 512
}

// Trim discards a range if d can; otherwise it does nothing, which the
// Trimmer contract allows.
func Trim(d Device, off, length int64) error {
	if err := CheckRange(d.Size(), off, length); err != nil {
		return err
	}
	if t, ok := d.(Trimmer); ok {
		return t.Trim(off, length)
	}
	return nil
}

// CanTrim reports whether d discards for real.
func CanTrim(d Device) bool { _, ok := d.(Trimmer); return ok }

// zeroChunk is the largest buffer WriteZeroes falls back to writing at once.
const zeroChunk = 1 << 20

// WriteZeroes zeroes a range, through d's Zeroer if it has one, otherwise
// by writing zero-filled buffers.
func WriteZeroes(d Device, off, length int64, mayTrim bool) error {
	if err := CheckRange(d.Size(), off, length); err != nil {
		return err
	}
	if z, ok := d.(Zeroer); ok {
		return z.WriteZeroes(off, length, mayTrim)
	}
	buf := Zeroes(int(min(length, zeroChunk)))
	for length > 0 {
		n := min(length, int64(len(buf)))
		if _, err := d.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}

// WriteFUA writes p durably: through d's FUAWriter if it has one,
// otherwise as a write followed by a flush.
func WriteFUA(d Device, p []byte, off int64) (int, error) {
	if f, ok := d.(FUAWriter); ok {
		return f.WriteAtFUA(p, off)
	}
	n, err := d.WriteAt(p, off)
	if err != nil {
		return n, err
	}
	return n, d.Flush()
}

// ReadBuffer returns the n bytes at off in a buffer from GetBuffer, which
// the caller gives back with PutBuffer: d's own if it is a BufferReader,
// else one read with ReadAt. It reads all n bytes or fails, and then
// returns no buffer.
func ReadBuffer(d Device, n int, off int64) ([]byte, error) {
	if r, ok := d.(BufferReader); ok {
		return r.ReadBuffer(n, off)
	}
	buf := GetBuffer(n, bufferAlign(d))
	got, err := d.ReadAt(buf, off)
	if err := WholeRead(got, n, err); err != nil {
		PutBuffer(buf)
		return nil, err
	}
	return buf, nil
}

// WholeRead is the error of a read that had to return want bytes and
// returned got and err: nil for all of them (io.ReaderAt allows io.EOF
// with them), io.ErrUnexpectedEOF for fewer without an error.
func WholeRead(got, want int, err error) error {
	switch {
	case err == io.EOF && got == want:
		return nil
	case err == nil && got < want:
		return io.ErrUnexpectedEOF
	}
	return err
}

// Map returns d's allocation map for a range, or one allocated extent if d
// cannot tell.
func Map(d Device, off, length int64) ([]Extent, error) {
	if err := CheckRange(d.Size(), off, length); err != nil {
		return nil, err
	}
	if m, ok := d.(Mapper); ok {
		return m.Map(off, length)
	}
	if length == 0 {
		return nil, nil
	}
	return []Extent{{Off: off, Len: length}}, nil
}
