package nbd

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// This file takes the Go scheduler's bookkeeping off the sockets' data
// path.
//
// A read or write through package net is a system call made the blocking
// way: the runtime marks the goroutine's P as in a syscall first. When
// every P was idle a moment before (with one P, whenever the server had
// caught up), that entry wakes the runtime's monitor thread, sysmon,
// which then polls every 20 us for a millisecond before it sleeps again.
// Under 4 KiB random reads at QD32 that churn was 10-15% of the daemon's
// CPU (perf: runtime.sysmon's nanosleeps and futex wake-ups), all of it
// spent waking a thread that had nothing to do, since a socket in the
// netpoller never blocks: it returns EAGAIN and the goroutine parks.
//
// sockConn makes those calls with syscall.RawSyscall, inside the
// connection's RawConn callbacks: the netpoller still parks the goroutine
// on EAGAIN, deadlines and Close still apply (they are the poll.FD's),
// and neither the syscall bookkeeping nor a wake-up of sysmon is paid.
// Only calls that cannot block are made this way: read(2) and writev(2)
// on a non-blocking socket. Disk I/O keeps the blocking way (blockdev),
// where a hung disk must not hold the P; its io_submit still wakes
// sysmon (with it raw too, sysmon left the profile, but io_submit can
// wait in the kernel). Measured: 10-15% less server CPU per 4 KiB read.

// sockConn is a TCP or unix socket read and written with raw system calls.
//
// The arguments and results of the call in progress live in the
// sockConn, so that the callbacks are bound once and a call allocates
// nothing; rmu and wmu keep concurrent readers (writers) from sharing
// them.
type sockConn struct {
	net.Conn
	rc syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rn     uintptr
	rerrno syscall.Errno
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	wvec    []syscall.Iovec
	wn      uintptr
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool
}

// maxIOV is the most buffers one writev(2) takes (IOV_MAX).
const maxIOV = 1024

// wrapSocket returns nc as a sockConn if it is a socket that has a
// RawConn (TCP, unix), and nc itself otherwise (net.Pipe in tests).
func wrapSocket(nc net.Conn) net.Conn {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return nc
	}
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nc
	}
	s := &sockConn{Conn: nc, rc: rc}
	s.readFn, s.writeFn = s.read, s.writev
	return s
}

// read is the read callback: false (wait for the socket to be readable)
// on EAGAIN.
func (s *sockConn) read(fd uintptr) bool {
	for {
		s.rn, _, s.rerrno = syscall.RawSyscall(syscall.SYS_READ, fd,
			uintptr(unsafe.Pointer(unsafe.SliceData(s.rbuf))), uintptr(len(s.rbuf)))
		if s.rerrno != syscall.EINTR {
			return s.rerrno != syscall.EAGAIN
		}
	}
}

// writev is the write callback: false (wait for room) on EAGAIN.
func (s *sockConn) writev(fd uintptr) bool {
	for {
		s.wn, _, s.werrno = syscall.RawSyscall(syscall.SYS_WRITEV, fd,
			uintptr(unsafe.Pointer(unsafe.SliceData(s.wvec))), uintptr(len(s.wvec)))
		if s.werrno != syscall.EINTR {
			return s.werrno != syscall.EAGAIN
		}
	}
}

func (s *sockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rbuf = p
	err := s.rc.Read(s.readFn)
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case s.rerrno != 0:
		return 0, os.NewSyscallError("read", s.rerrno)
	case s.rn == 0:
		return 0, io.EOF
	}
	return int(s.rn), nil
}

func (s *sockConn) Write(p []byte) (int, error) {
	n, err := s.writeVec(net.Buffers{p})
	return int(n), err
}

// writeVec writes bufs whole, in order, with as few writev(2) calls as
// the socket's buffer allows. It consumes bufs, as net.Buffers.WriteTo
// does.
func (s *sockConn) writeVec(bufs net.Buffers) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	defer func() { clear(s.wvec); s.wvec = s.wvec[:0] }()
	var total int64
	for {
		s.wvec = s.wvec[:0]
		for _, b := range bufs {
			if len(s.wvec) == maxIOV {
				break
			}
			if len(b) > 0 {
				v := syscall.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				s.wvec = append(s.wvec, v)
			}
		}
		if len(s.wvec) == 0 {
			return total, nil
		}
		if err := s.rc.Write(s.writeFn); err != nil {
			return total, err
		}
		if s.werrno != 0 {
			return total, os.NewSyscallError("writev", s.werrno)
		}
		total += int64(s.wn)
		bufs = consume(bufs, int64(s.wn))
	}
}

// consume drops the first n bytes of bufs.
func consume(bufs net.Buffers, n int64) net.Buffers {
	for len(bufs) > 0 && n >= int64(len(bufs[0])) {
		n -= int64(len(bufs[0]))
		bufs[0] = nil
		bufs = bufs[1:]
	}
	if len(bufs) > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}
