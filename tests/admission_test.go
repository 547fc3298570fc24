package tests

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/pki"
	"github.com/netraid/netraid/tests/harness"
)

// TestIdleConnectionsLockNoOneOut: a client holding every connection of
// the export, finished negotiating and then silent, does not keep new
// clients out: each newcomer displaces one of the idle connections, and
// works; nbdinfo gets in too.
func TestIdleConnectionsLockNoOneOut(t *testing.T) {
	requireTools(t, "nbdinfo")
	const maxConns = 8
	n, addr := serveNode(t, "hoard", "--max-connections", "8")
	var hoard []*nbd.Client
	for range maxConns {
		c := dialClient(t, addr, "hoard")
		t.Cleanup(func() { c.Close() })
		hoard = append(hoard, c)
	}
	n.WaitStatus(20*time.Second, "the hoard attached", func(s node.Status) bool { return s.Export.Clients == maxConns })
	var newcomers []*nbd.Client
	for i := range 3 {
		c := dialClient(t, addr, "hoard")
		t.Cleanup(func() { c.Close() })
		checkWriteRead(t, c, int64(i)<<20, byte(i))
		newcomers = append(newcomers, c)
	}
	harness.Run(t, "nbdinfo", "nbd://"+addr+"/hoard")
	// Each of the four displaced the hoarded connection idle longest: the
	// first four, in the order they were opened.
	for i, c := range hoard {
		if err := c.Flush(); (i < 4) != (err != nil) {
			t.Fatalf("hoarded connection %d after four newcomers: %v", i, err)
		}
	}
	for i, c := range newcomers {
		if err := c.Flush(); err != nil {
			t.Fatalf("newcomer %d: %v", i, err)
		}
	}
}

// TestOneCertificateCannotFillTheExport: under TLS, a client certificate
// holds at most a quarter of --max-connections; its newcomers displace
// its own idle connections, and another certificate's clients get in.
func TestOneCertificateCannotFillTheExport(t *testing.T) {
	dir := t.TempDir()
	d := makePKI(t, dir, "certs")
	harness.Run(t, harness.Binary(t), "certs", "client", "bob", "--ca", d.ca)
	bobDir := filepath.Join(d.ca, "clients", "bob")
	n, addr := serveNode(t, "certs", "--tls-dir", d.a, "--tls-required", "--max-connections", "8")
	const perCert = 8 / 4
	var alice []*nbd.Client
	for range 8 {
		alice = append(alice, dialTLS(t, addr, "certs", d.alice))
	}
	n.WaitStatus(20*time.Second, "alice's connections", func(s node.Status) bool { return s.Export.Clients == perCert })
	for i, c := range alice {
		if err := c.Flush(); (i < len(alice)-perCert) != (err != nil) {
			t.Fatalf("alice's connection %d of %d, %d per certificate: %v", i, len(alice), perCert, err)
		}
	}
	for i := range perCert {
		c := dialTLS(t, addr, "certs", bobDir)
		checkWriteRead(t, c, int64(i)<<20, byte(i))
	}
	for _, c := range alice[len(alice)-perCert:] {
		if err := c.Flush(); err != nil {
			t.Fatalf("alice's last connections after bob's: %v", err)
		}
	}
}

// dialTLS opens the export with the client certificate in certs.
func dialTLS(t *testing.T, addr, export, certs string) *nbd.Client {
	t.Helper()
	cfg, err := pki.ClientTLS(certs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := nbd.Dial(ctx, "tcp", addr, nbd.ClientOptions{Export: export, Timeout: 20 * time.Second, TLS: cfg})
	if err != nil {
		t.Fatalf("a client with the certificate of %s could not connect: %v", filepath.Base(certs), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
