//go:build amd64 || arm64

package blockdev

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The reaper: how completions get from the kernel to the goroutines
// waiting for them, with as few system calls as the kernel allows.
//
// The kernel signals the eventfd on every completion, and the reaper waits
// for that in the netpoller. The netpoller's epoll is edge-triggered, and
// eventfd wakes its waiters on every signal whatever its counter holds, so
// the counter is never read (a 64-bit count of completions cannot fill):
// one callback of the descriptor's RawConn.Read, made once for the ring's
// life, drains the completions and asks to wait again; a completion that
// comes in between marks the descriptor ready, and the wait returns at
// once. The completions are read from the ring the kernel maps at the
// context's address (struct aio_ring), as io_getevents would read them,
// moving its head past them; io_getevents itself is used only where the
// ring's layout is not the one known here.
//
// Per completion this costs no system call of the reaper's own, where
// reading the eventfd until EAGAIN and io_getevents cost three.

// aioRingHeader is struct aio_ring of linux/fs/aio.c: the header of the
// completion ring the kernel maps at a context's address, followed by nr
// events.
type aioRingHeader struct {
	id, nr, head, tail               uint32
	magic, compat, incompat, hdrSize uint32
}

const aioRingMagic = 0xa10a10a1

// userRing returns the context's ring if it is laid out as known here,
// else nil.
func userRing(ctx uintptr) *aioRingHeader {
	// The ring is the kernel's mapping, not Go memory: the address stays
	// valid until io_destroy, which waits for the reaper to return.
	h := *(**aioRingHeader)(unsafe.Pointer(&ctx))
	if h.magic != aioRingMagic || h.incompat != 0 || h.hdrSize != uint32(unsafe.Sizeof(*h)) || h.nr == 0 {
		return nil
	}
	return h
}

// reap completes every finished transfer, then waits for more, until the
// eventfd is closed.
func (r *aioRing) reap() {
	defer close(r.reaped)
	rc, err := r.efd.SyscallConn()
	if err != nil {
		panic(fmt.Sprintf("blockdev: aio: the completion eventfd: %v", err))
	}
	ring := userRing(r.ctx)
	events := make([]ioEvent, len(r.slots))
	drain := func(uintptr) bool {
		if ring != nil {
			r.drainRing(ring, events)
		} else {
			r.drainSyscall(events)
		}
		return false // wait for the next signal
	}
	err = rc.Read(drain)
	if r.state.Load()&ringShut == 0 {
		panic(fmt.Sprintf("blockdev: aio: waiting on the completion eventfd: %v", err))
	}
	// destroy closed it.
}

// drainRing completes the events in the kernel's ring. The head moves
// past them before any is completed: a completion frees its slot for a
// new transfer, and the kernel counts an event as holding room in the
// context until the head has passed it.
func (r *aioRing) drainRing(h *aioRingHeader, buf []ioEvent) {
	base := unsafe.Add(unsafe.Pointer(h), unsafe.Sizeof(*h))
	for {
		head := atomic.LoadUint32(&h.head)
		tail := atomic.LoadUint32(&h.tail) // the kernel wrote the events before it
		if head == tail {
			return
		}
		n := 0
		for head != tail && n < len(buf) {
			buf[n] = *(*ioEvent)(unsafe.Add(base, uintptr(head)*unsafe.Sizeof(ioEvent{})))
			n++
			if head++; head == h.nr {
				head = 0
			}
		}
		atomic.StoreUint32(&h.head, head)
		for _, ev := range buf[:n] {
			r.complete(ev.data, ev.res)
		}
	}
}

// drainSyscall completes the finished events through io_getevents (a
// zero time-out: it does not wait; made raw, see internal/rawio).
func (r *aioRing) drainSyscall(buf []ioEvent) {
	zero := unix.Timespec{}
	for {
		n, _, e := syscall.RawSyscall6(unix.SYS_IO_GETEVENTS, r.ctx, 0, uintptr(len(buf)),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&zero)), 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			panic(fmt.Sprintf("blockdev: aio: io_getevents: %v", e))
		}
		for _, ev := range buf[:n] {
			r.complete(ev.data, ev.res)
		}
		if int(n) < len(buf) {
			return
		}
	}
}
