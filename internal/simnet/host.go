package simnet

import (
	"context"
	"net"
	"syscall"
	"time"
)

// Host is a machine of the network with one process on it, whose Dial
// and Listen a node takes in place of package net's. Its methods are
// safe for concurrent use.
type Host struct {
	n    *Network
	name string

	// Guarded by n.mu.
	state     hostState
	gen       uint64 // the process's incarnation: bumped when it dies
	paused    bool
	listeners map[int]*listener
	nextPort  int // the next ephemeral port to try
}

type hostState int

const (
	hostUp      hostState = iota
	hostKilled            // the process died; the machine runs on
	hostCrashed           // the machine lost power
)

// up reports whether a process runs on the host. Called with mu held.
func (h *Host) up() bool { return h.state == hostUp }

// Name is the host's name, the host part of its addresses.
func (h *Host) Name() string { return h.name }

// Up reports whether the host's process runs (it was not crashed or
// killed, or was restarted since).
func (h *Host) Up() bool {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	return h.up()
}

// Listen listens on "host:port" of this host: the host part is empty, a
// wildcard (0.0.0.0, ::), localhost or the host's name; port 0 takes an
// ephemeral port. network is tcp, tcp4, tcp6 or sim.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	n := h.n
	err := checkNetwork(network)
	var host string
	var port int
	if err == nil {
		host, port, err = splitAddr(addr)
	}
	if err == nil && !isWildcard(host) && !isLoopback(host) && host != h.name {
		err = sysErr("bind", syscall.EADDRNOTAVAIL)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil && !h.up() {
		err = ErrHostDown
	}
	if err == nil && port == 0 {
		port = h.freePort()
	}
	if err == nil && h.listeners[port] != nil {
		err = sysErr("bind", syscall.EADDRINUSE)
	}
	if err != nil {
		return nil, opError("listen", nil, Addr{Host: h.name, Port: port}, err)
	}
	l := &listener{h: h, gen: h.gen, addr: Addr{Host: h.name, Port: port}}
	h.listeners[port] = l
	return l, nil
}

// freePort is the next ephemeral port no listener has. Called with mu held.
func (h *Host) freePort() int {
	for {
		if p := h.ephemeral(); h.listeners[p] == nil {
			return p
		}
	}
}

// ephemeral hands out the next ephemeral port. Called with mu held.
func (h *Host) ephemeral() int {
	p := h.nextPort
	if h.nextPort++; h.nextPort > lastEphemeral {
		h.nextPort = firstEphemeral
	}
	return p
}

// Dial connects to "host:port". It connects at once, or after the round
// trip of the hosts' delay, when a listener is there; it is refused
// (ECONNREFUSED) at once when the host's machine runs without one. Across
// a partition, to a crashed host, or from a paused one it waits until
// ctx ends or the way opens (Options.FailDials: fails at once with
// EHOSTUNREACH, except from a paused host).
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n := h.n
	err := checkNetwork(network)
	var host string
	var port int
	if err == nil {
		host, port, err = splitAddr(addr)
	}
	if err != nil {
		return nil, opError("dial", nil, nil, err)
	}
	if host == "" || isLoopback(host) {
		host = h.name
	}
	to := Addr{Host: host, Port: port}
	c, l, err := h.connect(ctx, to)
	if err != nil {
		return nil, opError("dial", nil, to, err)
	}
	if hook := n.opts.OnConn; hook != nil {
		hook(c)
	}
	return c.enqueue(l)
}

// enqueue hands a new connection to its listener and returns the
// dialer's end, unless the connection or the listener went away.
func (c *Conn) enqueue(l *listener) (net.Conn, error) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	d, a := c.ends[0], c.ends[1]
	if err := d.failure("dial", time.Now(), time.Time{}); err != nil {
		c.resetLocked() // OnConn reset it, or the dialer died
		return nil, err
	}
	if l.closed || a.done() {
		// The listener or its process went away meanwhile: refused.
		c.resetLocked()
		return nil, opError("dial", d.local, d.remote, sysErr("connect", syscall.ECONNREFUSED))
	}
	l.queue = append(l.queue, a)
	l.sig.fire()
	return d, nil
}

