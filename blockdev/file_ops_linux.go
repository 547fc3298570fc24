package blockdev

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Operation names used in File's error messages.
const (
	opRead  = "read"
	opWrite = "write"
	opFUA   = "write-fua"
	opFlush = "flush"
	opTrim  = "trim"
	opZero  = "write-zeroes"
	opMap   = "map"
)

// check validates a request before it reaches the kernel: open, in range,
// writable for writes, and aligned (p may be nil for bufferless ops).
// Zero-length requests in range pass whatever their alignment.
func (f *File) check(op string, p []byte, off, n int64) error {
	if f.closed.Load() {
		return ErrClosed
	}
	if err := CheckRange(f.size, off, n); err != nil {
		return err
	}
	if f.readOnly && op != opRead {
		return fmt.Errorf("%w: %s %s", ErrReadOnly, op, f.path)
	}
	if n == 0 {
		return nil
	}
	bs := int64(f.bsize)
	if off%bs != 0 || n%bs != 0 || !IsAligned(p, f.bsize) {
		return fmt.Errorf("%w: %s %s off %d len %d (block size %d)", ErrUnaligned, op, f.path, off, n, bs)
	}
	return nil
}

// errnoSentinel makes a kernel error also match one of the package's
// sentinels, without changing its message.
type errnoSentinel struct {
	errno    unix.Errno
	sentinel error
}

func (e errnoSentinel) Error() string   { return e.errno.Error() }
func (e errnoSentinel) Unwrap() []error { return []error{e.errno, e.sentinel} }

// ioErr wraps a failed operation's error with the device, op and range:
// "blockdev: write /dev/loop3 off 4096 len 512: input/output error".
func (f *File) ioErr(op string, off, n int64, err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.ENOSPC, unix.EDQUOT:
			err = errnoSentinel{errno, ErrNoSpace}
		case unix.EROFS:
			err = errnoSentinel{errno, ErrReadOnly}
		}
	}
	if op == opFlush {
		return fmt.Errorf("blockdev: %s %s: %w", op, f.path, err)
	}
	return fmt.Errorf("blockdev: %s %s off %d len %d: %w", op, f.path, off, n, err)
}

// unsupported reports whether err says the kernel, file system or device
// lacks an ability (as opposed to failing at it).
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTTY)
}

// WriteAtFUA writes p durably: pwritev2 with RWF_DSYNC, which a block
// device turns into a FUA write. If the kernel refuses the flag, it falls
// back (for good) to a write followed by fdatasync.
func (f *File) WriteAtFUA(p []byte, off int64) (int, error) {
	if err := f.check(opFUA, p, off, int64(len(p))); err != nil || len(p) == 0 {
		return 0, err
	}
	return f.writeFUA([][]byte{p}, off, int64(len(p)))
}

// Trim discards an aligned range: BLKDISCARD on a block device, a punched
// hole in a regular file. If the device or file system cannot discard,
// Trim does nothing (and remembers that), as the Trimmer contract allows.
func (f *File) Trim(off, n int64) error {
	if err := f.check(opTrim, nil, off, n); err != nil || n == 0 || f.noDiscard.Load() {
		return err
	}
	err := f.control(func(fd int) error {
		if f.blockDev {
			return ioctlRange(fd, unix.BLKDISCARD, off, n)
		}
		return fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	})
	switch {
	case err == nil:
		return nil
	case unsupported(err):
		f.noDiscard.Store(true)
		return nil
	}
	return f.ioErr(opTrim, off, n, err)
}

// WriteZeroes zeroes an aligned range without a data buffer: fallocate
// ZERO_RANGE (PUNCH_HOLE if mayTrim) on a file, BLKZEROOUT (or, if mayTrim,
// fallocate PUNCH_HOLE, which a block device does only where the device
// guarantees zeroes) on a block device. Where neither works it writes
// zero buffers.
func (f *File) WriteZeroes(off, n int64, mayTrim bool) error {
	if err := f.check(opZero, nil, off, n); err != nil || n == 0 {
		return err
	}
	if !f.noZero.Load() {
		err := f.control(func(fd int) error { return f.zeroRange(fd, off, n, mayTrim) })
		switch {
		case err == nil:
			return nil
		case !unsupported(err):
			return f.ioErr(opZero, off, n, err)
		}
		f.noZero.Store(true)
	}
	for n > 0 {
		m := min(n, zeroChunk)
		if _, err := f.pwrite(Zeroes(int(m)), off); err != nil {
			return err
		}
		off += m
		n -= m
	}
	return nil
}

func (f *File) zeroRange(fd int, off, n int64, mayTrim bool) error {
	const punch = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	if mayTrim && (f.blockDev || !f.noDiscard.Load()) {
		if err := fallocate(fd, punch, off, n); !unsupported(err) {
			return err
		}
	}
	if f.blockDev {
		return ioctlRange(fd, unix.BLKZEROOUT, off, n)
	}
	return fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// Map reports holes and data in a regular file (SEEK_DATA / SEEK_HOLE);
// a block device is one allocated extent. The range need not be aligned.
func (f *File) Map(off, n int64) ([]Extent, error) {
	if f.closed.Load() {
		return nil, ErrClosed
	}
	if err := CheckRange(f.size, off, n); err != nil || n == 0 {
		return nil, err
	}
	if f.blockDev {
		return []Extent{{Off: off, Len: n}}, nil
	}
	var ext []Extent
	err := f.control(func(fd int) (err error) {
		ext, err = mapFile(fd, off, off+n)
		return err
	})
	if err != nil {
		return nil, f.ioErr(opMap, off, n, err)
	}
	return ext, nil
}

func fallocate(fd int, mode uint32, off, n int64) error {
	return retryEINTR(func() error { return unix.Fallocate(fd, mode, off, n) })
}
