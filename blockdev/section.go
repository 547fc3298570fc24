package blockdev

import "fmt"

// Section is a window [base, base+size) of a parent Device, itself a
// Device. It passes optional abilities through to the parent.
type Section struct {
	d          Device
	base, size int64
}

var (
	_ Device    = (*Section)(nil)
	_ Trimmer   = (*Section)(nil)
	_ Zeroer    = (*Section)(nil)
	_ FUAWriter = (*Section)(nil)
	_ Mapper    = (*Section)(nil)
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
func (s *Section) Flush() error   { return s.d.Flush() }
func (s *Section) Close() error   { return nil }

// Parent returns the device the section is a window of.
func (s *Section) Parent() Device { return s.d }

func (s *Section) ReadAt(p []byte, off int64) (int, error) {
	if err := CheckRange(s.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	return s.d.ReadAt(p, s.base+off)
}

func (s *Section) WriteAt(p []byte, off int64) (int, error) {
	if err := CheckRange(s.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	return s.d.WriteAt(p, s.base+off)
}

func (s *Section) WriteAtFUA(p []byte, off int64) (int, error) {
	if err := CheckRange(s.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	return WriteFUA(s.d, p, s.base+off)
}

func (s *Section) Trim(off, n int64) error {
	if err := CheckRange(s.size, off, n); err != nil {
		return err
	}
	return Trim(s.d, s.base+off, n)
}

func (s *Section) WriteZeroes(off, n int64, mayTrim bool) error {
	if err := CheckRange(s.size, off, n); err != nil {
		return err
	}
	return WriteZeroes(s.d, s.base+off, n, mayTrim)
}

func (s *Section) Map(off, n int64) ([]Extent, error) {
	if err := CheckRange(s.size, off, n); err != nil {
		return nil, err
	}
	ext, err := Map(s.d, s.base+off, n)
	for i := range ext {
		ext[i].Off -= s.base
	}
	return ext, err
}
