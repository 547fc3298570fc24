package simnet

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Options configure a Network. Zero values take the defaults.
type Options struct {
	// BufferBytes bounds the bytes one direction of a connection holds:
	// written and not yet read, delivered or not (default 4 MiB). A Write
	// returns once its bytes fit, and waits for room otherwise.
	BufferBytes int
	// FailDials makes a dial that cannot reach its host (a partition, a
	// crashed host) fail at once with EHOSTUNREACH; otherwise it waits,
	// as a SYN is retransmitted, until its context ends or the way opens.
	FailDials bool
	// OnConn, if not nil, is called with each new connection once it
	// exists and before either end can use it: Dial calls it, without
	// any lock held, before it queues the connection on the listener and
	// returns. It may call any method of the Network.
	OnConn func(*Conn)
}

// DefaultBufferBytes is BufferBytes's default.
const DefaultBufferBytes = 4 << 20

// Network is a simulated network of named hosts. Its methods are safe
// for concurrent use.
type Network struct {
	opts Options

	mu     sync.Mutex // guards everything below and every host's, connection's and listener's state
	hosts  map[string]*Host
	cut    map[route]bool          // one-way partitions between hosts
	delay  map[route]time.Duration // per pair of hosts, keyed by pairOf
	conns  map[uint64]*Conn        // connections that a live end still holds
	nextID uint64
	dials  signal // fired on changes a pending dial waits for
}

// route is a direction between two hosts.
type route struct{ from, to string }

// pairOf is the key of an unordered pair of hosts.
func pairOf(a, b string) route {
	if a > b {
		a, b = b, a
	}
	return route{a, b}
}

// New returns a network without hosts.
func New(o Options) *Network {
	if o.BufferBytes <= 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	return &Network{
		opts:  o,
		hosts: map[string]*Host{},
		cut:   map[route]bool{},
		delay: map[route]time.Duration{},
		conns: map[uint64]*Conn{},
	}
}

// Host returns the host of that name, adding it, up, if it is new. A
// name is what addresses hold before the port: not empty, no colon, not
// an IP address nor localhost. It panics on a name that cannot be one.
func (n *Network) Host(name string) *Host {
	checkHostName(name)
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.hosts[name]
	if h == nil {
		h = &Host{n: n, name: name, listeners: map[int]*listener{}, nextPort: firstEphemeral}
		n.hosts[name] = h
	}
	return h
}

// Partition cuts hosts a and b apart, both ways: nothing more is
// delivered between them, and dials between them do not connect, until
// Heal. Bytes already delivered stay readable; bytes in flight wait in
// their buffer. Partitioning a host from itself does nothing.
func (n *Network) Partition(a, b string) {
	if a == b {
		return
	}
	n.change(func() {
		n.cut[route{a, b}] = true
		n.cut[route{b, a}] = true
	})
}

// PartitionOneWay cuts the direction from one host to another only:
// what from sends to is held, what to sends to from is delivered (a
// half-open link). Dials need both ways.
func (n *Network) PartitionOneWay(from, to string) {
	if from == to {
		return
	}
	n.change(func() { n.cut[route{from, to}] = true })
}

// Heal ends a partition between a and b, both ways: delivery resumes in
// order, as TCP's retransmission would after a cable is put back.
func (n *Network) Heal(a, b string) {
	n.change(func() {
		delete(n.cut, route{a, b})
		delete(n.cut, route{b, a})
	})
}

// Delay delays every delivery between a and b, both ways, by d from the
// moment of the Write (zero: none), in order. Bytes written earlier keep
// the delay they were written under.
func (n *Network) Delay(a, b string, d time.Duration) {
	if a == b {
		return
	}
	n.change(func() {
		if d > 0 {
			n.delay[pairOf(a, b)] = d
		} else {
			delete(n.delay, pairOf(a, b))
		}
	})
}

