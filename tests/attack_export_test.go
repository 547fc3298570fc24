package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/pki"
	"github.com/netraid/netraid/tests/harness"
)

// The export, attacked the way an intruder who reaches its port would:
// in plaintext, with a node's certificate, with a revoked certificate.

// TestAttackExportPlaintext: an export started with --tls-dir refuses
// plaintext clients (nbdinfo, nbdsh, qemu-io) and tells them nothing
// about the export; with --tls-optional a plaintext client gets in, and
// TLS still works.
func TestAttackExportPlaintext(t *testing.T) {
	requireTools(t, "nbdinfo", "qemu-io")
	requireNbdsh(t)
	d := makePKI(t, t.TempDir(), "sec")
	n, addr := serveNode(t, "sec", "--tls-dir", d.a)
	plain := "nbd://" + addr + "/sec"
	for _, tc := range []struct {
		name string
		run  func() (string, error)
	}{
		{"nbdinfo", func() (string, error) { return harness.Try("nbdinfo", "--json", plain) }},
		{"nbdinfo --list", func() (string, error) { return harness.Try("nbdinfo", "--list", "--json", "nbd://"+addr) }},
		{"nbdsh", func() (string, error) {
			return nbdsh("-u", plain, "-c", "print('tls', h.get_tls_negotiated(), 'size', h.get_size())")
		}},
		{"qemu-io", func() (string, error) { return qemuIO(addr, "sec", "", "write -P 0xee 0 64k") }},
	} {
		out, err := tc.run()
		if err == nil {
			t.Errorf("%s in plaintext: not refused:\n%s", tc.name, out)
			continue
		}
		if strings.Contains(out, "size") || strings.Contains(out, `"sec"`) {
			t.Errorf("%s in plaintext: refused, but told about the export:\n%s", tc.name, out)
		}
		t.Logf("%s in plaintext: refused: %s", tc.name, lastLine(err.Error()))
	}
	if st, err := n.Status(); err != nil || st.Export.TLS != "required" || st.Export.BytesWritten != 0 {
		t.Fatalf("status: %v, export %+v; want TLS required and nothing written", err, st.Export)
	}
	// The client with its certificate gets in.
	harness.Run(t, "nbdinfo", fmt.Sprintf("nbds://%s/sec?tls-certificates=%s", addr, d.alice))

	// --tls-optional: plaintext is let in, as the operator asked.
	_, optAddr := serveNode(t, "sec", "--tls-dir", d.a, "--tls-optional")
	out, err := nbdsh("-u", "nbd://"+optAddr+"/sec", "-c", "print('tls', h.get_tls_negotiated(), 'size', h.get_size())")
	if err != nil || !strings.Contains(out, "tls False size ") {
		t.Fatalf("nbdsh in plaintext on --tls-optional: %q, %v", out, err)
	}
	harness.Run(t, "nbdinfo", fmt.Sprintf("nbds://%s/sec?tls-certificates=%s", optAddr, d.alice))
}

// TestAttackExportNodeCert: a node's certificate (its key is on every
// node, for the replication link) presented as an NBD client's is
// refused by the export unless the operator allows node clients.
func TestAttackExportNodeCert(t *testing.T) {
	requireTools(t, "nbdinfo")
	dir := t.TempDir()
	d := makePKI(t, dir, "sec")
	// Node b's certificate and key, in a client's layout.
	asClient := filepath.Join(dir, "b-as-client")
	copyInto(t, asClient, filepath.Join(d.b, pki.CACert))
	copyFile(t, filepath.Join(d.b, pki.ServerCert), filepath.Join(asClient, pki.ClientCert))
	copyFile(t, filepath.Join(d.b, pki.ServerKey), filepath.Join(asClient, pki.ClientKey))
	n, addr := serveNode(t, "sec", "--tls-dir", d.a)
	uri := fmt.Sprintf("nbds://%s/sec?tls-certificates=%s", addr, asClient)
	if out, err := harness.Try("nbdinfo", uri); err == nil {
		t.Fatalf("node b's certificate opened the export:\n%s", out)
	}
	n.WaitLog(t, 10*time.Second, "the refusal does not say how to allow node clients", func(log string) bool {
		return strings.Contains(log, "--tls-allow-node-clients")
	})
	_, addr = serveNode(t, "sec", "--tls-dir", d.a, "--tls-allow-node-clients")
	harness.Run(t, "nbdinfo", fmt.Sprintf("nbds://%s/sec?tls-certificates=%s", addr, asClient))
}

