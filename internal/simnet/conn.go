package simnet

import (
	"fmt"
	"net"
	"time"
)

// Conn is one connection of the network, both of its ends: a handle to
// watch it and to fault it alone. Its methods are safe for concurrent use.
type Conn struct {
	n    *Network
	id   uint64
	ends [2]*endpoint // the dialer's, the acceptor's
	// pipes[i] carries what ends[i] writes to the other end.
	pipes [2]*pipe

	// Guarded by n.mu.
	cut   bool          // partitioned alone
	delay time.Duration // added to its hosts' delay
}

// ID numbers the network's connections from 1 in the order they were
// made.
func (c *Conn) ID() uint64 { return c.id }

// Dialer is the name of the host that dialed.
func (c *Conn) Dialer() string { return c.ends[0].host.name }

// Acceptor is the name of the host that was dialed.
func (c *Conn) Acceptor() string { return c.ends[1].host.name }

// DialerAddr is the dialing end's address (its ephemeral port).
func (c *Conn) DialerAddr() Addr { return c.ends[0].local }

// AcceptorAddr is the listening end's address.
func (c *Conn) AcceptorAddr() Addr { return c.ends[1].local }

func (c *Conn) String() string {
	return fmt.Sprintf("conn %d %v->%v", c.id, c.ends[0].local, c.ends[1].local)
}

// Partition stops delivery on this connection, both ways, until Heal;
// as Network.Partition, for this connection alone.
func (c *Conn) Partition() { c.n.change(func() { c.cut = true }) }

// Heal resumes delivery on this connection.
func (c *Conn) Heal() { c.n.change(func() { c.cut = false }) }

// Delay delays this connection's deliveries by d (zero: none), in
// addition to the delay between its hosts.
func (c *Conn) Delay(d time.Duration) { c.n.change(func() { c.delay = max(d, 0) }) }

// Reset tears the connection down, as a RST would: both ends' calls,
// current and later, fail at once with ECONNRESET.
func (c *Conn) Reset() { c.n.change(c.resetLocked) }

func (c *Conn) resetLocked() {
	for _, e := range c.ends {
		e.resetLocked()
	}
	delete(c.n.conns, c.id)
}

// done reports whether no live end holds the connection any more.
// Called with mu held.
func (c *Conn) done() bool { return c.ends[0].done() && c.ends[1].done() }

// ConnOf returns the Conn of an end that a Host's Dial or a listener's
// Accept returned.
func ConnOf(nc net.Conn) (*Conn, bool) {
	e, ok := nc.(*endpoint)
	if !ok {
		return nil, false
	}
	return e.c, true
}

// newConn makes a connection from d's ephemeral port to to. Called with
// mu held.
func (n *Network) newConn(d *Host, to Addr, target *Host) *Conn {
	n.nextID++
	c := &Conn{n: n, id: n.nextID}
	from := Addr{Host: d.name, Port: d.ephemeral()}
	c.ends[0] = &endpoint{c: c, side: 0, host: d, gen: d.gen, local: from, remote: to}
	c.ends[1] = &endpoint{c: c, side: 1, host: target, gen: target.gen, local: to, remote: from}
	c.pipes[0] = &pipe{src: c.ends[0], dst: c.ends[1]}
	c.pipes[1] = &pipe{src: c.ends[1], dst: c.ends[0]}
	n.conns[c.id] = c
	return c
}

// pipe is one direction of a connection: the bytes its source wrote that
// its destination has not read, in order. A prefix of them has arrived
// (is in the destination machine's buffer); the rest is in flight and
// moves only while the direction flows.
type pipe struct {
	src, dst *endpoint

	// Guarded by Network.mu.
	segs    []segment
	size    int // bytes in segs
	arrived int // segments at the head of segs that arrived

	fin, finArrived bool // the source closed; its FIN reached the destination
	finAt           time.Time
	rst, rstArrived bool // the source's machine reset the connection
	rstAt           time.Time
}

// segment is the bytes of one Write (or of the part that fitted) and
// when they may be delivered (zero: at once).
type segment struct {
	b  []byte
	at time.Time
}

