package nbd

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"time"
)

// This file decides who gets in: connections in their handshake and
// connections in transmission are counted apart (MaxHandshakes,
// MaxConnections, MaxConnectionsPerCert), and when a count is full a
// newcomer displaces someone rather than being shut out:
//
//   - a new connection displaces the handshake the server heard from
//     least recently: a flood of connections that never negotiate takes
//     turns among itself, and never closes a connection in transmission;
//   - a client that opens an export displaces the connection idle
//     longest (nothing in flight), from the client that holds the most
//     connections, so that idle connections cannot lock others out and a
//     lone quiet mount is the last to go; under TLS, a certificate at its
//     own limit displaces its own idle longest.
//
// What the server heard when is told by s.clock, a counter: the order of
// events, not their times, decides, so a wall clock that jumps changes
// nothing.

var (
	// errServerFull: every connection in transmission is busy.
	errServerFull = errors.New("nbd: server full: every connection is busy")
	// errCertFull: every connection of the client's certificate is busy.
	errCertFull = errors.New("nbd: every connection of this client certificate is busy")
)

// register creates a connection's state, or returns nil if the server is
// shutting down. When MaxHandshakes handshakes are open, it displaces one.
func (s *Server) register(ctx context.Context, nc net.Conn, l net.Listener) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return nil
	}
	if s.handshakes >= s.opts.MaxHandshakes {
		var victim *conn
		for c := range s.conns {
			if c.exp == nil && !c.displaced && (victim == nil || c.heard.Load() < victim.heard.Load()) {
				victim = c
			}
		}
		if victim != nil { // always, as handshakes counts them
			s.logLimit("handshakes", s.opts.MaxHandshakes, nc.RemoteAddr())
			s.displace(victim)
		}
	}
	c := newConn(ctx, s, nc, l)
	s.conns[c] = struct{}{}
	s.handshakes++
	s.nconns.Add(1)
	s.total.Add(1)
	return c
}

// hear records that the server heard from c now.
func (s *Server) hear(c *conn) { c.heard.Store(s.clock.Add(1)) }

// displace closes a connection to make room for another. Called with mu
// held.
func (s *Server) displace(c *conn) {
	c.displaced = true
	if c.exp == nil {
		s.handshakes--
	} else {
		s.attached--
	}
	s.refused.Add(1)
	c.abort()
}

// logLimit logs, at most once a second, that a limit was reached. Called
// with mu held.
func (s *Server) logLimit(what string, limit int, remote net.Addr) {
	if now := time.Now(); now.Sub(s.capLogged) >= time.Second {
		s.capLogged = now
		s.log.Warn("connection limit reached", "limit", what, "max", limit,
			"remote", remote.String(), "refused_so_far", s.refused.Load()+1)
	}
}

// attach moves c into transmission phase on e, unless e was removed, the
// server is shutting down or c is being drained, making room for it: if
// it displaces a connection, it returns once that one is gone, so that
// the connections in transmission, and the buffers they hold, stay
// within their limits.
func (s *Server) attach(c *conn, e *export) error {
	s.mu.Lock()
	if err := s.attachable(c, e); err != nil {
		s.mu.Unlock()
		return err
	}
	victim, err := s.makeRoom(c)
	if err == nil {
		err = c.startTransmission(e)
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.handshakes--
	s.attached++
	e.clients++
	s.mu.Unlock()
	if victim != nil {
		<-victim.done
	}
	return nil
}

// attachable checks that c may still open e. Called with mu held.
func (s *Server) attachable(c *conn, e *export) error {
	switch {
	case s.shutdown || c.isDraining():
		return ErrShutdown
	case s.find(e.Name) != e:
		return fmt.Errorf("%w: %q was removed", ErrUnknownExport, e.Name)
	}
	return nil
}

// makeRoom displaces a connection if c, entering transmission, would
// exceed a limit, and returns it; it fails if every candidate is busy.
// Called with mu held.
func (s *Server) makeRoom(c *conn) (*conn, error) {
	c.group, c.certified = c.clientGroup()
	counts := map[string]int{c.group: 1} // the newcomer counts
	for x := range s.conns {
		if x.exp != nil && !x.displaced {
			counts[x.group]++
		}
	}
	if c.certified && counts[c.group] > s.opts.MaxConnectionsPerCert {
		v := s.idleLongest(func(x *conn) bool { return x.group == c.group }, counts)
		if v == nil {
			s.refused.Add(1)
			return nil, errCertFull
		}
		s.logLimit("per certificate", s.opts.MaxConnectionsPerCert, c.raw.RemoteAddr())
		s.displace(v)
		return v, nil
	}
	if s.attached < s.opts.MaxConnections {
		return nil, nil
	}
	s.logLimit("connections", s.opts.MaxConnections, c.raw.RemoteAddr())
	v := s.idleLongest(func(*conn) bool { return true }, counts)
	if v == nil {
		s.refused.Add(1)
		return nil, errServerFull
	}
	s.displace(v)
	return v, nil
}

// idleLongest returns the connection in transmission that may go, among
// those that match: nothing in flight, from the group with the most
// connections, idle longest; nil if none is idle. Called with mu held.
func (s *Server) idleLongest(match func(*conn) bool, counts map[string]int) *conn {
	var v *conn
	for x := range s.conns {
		if x.exp == nil || x.displaced || !match(x) || !x.idle() {
			continue
		}
		if v == nil || counts[x.group] > counts[v.group] ||
			(counts[x.group] == counts[v.group] && x.heard.Load() < v.heard.Load()) {
			v = x
		}
	}
	return v
}

// clientGroup names the client behind c: its certificate under TLS, else
// its address without the port. certified is true for a certificate.
func (c *conn) clientGroup() (group string, certified bool) {
	c.mu.Lock()
	st := c.tlsState
	c.mu.Unlock()
	if st != nil && len(st.PeerCertificates) > 0 {
		sum := sha256.Sum256(st.PeerCertificates[0].Raw)
		return fmt.Sprintf("cert %x", sum), true
	}
	addr := c.raw.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return "addr " + addr, false
}

// detach forgets a connection that has ended.
func (s *Server) detach(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.nconns.Add(-1)
	switch {
	case c.displaced:
	case c.exp == nil:
		s.handshakes--
	default:
		s.attached--
	}
	if c.exp != nil {
		c.exp.clients--
	}
	if s.shutdown && len(s.conns) == 0 {
		closeOnce(s.idle)
	}
}