// TestAttackRevokedClient: a client certificate revoked with 'certs
// revoke' and the list copied into the node's --tls-dir is refused at
// its next connection, and its connection already open is closed, while
// the daemon runs on and other clients are served.
func TestAttackRevokedClient(t *testing.T) {
	requireTools(t, "nbdinfo")
	dir := t.TempDir()
	d := makePKI(t, dir, "sec")
	harness.Run(t, harness.Binary(t), "certs", "client", "bob", "--ca", d.ca)
	bob := filepath.Join(d.ca, "clients", "bob")
	n, addr := serveNode(t, "sec", "--tls-dir", d.a)
	uri := func(certs string) string { return fmt.Sprintf("nbds://%s/sec?tls-certificates=%s", addr, certs) }
	harness.Run(t, "nbdinfo", uri(d.alice))

	// alice's open connection, as a mounted client holds it.
	open := func(certs string) *nbd.Client {
		cfg, err := pki.ClientTLS(certs)
		if err != nil {
			t.Fatal(err)
		}
		c, err := nbd.Dial(context.Background(), "tcp", addr, nbd.ClientOptions{Export: "sec", TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.ReadAt(make([]byte, 4096), 0); err != nil {
			t.Fatal(err)
		}
		return c
	}
	aliceConn, bobConn := open(d.alice), open(bob)
	before, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}

	harness.Run(t, harness.Binary(t), "certs", "revoke", "alice", "--ca", d.ca)
	copyInto(t, d.a, filepath.Join(d.ca, pki.CRLFile))
	if out, err := harness.Try("nbdinfo", uri(d.alice)); err == nil {
		t.Fatalf("revoked alice got in:\n%s", out)
	}
	select {
	case <-aliceConn.Done():
	case <-time.After(time.Minute):
		t.Fatalf("alice's open connection was not closed:\n%s", n.Tail())
	}
	if _, err := aliceConn.ReadAt(make([]byte, 4096), 0); err == nil {
		t.Fatal("alice's connection still reads after its certificate was revoked")
	}
	if _, err := bobConn.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatalf("bob's connection, not revoked: %v", err)
	}
	harness.Run(t, "nbdinfo", uri(bob))
	after, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !n.Running() || after.Uptime < before.Uptime || after.Export.TLSRefused <= before.Export.TLSRefused {
		t.Fatalf("status before %+v, after %+v: want the same daemon, one more TLS refusal", before, after)
	}
	n.WaitLog(t, 10*time.Second, "the log does not show the revocation", func(log string) bool {
		return strings.Contains(log, "closed the connections of revoked certificates") && strings.Contains(log, "certificate revoked")
	})
}

// copyFile copies a file to another name, mode 0600.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// nbdsh is libnbd's Python shell, run by Debian's python3 (the one that
// has the nbd module, whatever python3 comes first on PATH).
func nbdsh(args ...string) (string, error) {
	return harness.Try("/usr/bin/python3", append([]string{"-m", "nbd"}, args...)...)
}

func requireNbdsh(t *testing.T) {
	t.Helper()
	if _, err := harness.Try("/usr/bin/python3", "-c", "import nbd"); err != nil {
		t.Skip("needs python3-libnbd (nbdsh; run ./scripts/deps.sh)")
	}
}
