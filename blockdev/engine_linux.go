package blockdev

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Engine is how a File hands its reads and writes to the kernel.
type Engine int

const (
	// EngineAuto is native AIO when the kernel sets up a context for the
	// file, and blocking syscalls when it does not.
	EngineAuto Engine = iota
	// EngineSync is one blocking pread/pwrite(v) per transfer, on the
	// calling goroutine's thread.
	EngineSync
	// EngineAIO is Linux native AIO; OpenFile fails if it is not there.
	EngineAIO
)

func (e Engine) String() string {
	switch e {
	case EngineAuto:
		return "auto"
	case EngineSync:
		return "sync"
	case EngineAIO:
		return "aio"
	}
	return fmt.Sprintf("Engine(%d)", int(e))
}

// ParseEngine reads an Engine's name: auto, sync or aio.
func ParseEngine(s string) (Engine, error) {
	for _, e := range []Engine{EngineAuto, EngineSync, EngineAIO} {
		if s == e.String() {
			return e, nil
		}
	}
	return 0, fmt.Errorf("blockdev: unknown I/O engine %q (want auto, sync or aio)", s)
}

// ioEngine moves data between memory and a file descriptor. Each method
// makes one attempt, as the syscall of its name does: it may move less than
// asked, and File's loops resume it.
type ioEngine interface {
	engine() Engine
	pread(fd int, p []byte, off int64) (int, error)
	pwrite(fd int, p []byte, off int64) (int, error)
	preadv(fd int, iov [][]byte, off int64) (int, error)
	pwritev(fd int, iov [][]byte, off int64) (int, error)
	pwritevDSync(fd int, iov [][]byte, off int64) (int, error)
	// fdatasync makes the writes that completed before it durable.
	fdatasync(fd int) error
	close() error
}

// newEngine sets up the engine e asks for.
func newEngine(e Engine) (ioEngine, error) {
	switch e {
	case EngineSync:
		return syncEngine{}, nil
	case EngineAIO:
		return newAIOEngine()
	case EngineAuto:
		if eng, err := newAIOEngine(); err == nil {
			return eng, nil
		}
		return syncEngine{}, nil
	}
	return nil, fmt.Errorf("blockdev: unknown I/O engine %d", int(e))
}

// syncEngine is the ioEngine of blocking syscalls.
type syncEngine struct{}

func (syncEngine) engine() Engine { return EngineSync }
func (syncEngine) close() error   { return nil }

func (syncEngine) pread(fd int, p []byte, off int64) (int, error)  { return unix.Pread(fd, p, off) }
func (syncEngine) pwrite(fd int, p []byte, off int64) (int, error) { return unix.Pwrite(fd, p, off) }

func (syncEngine) preadv(fd int, iov [][]byte, off int64) (int, error) {
	return unix.Preadv(fd, iov, off)
}

func (syncEngine) pwritev(fd int, iov [][]byte, off int64) (int, error) {
	return unix.Pwritev(fd, iov, off)
}

func (syncEngine) pwritevDSync(fd int, iov [][]byte, off int64) (int, error) {
	return unix.Pwritev2(fd, iov, off, unix.RWF_DSYNC)
}

func (syncEngine) fdatasync(fd int) error { return blockingFdatasync(fd) }

// blockingFdatasync is fdatasync(2), retried on EINTR.
func blockingFdatasync(fd int) error {
	return retryEINTR(func() error { return unix.Fdatasync(fd) })
}
