package simnet

import (
	"net"
	"time"
)

// listener is a host's listening port. Connections dialed to it wait in
// its queue (unbounded) until accepted.
type listener struct {
	h    *Host
	gen  uint64 // the incarnation of h that listens
	addr Addr

	// Guarded by Network.mu.
	closed bool
	queue  []*endpoint // acceptors' ends of connections not yet accepted
	sig    signal      // fired when Accept may go on
}

var _ net.Listener = (*listener)(nil)

// Accept waits for a connection; it fails once the listener is closed,
// or its process died. A paused host accepts nothing until resumed.
func (l *listener) Accept() (net.Conn, error) {
	n := l.h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		switch {
		case l.gen != l.h.gen:
			return nil, opError("accept", nil, l.addr, ErrHostDown)
		case l.closed:
			return nil, opError("accept", nil, l.addr, net.ErrClosed)
		case len(l.queue) > 0 && !l.h.paused:
			e := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			return e, nil
		}
		n.wait(l.sig.wait(), time.Time{}, nil)
	}
}

// Close stops listening; the connections not yet accepted are reset, as
// the machine answers them with a RST.
func (l *listener) Close() error {
	n := l.h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if l.closed {
		return opError("close", nil, l.addr, net.ErrClosed)
	}
	l.closeLocked(time.Now())
	if l.h.listeners[l.addr.Port] == l {
		delete(l.h.listeners, l.addr.Port)
	}
	return nil
}

// closeLocked closes l and disposes of its queue: the machine shuts each
// connection (a process that crashed has no machine left to). Called with
// mu held.
func (l *listener) closeLocked(now time.Time) {
	if l.closed {
		return
	}
	l.closed = true
	for _, e := range l.queue {
		if !e.done() {
			e.out().sendRST(now, l.h.n.delayOf(e))
			e.closed = true
			e.peer().sig.fire()
		}
	}
	l.queue = nil
	l.sig.fire()
}

// Addr is the address the listener listens on.
func (l *listener) Addr() net.Addr { return l.addr }
