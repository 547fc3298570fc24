package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/pki"
)

// exportTLS is the NBD export's TLS configuration, nil without a TLS
// directory. Clients must present a client certificate (or, if allowed,
// a node certificate) of the volume's CA for volume, not revoked. It is
// read from the directory each time the export starts, so that renewed
// certificates take effect at the next promotion; the revocation list is
// read again at each connection.
func (n *Node) exportTLS(volume string) (*tls.Config, error) {
	if n.cfg.TLSDir == "" {
		if !isUnixAddr(n.cfg.Listen) && !loopback(n.cfg.Listen) {
			n.log.Warn("the NBD export listens beyond this machine without TLS: anyone who reaches it can read and write the volume",
				"listen", n.cfg.Listen, "hint", "serve with --tls-dir")
		}
		return nil, nil
	}
	id, err := pki.ReadIdentity(filepath.Join(n.cfg.TLSDir, pki.ServerCert))
	if err != nil {
		return nil, fmt.Errorf("node: export TLS: %w", err)
	}
	if id.Volume != volume {
		return nil, fmt.Errorf("node: export TLS: %w: %s is the certificate of %s, this node serves volume %q",
			pki.ErrWrongVolume, filepath.Join(n.cfg.TLSDir, pki.ServerCert), id, volume)
	}
	cfg, err := pki.ServerTLS(n.cfg.TLSDir, pki.ServerOptions{AllowNodeClients: n.cfg.TLSNodeClients})
	if err != nil {
		return nil, fmt.Errorf("node: export TLS: %w", err)
	}
	if n.cfg.TLSOptional && !isUnixAddr(n.cfg.Listen) && !loopback(n.cfg.Listen) {
		n.log.Warn("the NBD export lets clients in without TLS (--tls-optional): anyone who reaches it can read and write the volume",
			"listen", n.cfg.Listen, "hint", "serve without --tls-optional")
	}
	return cfg, nil
}

// peerTLS is the replication link's TLS configuration, for both ends,
// nil without a TLS directory. The primary reads it at each dial, so
// that renewed certificates take effect at the next connection.
func (n *Node) peerTLS(volume string) (*tls.Config, error) {
	if n.cfg.TLSDir == "" {
		return nil, nil
	}
	cfg, err := pki.PeerTLSFor(n.cfg.TLSDir, volume, n.cfg.PeerName)
	if err != nil {
		return nil, fmt.Errorf("node: replication link TLS: %w", err)
	}
	return cfg, nil
}

// loopback reports whether a HOST:PORT listen address is on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsRefused reports whether a failed dial of the peer was TLS refusing
// it: a certificate either side would not take, or one side without TLS.
func tlsRefused(err error) bool {
	return errors.Is(err, nbd.ErrTLS) || errors.Is(err, nbd.ErrTLSRequired)
}

// exportTLSRequired reports whether the export refuses clients that do
// not start TLS: with a TLS directory, unless TLSOptional.
func (n *Node) exportTLSRequired() bool {
	return n.cfg.TLSDir != "" && !n.cfg.TLSOptional
}

// exportTLSMode says how the NBD export takes TLS: off, offered (to
// clients that ask with STARTTLS) or required.
func (n *Node) exportTLSMode() string {
	switch {
	case n.cfg.TLSDir == "":
		return "off"
	case n.exportTLSRequired():
		return "required"
	}
	return "offered"
}

// linkAuth says how the replication link is authenticated: tls, secret,
// or none (--insecure-link).
func (c *Config) linkAuth() string {
	switch {
	case c.TLSDir != "":
		return "tls"
	case c.PeerSecret != "" || c.PeerSecretKey != nil:
		return "secret"
	}
	return "none"
}

// sameHost reports whether a connection's remote address is on host
// (the host part of --peer): an IP compared as an IP, a name as a name.
func sameHost(remote net.Addr, host string) bool {
	if remote == nil {
		return false
	}
	rh, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		rh = remote.String()
	}
	if a, b := net.ParseIP(rh), net.ParseIP(host); a != nil && b != nil {
		return a.Equal(b)
	}
	return rh == host
}

// warnLink says at start what a link that is not encrypted gives up.
func (n *Node) warnLink() {
	onLoopback := loopback(n.cfg.ListenPeer) && loopback(n.cfg.Peer)
	switch n.cfg.linkAuth() {
	case "none":
		if !onLoopback {
			n.log.Warn("the replication link is neither authenticated nor encrypted (--insecure-link): whoever reaches --listen-peer can read the volume, write to it and replace the primary; use --tls-dir, or --peer-secret on a network only the two nodes reach",
				"listen_peer", n.cfg.ListenPeer)
		}
	case "secret":
		if !onLoopback {
			n.log.Warn("the replication link is authenticated by a shared secret but not encrypted: on a network others can reach, use --tls-dir",
				"listen_peer", n.cfg.ListenPeer)
		}
	}
}

// linkProblem is what status says of a link that is not authenticated,
// or "".
func (n *Node) linkProblem() string {
	if n.cfg.linkAuth() == "none" && !(loopback(n.cfg.ListenPeer) && loopback(n.cfg.Peer)) {
		return "the replication link is neither authenticated nor encrypted (--insecure-link) beyond this machine: serve with --tls-dir or --peer-secret"
	}
	return ""
}