// Reset tears down every connection between a and b, as a RST would:
// both ends' calls, current and later, fail at once with ECONNRESET.
func (n *Network) Reset(a, b string) {
	n.change(func() {
		for _, c := range n.between(a, b) {
			c.resetLocked()
		}
	})
}

// HealAll ends every partition and delay, between hosts and on
// connections, and resumes every paused host. Hosts that are down stay
// down.
func (n *Network) HealAll() {
	n.change(func() {
		clear(n.cut)
		clear(n.delay)
		for _, c := range n.conns {
			c.cut, c.delay = false, 0
		}
		for _, h := range n.hosts {
			h.paused = false
		}
	})
}

// Conns returns the connections between hosts a and b, dialed either
// way (a and b may be the same host), that a live end still holds, in
// the order they were made.
func (n *Network) Conns(a, b string) []*Conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.between(a, b)
}

// between lists the connections between a and b by ID. Called with mu held.
func (n *Network) between(a, b string) []*Conn {
	var l []*Conn
	for _, c := range n.conns {
		d, s := c.ends[0].host.name, c.ends[1].host.name
		if (d == a && s == b) || (d == b && s == a) {
			l = append(l, c)
		}
	}
	slices.SortFunc(l, func(x, y *Conn) int { return cmp.Compare(x.id, y.id) })
	return l
}

// change applies a fault: the bytes due at their receivers are marked
// delivered first, so that a cut does not take back what arrived; then
// every waiter looks again.
func (n *Network) change(apply func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.settle(time.Now())
	apply()
	n.wakeAll()
}

// settle marks delivered whatever is due on every flowing direction.
// Called with mu held, before any change that can stop a flow.
func (n *Network) settle(now time.Time) {
	for _, c := range n.conns {
		for _, p := range c.pipes {
			p.settle(now, n.flowing(p))
		}
	}
}

// wakeAll makes every blocked call look again at the network's state.
// Called with mu held.
func (n *Network) wakeAll() {
	for id, c := range n.conns {
		c.ends[0].sig.fire()
		c.ends[1].sig.fire()
		if c.done() {
			delete(n.conns, id)
		}
	}
	for _, h := range n.hosts {
		for _, l := range h.listeners {
			l.sig.fire()
		}
	}
	n.dials.fire()
}

// flowing reports whether bytes move along p now (delays aside). Called
// with mu held.
func (n *Network) flowing(p *pipe) bool {
	src, dst := p.src, p.dst
	switch {
	case src.c.cut, src.lost, dst.lost, src.paused(), dst.paused():
		return false
	case src.host == dst.host:
		return true
	}
	return !n.cut[route{src.host.name, dst.host.name}]
}

// pathOpen reports whether packets pass both ways between e's host and
// its peer's now, whatever the state of the processes. Called with mu held.
func (n *Network) pathOpen(e *endpoint) bool {
	a, b := e.host.name, e.peer().host.name
	return !e.c.cut && (a == b || (!n.cut[route{a, b}] && !n.cut[route{b, a}]))
}

// delayOf is the delay of deliveries from e to its peer. Called with mu held.
func (n *Network) delayOf(e *endpoint) time.Duration {
	d := e.c.delay
	if a, b := e.host.name, e.peer().host.name; a != b {
		d += n.delay[pairOf(a, b)]
	}
	return d
}

// signal wakes the goroutines waiting for a change. Its methods are
// called with Network.mu held.
type signal struct{ ch chan struct{} }

func (s *signal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// wait releases mu while it waits for ch, the time at (zero: none) or
// ctx, then takes mu again.
func (n *Network) wait(ch <-chan struct{}, at time.Time, ctx context.Context) {
	var tc <-chan time.Time
	if !at.IsZero() {
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		tc = t.C
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	n.mu.Unlock()
	select {
	case <-ch:
	case <-tc:
	case <-done:
	}
	n.mu.Lock()
}

// earliest is the earlier of two times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
