package blockdev

import (
	"fmt"
	"sync/atomic"
)

// Section is a window [base, base+size) of a parent Device, itself a
// Device. It passes optional abilities through to the parent.
type Section struct {
	d          Device
	base, size int64
	closed     atomic.Bool
}

var (
	_ Device    = (*Section)(nil)
	_ Trimmer   = (*Section)(nil)
	_ Zeroer    = (*Section)(nil)
	_ FUAWriter = (*Section)(nil)
	_ Mapper    = (*Section)(nil)

	_ VectorIO        = (*Section)(nil)
	_ VectorFUAWriter = (*Section)(nil)
)

// NewSection returns the window [base, base+size) of d. Closing the
// section does not close d.
func NewSection(d Device, base, size int64) (*Section, error) {
	if err := CheckRange(d.Size(), base, size); err != nil {
		return nil, fmt.Errorf("blockdev: section %d+%d: %w", base, size, err)
	}
	return &Section{d: d, base: base, size: size}, nil
}

func (s *Section) Size() int64    { return s.size }
func (s *Section) BlockSize() int { return BlockSize(s.d) }

func (s *Section) Flush() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.d.Flush()
}

// Close ends the section's use; later calls on it fail with ErrClosed.
// The parent stays open.
func (s *Section) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("%w: section closed twice", ErrClosed)
	}
	return nil
}

// check fails a request that is out of the section or comes after Close.
func (s *Section) check(off, n int64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return CheckRange(s.size, off, n)
}

// Parent returns the device the section is a window of.
func (s *Section) Parent() Device { return s.d }

func (s *Section) ReadAt(p []byte, off int64) (int, error) {
	if err := s.check(off, int64(len(p))); err != nil {
		return 0, err
	}
	return s.d.ReadAt(p, s.base+off)
}

func (s *Section) WriteAt(p []byte, off int64) (int, error) {
	if err := s.check(off, int64(len(p))); err != nil {
		return 0, err
	}
	return s.d.WriteAt(p, s.base+off)
}

func (s *Section) WriteAtFUA(p []byte, off int64) (int, error) {
	if err := s.check(off, int64(len(p))); err != nil {
		return 0, err
	}
	return WriteFUA(s.d, p, s.base+off)
}

// ReadAtv, WriteAtv and WriteAtvFUA shift the range into the parent and
// go through the package helpers, so that they use the parent's vectored
// I/O if it has it and fall back to one call per buffer otherwise.
func (s *Section) ReadAtv(bufs [][]byte, off int64) (int, error) {
	if err := s.check(off, VecLen(bufs)); err != nil {
		return 0, err
	}
	return ReadV(s.d, bufs, s.base+off)
}

func (s *Section) WriteAtv(bufs [][]byte, off int64) (int, error) {
	if err := s.check(off, VecLen(bufs)); err != nil {
		return 0, err
	}
	return WriteV(s.d, bufs, s.base+off)
}

func (s *Section) WriteAtvFUA(bufs [][]byte, off int64) (int, error) {
	if err := s.check(off, VecLen(bufs)); err != nil {
		return 0, err
	}
	return WriteVFUA(s.d, bufs, s.base+off)
}

func (s *Section) Trim(off, n int64) error {
	if err := s.check(off, n); err != nil {
		return err
	}
	return Trim(s.d, s.base+off, n)
}

func (s *Section) WriteZeroes(off, n int64, mayTrim bool) error {
	if err := s.check(off, n); err != nil {
		return err
	}
	return WriteZeroes(s.d, s.base+off, n, mayTrim)
}

func (s *Section) Map(off, n int64) ([]Extent, error) {
	if err := s.check(off, n); err != nil {
		return nil, err
	}
	ext, err := Map(s.d, s.base+off, n)
	for i := range ext {
		ext[i].Off -= s.base
	}
	return ext, err
}
