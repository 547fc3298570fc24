package repl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/netraid/netraid/nbd"
)

// Export is the name of the replication export on a secondary; which
// volume it holds is checked in the hello.
const Export = "netraid-peer"

// Refusal is a meeting the other node refused, with what it said of
// itself (its Hello, nil if it attached none).
type Refusal struct {
	Msg  string
	Peer *Hello
}

func (r *Refusal) Error() string { return "the peer refused the link: " + r.Msg }

// Link is the primary's end of an established replication link: an NBD
// client of the secondary's replication export (it is the peer leg of
// the mirror) that also carries control messages.
type Link struct {
	*nbd.Client
	// Peer is the secondary's hello, as it answered.
	Peer Hello
}

// DialOptions shape a link.
type DialOptions struct {
	// Hello is this node's.
	Hello Hello
	// Timeout bounds the handshake and every request (nbd's Timeout).
	Timeout time.Duration
	// TLS, if set, makes the link mutual TLS.
	TLS *tls.Config
	// Secret, if set, authenticates both ends with a shared secret
	// before anything else is said.
	Secret *Secret
}

// Connect runs the handshake of a link on conn, which it owns from then
// on: the hello, then the export's open. A secondary that refuses the
// meeting gives a *Refusal.
func Connect(ctx context.Context, conn net.Conn, o DialOptions) (*Link, error) {
	co := nbd.ClientOptions{Export: Export, Timeout: o.Timeout, Hello: MarshalHello(o.Hello), TLS: o.TLS}
	if o.Secret != nil {
		co.Auth = o.Secret.ClientAuth()
	}
	c, err := nbd.NewClient(ctx, conn, co)
	if err != nil {
		var he *nbd.HelloError
		if errors.As(err, &he) && he.Reply == nbd.RepErrTLSReqd {
			return nil, fmt.Errorf("%w: the peer requires TLS on the link: give this node --tls-dir", nbd.ErrTLSRequired)
		}
		if errors.As(err, &he) {
			r := &Refusal{Msg: he.Msg}
			if len(he.Data) > 0 {
				if h, herr := UnmarshalHello(he.Data); herr == nil {
					r.Peer = &h
				}
			}
			return nil, r
		}
		return nil, err
	}
	peer, err := UnmarshalHello(c.HelloReply())
	if err != nil {
		c.Close()
		return nil, err
	}
	return &Link{Client: c, Peer: peer}, nil
}

// Send sends a control message and returns the secondary's state after
// it.
func (l *Link) Send(m Message) (Hello, error) {
	resp, err := l.Control(MarshalMessage(m))
	if err != nil {
		return Hello{}, fmt.Errorf("repl: %s: %w", m.Kind, err)
	}
	return UnmarshalHello(resp)
}
