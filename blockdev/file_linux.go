package blockdev

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/netraid/netraid/internal/lat"
)

// FileOptions say how OpenFile opens a file or block device.
type FileOptions struct {
	// ReadOnly opens the device for reading; writes fail with ErrReadOnly.
	ReadOnly bool
	// Exclusive refuses a device that someone else holds: O_EXCL on a
	// block device (the kernel refuses it while mounted or claimed) and an
	// flock(LOCK_EX) on both files and block devices. Failure wraps ErrBusy.
	Exclusive bool
	// Engine is how reads and writes reach the kernel. The zero value,
	// EngineAuto, takes native AIO where the kernel sets it up.
	Engine Engine
}

// File is a regular file or a block device opened with O_DIRECT. It only
// accepts I/O whose offset, length and buffer address are multiples of its
// BlockSize, and returns ErrUnaligned for anything else; wrap it with
// NewAligned to accept arbitrary requests.
//
// A regular file's size is fixed at open and rounded down to the block
// size. Trim punches holes (regular files) or discards (block devices).
type File struct {
	f        *os.File
	path     string
	size     int64
	bsize    int
	blockDev bool
	readOnly bool
	io       ioEngine
	closed   atomic.Bool

	// Abilities the kernel turned out not to have, remembered so that the
	// fallback is taken directly next time.
	noFUA     atomic.Bool // pwritev2(RWF_DSYNC): use pwrite + fdatasync
	noDiscard atomic.Bool // BLKDISCARD / PUNCH_HOLE: Trim does nothing
	noZero    atomic.Bool // ZERO_RANGE / BLKZEROOUT: write zero buffers

	// flushes shares fdatasyncs between concurrent flushes and durable
	// writes; fua counts the durable writes in progress.
	flushes FlushGroup
	fua     atomic.Int32
}

var (
	_ Device     = (*File)(nil)
	_ BlockSizer = (*File)(nil)
	_ FUAWriter  = (*File)(nil)
	_ Trimmer    = (*File)(nil)
	_ Zeroer     = (*File)(nil)
	_ Mapper     = (*File)(nil)
)

// OpenFile opens a regular file or a block device for direct I/O.
func OpenFile(path string, o FileOptions) (*File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("blockdev: open: %w", err)
	}
	mode := st.Mode()
	isBlock := mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0
	if !isBlock && !mode.IsRegular() {
		return nil, fmt.Errorf("blockdev: open %s: not a regular file or block device (%v)", path, mode.Type())
	}
	flags := unix.O_RDWR | unix.O_DIRECT | unix.O_CLOEXEC
	if o.ReadOnly {
		flags = unix.O_RDONLY | unix.O_DIRECT | unix.O_CLOEXEC
	}
	if isBlock && o.Exclusive {
		flags |= unix.O_EXCL
	}
	osf, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%w: %s: %w", ErrBusy, path, unix.EBUSY)
		}
		return nil, fmt.Errorf("blockdev: open: %w", err)
	}
	f := &File{f: osf, path: path, blockDev: isBlock, readOnly: o.ReadOnly}
	if err := f.setup(mode, o.Exclusive); err != nil {
		osf.Close()
		return nil, err
	}
	if f.io, err = newEngine(o.Engine); err != nil {
		osf.Close()
		return nil, fmt.Errorf("blockdev: open %s: I/O engine %v: %w", path, o.Engine, err)
	}
	return f, nil
}

// setup checks that the opened file is what was stat'ed, takes the lock,
// and learns the size and block size.
func (f *File) setup(mode os.FileMode, exclusive bool) error {
	st, err := f.f.Stat()
	if err != nil {
		return fmt.Errorf("blockdev: stat %s: %w", f.path, err)
	}
	if st.Mode().Type() != mode.Type() {
		return fmt.Errorf("blockdev: open %s: file changed type while opening", f.path)
	}
	if exclusive {
		if err := f.lock(); err != nil {
			return err
		}
	}
	if f.blockDev {
		err = f.control(func(fd int) (err error) {
			if f.size, err = blockDevSize(fd); err != nil {
				return err
			}
			f.bsize, err = unix.IoctlGetInt(fd, unix.BLKSSZGET)
			return err
		})
	} else {
		err = f.control(func(fd int) (err error) {
			f.bsize, err = fileBlockSize(fd, st.Size())
			return err
		})
		f.size = st.Size()
	}
	if err != nil {
		return fmt.Errorf("blockdev: %s: size and block size: %w", f.path, err)
	}
	if f.bsize < 512 || f.bsize&(f.bsize-1) != 0 {
		return fmt.Errorf("blockdev: %s: unusable logical block size %d", f.path, f.bsize)
	}
	f.size &^= int64(f.bsize - 1)
	return nil
}

