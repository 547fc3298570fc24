package nbd

import (
	"cmp"
	"context"
	"crypto/tls"
	"net"
	"slices"
)

// ConnInfo describes one of a server's connections.
type ConnInfo struct {
	// ID is unique among the connections a Server accepted.
	ID            uint64
	Local, Remote net.Addr
	// TLS is the session's state once STARTTLS succeeded, nil before.
	TLS *tls.ConnectionState
	// Export is the export the connection opened; "" during its
	// handshake.
	Export string
}

// connKey is the context key of a connection's *conn.
type connKey struct{}

// ConnFromContext returns the ConnInfo of the connection whose context
// ctx is (or derives from): the ctx of ServerOptions.Hello,
// ServerOptions.Control and Export.Attach. The info is as it stands when
// called.
func ConnFromContext(ctx context.Context) (ConnInfo, bool) {
	c, ok := ctx.Value(connKey{}).(*conn)
	if !ok {
		return ConnInfo{}, false
	}
	return c.info(), true
}

// info returns what the connection is now.
func (c *conn) info() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := ConnInfo{ID: c.id, Local: c.raw.LocalAddr(), Remote: c.raw.RemoteAddr()}
	if c.tlsState != nil {
		st := *c.tlsState
		i.TLS = &st
	}
	if c.transmitting {
		i.Export = c.exp.Name
	}
	return i
}

// Conns returns the server's open connections, in handshake or in
// transmission, in the order they were accepted.
func (s *Server) Conns() []ConnInfo {
	var l []ConnInfo
	for _, c := range s.connsWhere(func(*conn) bool { return true }) {
		l = append(l, c.info())
	}
	slices.SortFunc(l, func(a, b ConnInfo) int { return cmp.Compare(a.ID, b.ID) })
	return l
}

// CloseWhere closes the connections that match, as DropClients does:
// they are cut at once, without answers to their outstanding requests;
// requests already handed to the device run to their end, and each
// connection flushes its export if it acknowledged writes it did not
// flush. It waits until those connections are gone and returns how many
// it closed. match is called without the server's locks held. A hook
// running on a connection (Hello, Control, Attach) must not close its
// own connection this way: CloseWhere would wait for the hook.
func (s *Server) CloseWhere(match func(ConnInfo) bool) int {
	var victims []*conn
	for _, c := range s.connsWhere(func(*conn) bool { return true }) {
		if match(c.info()) {
			victims = append(victims, c)
		}
	}
	for _, c := range victims {
		c.abort()
	}
	for _, c := range victims {
		<-c.done
	}
	return len(victims)
}
