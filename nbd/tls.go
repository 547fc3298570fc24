package nbd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// This file is TLS (NBD_OPT_STARTTLS) on both sides: the server upgrades
// a connection when asked and, if TLSRequired, refuses everything else
// before; a client with ClientOptions.TLS upgrades first and never goes
// on in plaintext.

// TLS errors. Callers test with errors.Is.
var (
	// ErrTLS: TLS could not be set up: the server offers none, or a side
	// refused the other's certificate. The error says which.
	ErrTLS = errors.New("nbd: TLS failed")
	// ErrTLSRequired: the server takes only TLS connections
	// (NBD_REP_ERR_TLS_REQD), or a client reached for an export before
	// TLS on a server that requires it.
	ErrTLSRequired = errors.New("nbd: TLS required")
)

// tlsRequired answers an option sent before TLS to a server that
// requires it. NBD_OPT_EXPORT_NAME cannot be answered with an error: the
// connection ends.
func (n *negotiation) tlsRequired(opt Option) (done bool, err error) {
	if opt == OptExportName {
		return true, fmt.Errorf("%w: NBD_OPT_EXPORT_NAME before STARTTLS", ErrTLSRequired)
	}
	n.toldTLS = true
	return false, n.replyErr(opt, RepErrTLSReqd, "this server requires TLS: send NBD_OPT_STARTTLS first")
}

// startTLS answers NBD_OPT_STARTTLS: an error reply if TLS cannot start,
// else an ACK, the TLS handshake, and a negotiation that starts over.
// A failed handshake ends the connection: the ACK is gone, there is no
// going back to plaintext.
func (n *negotiation) startTLS(data []byte) error {
	const opt = OptStartTLS
	cfg := n.c.s.opts.TLS
	switch {
	case cfg == nil:
		return n.replyErr(opt, RepErrPolicy, "TLS is not enabled on this server")
	case !n.fixed:
		return n.replyErr(opt, RepErrPolicy, "TLS needs fixed newstyle negotiation")
	case n.tls:
		return n.replyErr(opt, RepErrInvalid, "TLS is already on")
	case len(data) != 0:
		return n.replyErr(opt, RepErrInvalid, "STARTTLS takes no data")
	case n.c.br.Buffered() != 0:
		// Bytes sent after STARTTLS, before the handshake, would be
		// taken for protected ones: a client that injects them is cut.
		return fmt.Errorf("%w: %d bytes after NBD_OPT_STARTTLS, before the TLS handshake", ErrProtocol, n.c.br.Buffered())
	}
	if err := n.reply(opt, RepAck, nil); err != nil {
		return err
	}
	tc := newTLSSession(n.c.raw, tls.Server, cfg)
	if err := tc.HandshakeContext(n.ctx); err != nil {
		if remoteAlert(err) {
			return fmt.Errorf("%w: the client refused this server's certificate or the TLS session: %w", ErrTLS, err)
		}
		return fmt.Errorf("%w: %w", ErrTLS, err)
	}
	n.c.upgrade(tc)
	// The protocol: no negotiation state survives STARTTLS.
	n.tls = true
	n.structured, n.meta, n.hello = false, nil, nil
	n.authed, n.authState = false, nil
	return nil
}

// upgrade makes the TLS session the connection's stream.
func (c *conn) upgrade(tc *tlsSession) {
	st := tc.ConnectionState()
	c.mu.Lock()
	c.nc = tc
	c.tlsState = &st
	c.mu.Unlock()
	c.br.Reset(tc)
	if len(st.PeerCertificates) > 0 {
		c.log = c.log.With("tls_client", st.PeerCertificates[0].Subject.CommonName)
	}
	c.log.Debug("TLS on", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
}

// startTLS upgrades the client's connection before any other option.
// Any refusal fails the handshake: a client that asks for TLS never goes
// on without it.
func (c *Client) startTLS(cfg *tls.Config) error {
	const opt = OptStartTLS
	if err := c.sendOption(opt, nil); err != nil {
		return err
	}
	typ, msg, err := c.readReply(opt)
	switch {
	case err != nil:
		return err
	case typ != RepAck:
		return fmt.Errorf("%w: the server will not start TLS: %w", ErrTLS, replyError(opt, typ, msg))
	case c.br.Buffered() != 0:
		return fmt.Errorf("%w: %d bytes after the STARTTLS reply, before the TLS handshake", ErrProtocol, c.br.Buffered())
	}
	tc := newTLSSession(c.nc, tls.Client, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("%w: %w", ErrTLS, err)
	}
	c.nc = tc
	c.br.Reset(tc)
	c.tls = true
	if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
		c.peerCert = pc[0]
	}
	return nil
}

// tlsRefusal explains an error met after the TLS handshake while
// negotiating: in TLS 1.3 a client learns that the server refused its
// certificate only when it reads the server's alert.
func tlsRefusal(err error) error {
	if remoteAlert(err) && !errors.Is(err, ErrTLS) {
		return fmt.Errorf("%w: the server refused this client's certificate or the TLS session: %w", ErrTLS, err)
	}
	return err
}

// remoteAlert reports whether err is a TLS alert from the other side.
func remoteAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// withServerName returns cfg with ServerName set to addr's host, unless
// it names one.
func withServerName(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil || cfg.ServerName != "" {
		return cfg
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return cfg
	}
	cfg = cfg.Clone()
	cfg.ServerName = host
	return cfg
}
