package repl

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/nbd"
)

// Handler is what a secondary does on its replication port. Every call
// gets the connection it came on: the handler decides which connection
// is the established link.
type Handler interface {
	// Hello meets a caller: this node's Hello to accept it, or an error
	// to refuse it (a *Refusal to tell it something of this node).
	Hello(ctx context.Context, c nbd.ConnInfo, h Hello) (Hello, error)
	// Attach returns the device that connection writes to once it opens
	// the replication export, or an error to refuse the open. ctx ends
	// with the connection.
	Attach(ctx context.Context, c nbd.ConnInfo) (blockdev.Device, error)
	// Control handles a message and returns this node's Hello after it.
	Control(ctx context.Context, c nbd.ConnInfo, m Message) (Hello, error)
}

// ServerOptions shape a secondary's replication server.
type ServerOptions struct {
	Logger *slog.Logger
	// Dev describes the export (its size) and is what a shutdown
	// flushes; connections write to what Handler.Attach returns.
	Dev blockdev.Device
	// TLS, if set, is required of every caller.
	TLS *tls.Config
	// IdleTimeout: a link silent for longer is dead (the primary pings).
	IdleTimeout time.Duration
	// Secret, if set, authenticates the caller before anything else is
	// answered (see Secret).
	Secret *Secret
}

// NewServer returns the NBD server of a secondary's replication port:
// one export, opened only after a hello the handler accepted, nothing
// listed or described before it, and control messages handed to h.
func NewServer(h Handler, o ServerOptions) (*nbd.Server, error) {
	var auth func(context.Context, *any, []byte) ([]byte, bool, error)
	if o.Secret != nil {
		auth = o.Secret.ServerAuth()
	}
	srv := nbd.NewServer(nbd.ServerOptions{
		Logger: o.Logger,
		Auth:   auth,
		Hello: func(ctx context.Context, _ string, req []byte) ([]byte, error) {
			ci, _ := nbd.ConnFromContext(ctx)
			hello, err := UnmarshalHello(req)
			if err != nil {
				return nil, err
			}
			reply, err := h.Hello(ctx, ci, hello)
			var r *Refusal
			if errors.As(err, &r) {
				ref := &nbd.HelloRefusal{Err: errors.New(r.Msg)}
				if r.Peer != nil {
					ref.Data = MarshalHello(*r.Peer)
				}
				return nil, ref
			}
			if err != nil {
				return nil, err
			}
			return MarshalHello(reply), nil
		},
		Control: func(ctx context.Context, _ string, req []byte) ([]byte, error) {
			ci, _ := nbd.ConnFromContext(ctx)
			m, err := UnmarshalMessage(req)
			if err != nil {
				return nil, err
			}
			reply, err := h.Control(ctx, ci, m)
			if err != nil {
				return nil, err
			}
			return MarshalHello(reply), nil
		},
		HelloFirst:  true,
		IdleTimeout: o.IdleTimeout,
		TLS:         o.TLS,
		TLSRequired: o.TLS != nil,
	})
	err := srv.AddExport(nbd.Export{
		Name: Export, Description: "netraid replication", Dev: o.Dev, RequireHello: true,
		Attach: func(ctx context.Context) (blockdev.Device, error) {
			ci, _ := nbd.ConnFromContext(ctx)
			return h.Attach(ctx, ci)
		},
	})
	if err != nil {
		return nil, err
	}
	return srv, nil
}
