package simnet

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// endpoint is one end of a Conn: the net.Conn its host's process holds.
type endpoint struct {
	c    *Conn
	side int // 0: the dialer's, 1: the acceptor's
	host *Host
	gen  uint64 // the incarnation of host that owns it

	local, remote Addr

	// Guarded by Network.mu.
	closed   bool
	reset    bool // torn down: calls fail with ECONNRESET
	lost     bool // its machine crashed: what it held is gone
	rdl, wdl time.Time
	writing  bool   // a Write is in progress (Writes do not interleave)
	sig      signal // fired when a call blocked on this end may go on
}

var _ net.Conn = (*endpoint)(nil)

func (e *endpoint) peer() *endpoint { return e.c.ends[1-e.side] }

// in carries the peer's bytes to e; out carries e's to the peer.
func (e *endpoint) in() *pipe  { return e.c.pipes[1-e.side] }
func (e *endpoint) out() *pipe { return e.c.pipes[e.side] }

// gone reports whether the process that held e died.
func (e *endpoint) gone() bool { return e.gen != e.host.gen }

// paused reports whether the process that holds e is paused.
func (e *endpoint) paused() bool { return e.host.paused && !e.gone() }

// done reports whether no live process holds e.
func (e *endpoint) done() bool { return e.closed || e.reset || e.gone() }

func (e *endpoint) LocalAddr() net.Addr  { return e.local }
func (e *endpoint) RemoteAddr() net.Addr { return e.remote }

func (e *endpoint) opErr(op string, err error) error { return opError(op, e.local, e.remote, err) }

// failure is the error a call fails with at once, nil if it may go on.
// Called with mu held.
func (e *endpoint) failure(op string, now, deadline time.Time) error {
	switch {
	case e.gone():
		return e.opErr(op, ErrHostDown)
	case e.closed:
		return e.opErr(op, net.ErrClosed)
	case e.reset:
		return e.opErr(op, sysErr(op, syscall.ECONNRESET))
	case !deadline.IsZero() && !now.Before(deadline):
		return e.opErr(op, os.ErrDeadlineExceeded)
	}
	return nil
}

// resetLocked tears e down. Called with mu held.
func (e *endpoint) resetLocked() {
	if e.reset {
		return
	}
	e.reset = true
	e.in().drop()
	e.out().drop()
	e.sig.fire()
	e.peer().sig.fire()
}

// checkReset resets e if its peer's machine reset the connection: an RST
// reached it, or the peer's host came back as a new process and answers
// what e sends with one (sending: e is about to send).
func (e *endpoint) checkReset(now time.Time, sending bool) {
	n := e.c.n
	p := e.peer()
	restarted := p.gone() && p.host.up() && !e.gone() && n.pathOpen(e) && !e.paused()
	if e.in().rstReached(now, n.flowing(e.in())) ||
		(restarted && (sending || len(e.out().segs) > 0 || e.out().fin)) {
		e.resetLocked()
	}
}

// Read reads what has been delivered: bytes, then io.EOF once the peer
// closed and every byte before its FIN was read.
func (e *endpoint) Read(b []byte) (int, error) {
	n := e.c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		now := time.Now()
		e.checkReset(now, false)
		if err := e.failure("read", now, e.rdl); err != nil {
			return 0, err
		}
		if len(b) == 0 {
			return 0, nil
		}
		p := e.in()
		flowing := n.flowing(p)
		if !e.paused() {
			if k := p.read(b, now, flowing); k > 0 {
				e.peer().sig.fire() // room for its writer
				return k, nil
			}
			if len(p.segs) == 0 && p.finReached(now, flowing) {
				return 0, io.EOF
			}
		}
		n.wait(e.sig.wait(), earliest(e.rdl, p.next(now, flowing)), nil)
	}
}

// Write returns once all of b is in the connection's buffer, or fails:
// n < len(b) only with an error. Writes on one end do not interleave.
func (e *endpoint) Write(b []byte) (int, error) {
	n := e.c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for e.writing {
		if err := e.failure("write", time.Now(), e.wdl); err != nil {
			return 0, err
		}
		n.wait(e.sig.wait(), e.wdl, nil)
	}
	e.writing = true
	defer func() {
		e.writing = false
		e.sig.fire()
	}()
	written := 0
	for {
		now := time.Now()
		e.checkReset(now, true)
		if err := e.failure("write", now, e.wdl); err != nil {
			return written, err
		}
		in, out := e.in(), e.out()
		if in.finReached(now, n.flowing(in)) {
			// The peer closed: what it would be sent is refused.
			return written, e.opErr("write", sysErr("write", syscall.EPIPE))
		}
		if written == len(b) {
			return written, nil
		}
		if room := n.opts.BufferBytes - out.size; room > 0 {
			k := min(room, len(b)-written)
			out.push(b[written:written+k], now, n.delayOf(e))
			written += k
			e.peer().sig.fire()
			continue
		}
		n.wait(e.sig.wait(), earliest(e.wdl, in.next(now, n.flowing(in))), nil)
	}
}

// Close closes e: later calls on it fail with net.ErrClosed. As on
// Linux, the peer reads io.EOF after the bytes e wrote if e had read
// everything sent to it; otherwise e's machine resets the connection.
func (e *endpoint) Close() error {
	n := e.c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if e.closed {
		return e.opErr("close", net.ErrClosed)
	}
	if !e.gone() && !e.reset {
		e.shut(time.Now())
	}
	e.closed = true
	e.sig.fire()
	e.peer().sig.fire()
	if e.c.done() {
		delete(n.conns, e.c.id)
	}
	return nil
}

// shut is what e's machine does when the socket is closed: a FIN after
// the bytes e wrote, or, with unread bytes sent to e, a RST (the bytes
// in flight either way are dropped). Called with mu held.
func (e *endpoint) shut(now time.Time) {
	n := e.c.n
	in, out := e.in(), e.out()
	if len(in.segs) == 0 {
		out.sendFIN(now, n.delayOf(e))
		return
	}
	in.drop()
	out.settle(now, n.flowing(out))
	out.dropInFlight()
	out.sendRST(now, n.delayOf(e))
}

func (e *endpoint) SetDeadline(t time.Time) error {
	return e.setDeadlines(t, true, true)
}

func (e *endpoint) SetReadDeadline(t time.Time) error {
	return e.setDeadlines(t, true, false)
}

func (e *endpoint) SetWriteDeadline(t time.Time) error {
	return e.setDeadlines(t, false, true)
}

// setDeadlines sets the read or write deadline, or both, and wakes the
// calls waiting on e so that they heed it.
func (e *endpoint) setDeadlines(t time.Time, read, write bool) error {
	n := e.c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if e.closed {
		return e.opErr("set deadline", net.ErrClosed)
	}
	if read {
		e.rdl = t
	}
	if write {
		e.wdl = t
	}
	e.sig.fire()
	return nil
}