// lastAt is when the last byte in flight may be delivered.
func (p *pipe) lastAt() time.Time {
	if len(p.segs) == 0 {
		return time.Time{}
	}
	return p.segs[len(p.segs)-1].at
}

// push appends a copy of b, deliverable after d.
func (p *pipe) push(b []byte, now time.Time, d time.Duration) {
	var at time.Time
	if d > 0 {
		at = now.Add(d)
	}
	if last := p.lastAt(); last.After(at) {
		at = last
	}
	p.segs = append(p.segs, segment{b: append([]byte(nil), b...), at: at})
	p.size += len(b)
}

// settle marks arrived what is due, if the direction flows.
func (p *pipe) settle(now time.Time, flowing bool) {
	if !flowing {
		return
	}
	for p.arrived < len(p.segs) && !now.Before(p.segs[p.arrived].at) {
		p.arrived++
	}
	if p.fin && p.arrived == len(p.segs) && !now.Before(p.finAt) {
		p.finArrived = true
	}
	if p.rst && !now.Before(p.rstAt) {
		p.rstArrived = true
	}
}

// readable reports whether the head segment can be read.
func (p *pipe) readable(now time.Time, flowing bool) bool {
	return p.arrived > 0 || (len(p.segs) > 0 && flowing && !now.Before(p.segs[0].at))
}

// read copies what can be read into b.
func (p *pipe) read(b []byte, now time.Time, flowing bool) int {
	n := 0
	for n < len(b) && p.readable(now, flowing) {
		s := &p.segs[0]
		k := copy(b[n:], s.b)
		n += k
		p.size -= k
		if s.b = s.b[k:]; len(s.b) == 0 {
			p.segs[0] = segment{}
			p.segs = p.segs[1:]
			if p.arrived > 0 {
				p.arrived--
			}
		}
	}
	return n
}

// finReached reports whether the source's FIN reached the destination
// (all bytes before it did too).
func (p *pipe) finReached(now time.Time, flowing bool) bool {
	return p.fin && (p.finArrived || (flowing && !now.Before(p.finAt)))
}

// rstReached reports whether the source's RST reached the destination.
func (p *pipe) rstReached(now time.Time, flowing bool) bool {
	return p.rst && (p.rstArrived || (flowing && !now.Before(p.rstAt)))
}

// next is when something in flight becomes due (zero: nothing is, or the
// direction does not flow).
func (p *pipe) next(now time.Time, flowing bool) time.Time {
	if !flowing {
		return time.Time{}
	}
	var t time.Time
	if len(p.segs) > p.arrived && p.segs[p.arrived].at.After(now) {
		t = p.segs[p.arrived].at
	}
	if p.fin && !p.finArrived && p.finAt.After(now) {
		t = earliest(t, p.finAt)
	}
	if p.rst && !p.rstArrived && p.rstAt.After(now) {
		t = earliest(t, p.rstAt)
	}
	return t
}

// sendFIN queues the source's FIN after its bytes.
func (p *pipe) sendFIN(now time.Time, d time.Duration) {
	if p.fin {
		return
	}
	p.fin = true
	p.finAt = now.Add(d)
	if last := p.lastAt(); last.After(p.finAt) {
		p.finAt = last
	}
}

// sendRST sends a reset from the source's machine.
func (p *pipe) sendRST(now time.Time, d time.Duration) {
	if !p.rst {
		p.rst, p.rstAt = true, now.Add(d)
	}
}

// drop forgets every byte.
func (p *pipe) drop() {
	p.segs, p.size, p.arrived = nil, 0, 0
}

// dropArrived forgets the bytes that reached the destination's machine
// (its machine lost them).
func (p *pipe) dropArrived() {
	for _, s := range p.segs[:p.arrived] {
		p.size -= len(s.b)
	}
	p.segs = p.segs[p.arrived:]
	p.arrived = 0
}

// dropInFlight forgets what had not reached the destination (the
// source's machine lost it), FIN and RST included.
func (p *pipe) dropInFlight() {
	for _, s := range p.segs[p.arrived:] {
		p.size -= len(s.b)
	}
	p.segs = p.segs[:p.arrived]
	p.fin = p.fin && p.finArrived
	p.rst = p.rst && p.rstArrived
}
