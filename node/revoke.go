package node

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/pki"
)

// Revocation on the export and on the link. A new connection is checked against the TLS
// directory's ca-crl.pem at its handshake (pki reads the list again when
// the file changes). A connection already open when its certificate is
// revoked is closed by the watcher below, which looks at the list every
// revokeInterval: so a revoked client is cut within about that time,
// without a restart, and so is one whose handshake was checked against
// the list just before it changed. The secondary watches its replication
// port the same way (a revoked primary's link is closed); the primary
// checks its secondary's certificate at every keepalive (peerRevoked).

// revokeInterval is how often the watcher looks at the revocation list.
var revokeInterval = time.Second

// connCloser is what the watcher needs of the export's server.
type connCloser interface {
	CloseWhere(match func(nbd.ConnInfo) bool) int
}

// closeRevoked starts, on wg and until ctx is done, the watcher that
// closes srv's connections of revoked certificates. Without a TLS
// directory there is nothing to watch.
func (n *Node) closeRevoked(ctx context.Context, wg *sync.WaitGroup, srv connCloser) {
	if n.cfg.TLSDir == "" {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.watchRevocations(ctx, srv)
	}()
}

func (n *Node) watchRevocations(ctx context.Context, srv connCloser) {
	t := time.NewTicker(revokeInterval)
	defer t.Stop()
	var rev *pki.Revocations
	var broken string // the error last reported, until the list is usable again
	for {
		var err error
		if rev == nil {
			rev, err = pki.OpenRevocations(n.cfg.TLSDir)
		}
		var listed int
		if err == nil {
			listed, err = rev.Load()
		}
		switch {
		case err != nil && err.Error() != broken:
			broken = err.Error()
			n.log.Error("revocation list unusable: new TLS connections are refused until it is fixed; open ones stay", "err", err)
		case err == nil && broken != "":
			broken = ""
			n.log.Info("revocation list usable again", "list", rev.Path(), "revoked", listed)
		}
		if err == nil && listed > 0 {
			n.closeRevokedConns(srv, rev)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// closeRevokedConns closes the connections whose client certificate rev
// lists, and logs who they were.
func (n *Node) closeRevokedConns(srv connCloser, rev *pki.Revocations) {
	var who []string
	closed := srv.CloseWhere(func(ci nbd.ConnInfo) bool {
		if ci.TLS == nil || len(ci.TLS.PeerCertificates) == 0 || !rev.Revoked(ci.TLS.PeerCertificates[0]) {
			return false
		}
		who = append(who, ci.TLS.PeerCertificates[0].Subject.CommonName)
		return true
	})
	if closed > 0 {
		n.log.Warn("closed the connections of revoked certificates", "connections", closed, "tls_clients", who, "list", rev.Path())
	}
}

// peerRevoked says why the link's peer can no longer be trusted: its
// certificate is on the revocation list in the TLS directory (opened
// into *rev on first use). A list that cannot be read changes nothing
// for an open link: the watcher of the replication port logs it, and
// new connections are refused until it is fixed.
func (n *Node) peerRevoked(rev **pki.Revocations, cert *x509.Certificate) error {
	if n.cfg.TLSDir == "" || cert == nil {
		return nil
	}
	if *rev == nil {
		r, err := pki.OpenRevocations(n.cfg.TLSDir)
		if err != nil {
			return nil
		}
		*rev = r
	}
	if listed, err := (*rev).Load(); err != nil || listed == 0 {
		return nil
	}
	if err := (*rev).Check(cert); err != nil {
		return fmt.Errorf("the peer's certificate (%s) is on the revocation list %s: %w", cert.Subject.CommonName, (*rev).Path(), err)
	}
	return nil
}