// lock takes flock(LOCK_EX|LOCK_NB); it is released when the file closes.
func (f *File) lock() error {
	err := f.control(func(fd int) error {
		for {
			err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if err != unix.EINTR {
				return err
			}
		}
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EWOULDBLOCK):
		return fmt.Errorf("%w: %s: locked by another opener", ErrBusy, f.path)
	default:
		return fmt.Errorf("blockdev: lock %s: %w", f.path, err)
	}
}

// Path returns the path the device was opened with.
func (f *File) Path() string { return f.path }

// IsBlockDevice reports whether the device is a block device rather than a
// regular file.
func (f *File) IsBlockDevice() bool { return f.blockDev }

// Engine returns the I/O engine the file runs on: EngineSync or EngineAIO.
func (f *File) Engine() Engine { return f.io.engine() }

// Size returns the usable size: a whole number of blocks.
func (f *File) Size() int64 { return f.size }

// BlockSize returns the logical block size every request must be aligned to.
func (f *File) BlockSize() int { return f.bsize }

// Close closes the file, releasing the lock. I/O still in flight finishes
// first in the kernel; the descriptor is released after it. Later calls
// fail with ErrClosed.
func (f *File) Close() error {
	if f.closed.Swap(true) {
		return fmt.Errorf("%w: %s closed twice", ErrClosed, f.path)
	}
	ioErr := f.io.close() // waits for the transfers in flight
	if err := f.f.Close(); err != nil {
		return fmt.Errorf("blockdev: close %s: %w", f.path, err)
	}
	if ioErr != nil {
		return fmt.Errorf("blockdev: close %s: I/O engine: %w", f.path, ioErr)
	}
	return nil
}

// ReadAt reads len(p) bytes at off; off, len(p) and p's address must be
// aligned to BlockSize.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check(opRead, p, off, int64(len(p))); err != nil || len(p) == 0 {
		return 0, err
	}
	return f.pread(p, off)
}

// WriteAt writes p at off; off, len(p) and p's address must be aligned to
// BlockSize. The data is durable after the next Flush.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if err := f.check(opWrite, p, off, int64(len(p))); err != nil || len(p) == 0 {
		return 0, err
	}
	return f.pwrite(p, off)
}

// Flush makes every completed write durable (fdatasync). Concurrent
// flushes share fdatasyncs (FlushGroup): each is answered by one that
// started after it was called.
func (f *File) Flush() error {
	if f.closed.Load() {
		return ErrClosed
	}
	return f.flushes.Do(f.fdatasync)
}

func (f *File) fdatasync() error {
	t := lat.Start()
	err := f.control(f.io.fdatasync)
	lat.Since(lat.FileFlush, t)
	if err != nil {
		return f.ioErr(opFlush, 0, 0, err)
	}
	return nil
}

func (f *File) pread(p []byte, off int64) (int, error) {
	t := lat.Start()
	defer lat.Since(lat.FileRead, t)
	return f.transfer(opRead, p, off, f.io.pread, io.ErrUnexpectedEOF)
}

func (f *File) pwrite(p []byte, off int64) (int, error) {
	t := lat.Start()
	defer lat.Since(lat.FileWrite, t)
	return f.transfer(opWrite, p, off, f.io.pwrite, io.ErrShortWrite)
}

// transfer moves all of p at off with sys (pread or pwrite), looping over
// short transfers and EINTR; a transfer that makes no progress fails with
// stuck.
func (f *File) transfer(op string, p []byte, off int64, sys func(int, []byte, int64) (int, error), stuck error) (int, error) {
	done := 0
	err := f.control(func(fd int) error {
		for done < len(p) {
			n, err := sys(fd, p[done:], off+int64(done))
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				return err
			case n == 0:
				return stuck
			}
			done += n
		}
		return nil
	})
	if err != nil {
		return done, f.ioErr(op, off, int64(len(p)), err)
	}
	return done, nil
}

// control runs fn with the file descriptor, which stays open meanwhile
// even if Close runs concurrently.
func (f *File) control(fn func(fd int) error) error {
	rc, err := f.f.SyscallConn()
	if err != nil {
		return f.closedErr(err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return f.closedErr(err)
	}
	return ferr
}

// closedErr turns the error of reaching the descriptor into ErrClosed
// if the File is closed or being closed: a transfer that passed its
// check just before Close can find the descriptor closing, and os then
// says "use of closed file", which is not os.ErrClosed.
func (f *File) closedErr(err error) error {
	if errors.Is(err, os.ErrClosed) || f.closed.Load() {
		return ErrClosed
	}
	return err
}

func retryEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}
