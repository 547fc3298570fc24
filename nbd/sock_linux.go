package nbd

import (
	"net"
	"syscall"

	"github.com/netraid/netraid/internal/rawio"
)

// sockConn is a TCP or unix socket whose reads and writes are raw system
// calls (internal/rawio): the sockets sit in the netpoller, non-blocking,
// so the Go runtime's syscall bookkeeping on them buys nothing. Disk I/O
// keeps the blocking way (blockdev), where a hung disk must not hold the
// P; its io_submit still wakes sysmon (with it raw too, sysmon left the
// profile, but io_submit can wait in the kernel).
type sockConn struct {
	net.Conn
	r *rawio.Reader
	w *rawio.Writer
}

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
	return &sockConn{Conn: nc, r: rawio.NewReader(rc), w: rawio.NewWriter(rc)}
}

func (s *sockConn) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s *sockConn) Write(p []byte) (int, error) {
	n, err := s.w.Writev([][]byte{p})
	return int(n), err
}

// writeVec writes bufs whole, in order, with as few writev(2) calls as
// the socket's buffer allows. It consumes bufs, as net.Buffers.WriteTo
// does.
func (s *sockConn) writeVec(bufs net.Buffers) (int64, error) { return s.w.Writev(bufs) }
