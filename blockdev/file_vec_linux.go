package blockdev

import (
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/netraid/netraid/internal/lat"
)

// iovMax is the most buffers one preadv or pwritev takes (UIO_MAXIOV);
// a longer vector goes in several calls.
const iovMax = 1024

var (
	_ VectorIO        = (*File)(nil)
	_ VectorFUAWriter = (*File)(nil)
)

// vecSyscall is preadv, pwritev or pwritev2 with its flags bound.
type vecSyscall func(fd int, iov [][]byte, off int64) (int, error)

// ReadAtv reads bufs from the range at off with preadv. off and every
// buffer's length and address must be aligned to BlockSize.
func (f *File) ReadAtv(bufs [][]byte, off int64) (int, error) {
	n, err := f.checkv(opRead, bufs, off)
	if err != nil || n == 0 {
		return 0, err
	}
	return f.transferv(opRead, bufs, off, n, f.io.preadv, io.ErrUnexpectedEOF)
}

// WriteAtv writes bufs over the range at off with pwritev. off and every
// buffer's length and address must be aligned to BlockSize. The data is
// durable after the next Flush.
func (f *File) WriteAtv(bufs [][]byte, off int64) (int, error) {
	n, err := f.checkv(opWrite, bufs, off)
	if err != nil || n == 0 {
		return 0, err
	}
	return f.transferv(opWrite, bufs, off, n, f.io.pwritev, io.ErrShortWrite)
}

// WriteAtvFUA writes bufs durably, as WriteAtFUA writes one buffer.
func (f *File) WriteAtvFUA(bufs [][]byte, off int64) (int, error) {
	n, err := f.checkv(opFUA, bufs, off)
	if err != nil || n == 0 {
		return 0, err
	}
	return f.writeFUA(bufs, off, n)
}

// writeFUA writes bufs (n bytes in all) durably at off: pwritev2 with
// RWF_DSYNC, which a block device turns into FUA writes. If the kernel
// refuses the flag, it falls back (for good) to pwritev and fdatasync.
//
// While other durable writes or flushes are in progress it writes plainly
// and then flushes through the File's FlushGroup instead: on a regular
// file each RWF_DSYNC write costs a flush of its own, where concurrent
// ones then share one.
func (f *File) writeFUA(bufs [][]byte, off, n int64) (int, error) {
	shared := f.fua.Add(1) > 1 || f.flushes.Busy()
	defer f.fua.Add(-1)
	if shared {
		done, err := f.transferv(opWrite, bufs, off, n, f.io.pwritev, io.ErrShortWrite)
		if err != nil {
			return done, err
		}
		return done, f.flushes.Do(f.fdatasync)
	}
	if !f.noFUA.Load() {
		done, err := f.transferv(opFUA, bufs, off, n, f.io.pwritevDSync, io.ErrShortWrite)
		if done > 0 || !(errors.Is(err, unix.EINVAL) || unsupported(err)) {
			return done, err
		}
	}
	done, err := f.transferv(opWrite, bufs, off, n, f.io.pwritev, io.ErrShortWrite)
	if err != nil {
		return done, err
	}
	if err := f.flushes.Do(f.fdatasync); err != nil {
		return done, err
	}
	f.noFUA.Store(true) // the plain write worked: the flag was the problem
	return done, nil
}

// checkv is check for a vector: the whole range, then each buffer's
// length and address. It returns the vector's length.
func (f *File) checkv(op string, bufs [][]byte, off int64) (int64, error) {
	n := VecLen(bufs)
	if err := f.check(op, nil, off, n); err != nil {
		return 0, err
	}
	for i, b := range bufs {
		if len(b)%f.bsize != 0 || !IsAligned(b, f.bsize) {
			return 0, fmt.Errorf("%w: %s %s off %d len %d: buffer %d of %d bytes (block size %d)",
				ErrUnaligned, op, f.path, off, n, i, len(b), f.bsize)
		}
	}
	return n, nil
}

// transferv moves all of bufs (n bytes) at off with sys; see vecLoop.
func (f *File) transferv(op string, bufs [][]byte, off, n int64, sys vecSyscall, stuck error) (int, error) {
	t := lat.Start()
	if op == opRead {
		defer lat.Since(lat.FileRead, t)
	} else {
		defer lat.Since(lat.FileWrite, t)
	}
	var done int64
	err := f.control(func(fd int) (err error) {
		done, err = vecLoop(bufs, off, stuck, func(iov [][]byte, at int64) (int, error) {
			return sys(fd, iov, at)
		})
		return err
	})
	if err != nil {
		return int(done), f.ioErr(op, off, n, err)
	}
	return int(done), nil
}

// vecLoop moves bufs to or from the range at off with sys, which may move
// less than it was given. Each call takes at most iovMax buffers and
// starts at the first byte not yet moved, in the middle of a buffer if a
// short transfer stopped there. EINTR is retried; a call that moves
// nothing fails with stuck. vecLoop returns the bytes moved.
func vecLoop(bufs [][]byte, off int64, stuck error, sys func(iov [][]byte, at int64) (int, error)) (int64, error) {
	// A copy, without empty buffers, that advance may trim: the caller's
	// bufs stay as they were.
	iov := make([][]byte, 0, len(bufs))
	for _, b := range bufs {
		if len(b) > 0 {
			iov = append(iov, b)
		}
	}
	var done int64
	for len(iov) > 0 {
		n, err := sys(iov[:min(len(iov), iovMax)], off+done)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return done, err
		case n <= 0:
			return done, stuck
		}
		var moved int
		iov, moved = advance(iov, n)
		done += int64(moved)
	}
	return done, nil
}

// advance drops the first n bytes of iov: whole buffers, then the head of
// the one a short transfer stopped in. It returns what is left and how
// many bytes it dropped (less than n only if iov held less).
func advance(iov [][]byte, n int) ([][]byte, int) {
	dropped := 0
	for len(iov) > 0 && n > 0 {
		if n < len(iov[0]) {
			iov[0] = iov[0][n:]
			return iov, dropped + n
		}
		dropped += len(iov[0])
		n -= len(iov[0])
		iov = iov[1:]
	}
	return iov, dropped
}