// connect waits until the machine of to answers and makes the
// connection, or fails.
func (h *Host) connect(ctx context.Context, to Addr) (*Conn, *listener, error) {
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	target := n.hosts[to.Host]
	if target == nil {
		return nil, nil, &net.DNSError{Err: "no such host", Name: to.Host, IsNotFound: true}
	}
	var ready time.Time // when the handshake's round trip is over
	for {
		now := time.Now()
		cut := h != target && (n.cut[route{h.name, target.name}] || n.cut[route{target.name, h.name}])
		switch {
		case !h.up():
			return nil, nil, ErrHostDown
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case h.paused:
			ready = time.Time{}
			n.wait(n.dials.wait(), time.Time{}, ctx)
			continue
		case cut || target.state == hostCrashed:
			if n.opts.FailDials {
				return nil, nil, sysErr("connect", syscall.EHOSTUNREACH)
			}
			ready = time.Time{}
			n.wait(n.dials.wait(), time.Time{}, ctx)
			continue
		}
		l := target.listeners[to.Port]
		if !target.up() || l == nil {
			return nil, nil, sysErr("connect", syscall.ECONNREFUSED)
		}
		if h != target {
			if rtt := 2 * n.delay[pairOf(h.name, target.name)]; rtt > 0 && ready.IsZero() {
				ready = now.Add(rtt)
			}
		}
		if now.Before(ready) {
			n.wait(n.dials.wait(), ready, ctx)
			continue
		}
		return n.newConn(h, to, target), l, nil
	}
}

// Pause stops the host's process, as SIGSTOP does: nothing it sends is
// delivered and nothing is delivered to it (its Reads and Accepts wait,
// its Dials wait), until Resume; bytes it had sent that arrived stay
// readable. Its own deadlines still run: simnet cannot stop its
// goroutines or timers.
func (h *Host) Pause() { h.n.change(func() { h.paused = h.up() }) }

// Resume lets a paused host's process go on; what was held is delivered
// in order.
func (h *Host) Resume() { h.n.change(func() { h.paused = false }) }

// Crash turns the machine off: its listeners and connections vanish, and
// its process's calls fail with ErrHostDown. Its peers hear nothing (no
// FIN, no RST): their reads wait and their writes fill the buffer. Bytes
// it sent that had arrived stay readable; the rest is lost. A dial to it
// waits for it. Crashing a crashed host does nothing.
func (h *Host) Crash() {
	n := h.n
	n.change(func() {
		if h.state == hostCrashed {
			return
		}
		for _, c := range n.conns {
			for _, e := range c.ends {
				if e.host == h && !e.lost {
					e.lost = true
					e.out().dropInFlight()
					e.in().dropArrived()
				}
			}
		}
		h.die(hostCrashed)
	})
}

// Kill ends the host's process on a running machine: its calls fail with
// ErrHostDown, its listeners close, and its machine closes each of its
// connections as Close does (FIN after what it sent, or RST if bytes
// sent to it were unread), so its peers see EOF or ECONNRESET as soon
// as the link lets them through. A dial to it is refused.
// Killing a host that is down does nothing.
func (h *Host) Kill() {
	n := h.n
	n.change(func() {
		if !h.up() {
			return
		}
		now := time.Now()
		for _, c := range n.conns {
			for _, e := range c.ends {
				if e.host == h && !e.done() {
					e.shut(now)
				}
			}
		}
		h.die(hostKilled)
	})
}

// die ends the host's process. Called with mu held.
func (h *Host) die(state hostState) {
	now := time.Now()
	for _, l := range h.listeners {
		l.closeLocked(now)
	}
	clear(h.listeners)
	if h.up() {
		h.gen++
	}
	h.state = state
	h.paused = false
}

// Restart starts a new process on a host that is down (and turns its
// machine back on): it may listen and dial again. The connections of the
// process that died stay dead; a peer that sends on one is reset, as the
// new machine answers with a RST. Restarting a host that is up does
// nothing.
func (h *Host) Restart() { h.n.change(func() { h.state = hostUp }) }
