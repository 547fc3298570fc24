package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netraid/netraid/pki"
)

// TestCerts: the documented three commands make a CA and two node
// directories, a fourth a client directory, each in the layout TLS
// clients and 'serve --tls-dir' read; nothing is overwritten.
func TestCerts(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca")
	for _, args := range [][]string{
		{"certs", "init", "--volume", "vol", "--ca", ca},
		{"certs", "issue", "a", "--host", "10.0.0.1", "--ca", ca},
		{"certs", "issue", "b", "--host", "b.example", "--ca", ca},
		{"certs", "client", "alice", "--ca", ca},
	} {
		if code, out, errOut := runCLI(args...); code != exitOK {
			t.Fatalf("netraid %q: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	for dir, want := range map[string]pki.Identity{
		filepath.Join(ca, "nodes", "a", pki.ServerCert):       {Volume: "vol", Role: pki.RoleNode, Name: "a"},
		filepath.Join(ca, "nodes", "b", pki.ServerCert):       {Volume: "vol", Role: pki.RoleNode, Name: "b"},
		filepath.Join(ca, "clients", "alice", pki.ClientCert): {Volume: "vol", Role: pki.RoleClient, Name: "alice"},
	} {
		if id, err := pki.ReadIdentity(dir); err != nil || id != want {
			t.Errorf("%s: %+v, %v; want %+v", dir, id, err, want)
		}
	}
	if _, err := pki.PeerTLS(filepath.Join(ca, "nodes", "a"), "vol"); err != nil {
		t.Errorf("node a's directory does not load: %v", err)
	}
	if _, err := pki.ClientTLS(filepath.Join(ca, "clients", "alice")); err != nil {
		t.Errorf("alice's directory does not load: %v", err)
	}
	key := filepath.Join(ca, "nodes", "a", pki.ServerKey)
	before, _ := os.ReadFile(key)
	code, _, errOut := runCLI("certs", "issue", "a", "--ca", ca)
	if after, _ := os.ReadFile(key); code != exitFail || !strings.Contains(errOut, "--force") || string(after) != string(before) {
		t.Errorf("issuing over node a: exit %d %q, key changed %v", code, errOut, string(after) != string(before))
	}
}

func TestCertsUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"certs"}, exitUsage, "certs needs init"},
		{[]string{"certs", "--help"}, exitOK, "three commands"},
		{[]string{"certs", "revoke", "--help"}, exitOK, "without a restart"},
		{[]string{"certs", "renew"}, exitUsage, `unknown certs action "renew"`},
		{[]string{"certs", "init"}, exitUsage, "--volume"},
		{[]string{"certs", "init", "--volume", "v", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"certs", "issue"}, exitUsage, "takes one name"},
		{[]string{"certs", "issue", "a/b"}, exitUsage, "invalid name"},
		{[]string{"certs", "client", "x", "--host", "h"}, exitUsage, "unknown flag: --host"},
		{[]string{"certs", "issue", "a", "--days", "0"}, exitUsage, "--days"},
		{[]string{"serve", "--tls-required", "/dev/null"}, exitUsage, "--tls-required needs --tls-dir"},
		{[]string{"serve", "--tls-optional", "/dev/null"}, exitUsage, "need --tls-dir"},
		{[]string{"serve", "--tls-allow-node-clients", "/dev/null"}, exitUsage, "need --tls-dir"},
		{[]string{"serve", "--tls-dir", "x", "--tls-required", "--tls-optional", "/dev/null"}, exitUsage, "contradict"},
		{[]string{"serve", "--help"}, exitOK, "--tls-optional"},
		{[]string{"certs", "revoke"}, exitUsage, "give the NAME"},
		{[]string{"certs", "revoke", "a", "b"}, exitUsage, "one name"},
		{[]string{"certs", "revoke", "a", "--role", "admin"}, exitUsage, "--role is node or client"},
		{[]string{"certs", "revoke", "a/b"}, exitUsage, "invalid name"},
		{[]string{"serve", "--max-connections", "0", "/dev/null"}, exitUsage, "--max-connections"},
		{[]string{"serve", "--memory-budget", "lots", "/dev/null"}, exitUsage, `invalid argument "lots" for "--memory-budget"`},
		{[]string{"serve", "--memory-budget", "16MiB", "/dev/null"}, exitUsage, "at least 80 MiB for --max-connections 256"},
	} {
		code, out, errOut := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("netraid %q: exit %d, output %q %q; want exit %d and %q", tt.args, code, out, errOut, tt.code, tt.want)
		}
	}
}

// TestCertsRevoke: 'certs revoke NAME' lists NAME's certificates in the
// CA's ca-crl.pem, keeps what was listed, and asks for --role when the
// name is a node's and a client's; a node directory holding the list
// refuses them.
func TestCertsRevoke(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca")
	other := filepath.Join(t.TempDir(), "elsewhere")
	for _, args := range [][]string{
		{"certs", "init", "--volume", "vol", "--ca", ca},
		{"certs", "issue", "a", "--ca", ca},
		{"certs", "client", "alice", "--ca", ca},
		{"certs", "client", "a", "--ca", ca},
		{"certs", "client", "bob", "--ca", ca, "--out", other},
	} {
		if code, out, errOut := runCLI(args...); code != exitOK {
			t.Fatalf("netraid %q: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	code, out, errOut := runCLI("certs", "revoke", "alice", "--ca", ca)
	if code != exitOK || !strings.Contains(out, `revoked client "alice" of volume "vol"`) || !strings.Contains(out, "1 certificate(s)") || !strings.Contains(out, "--tls-dir") {
		t.Fatalf("revoke alice: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI("certs", "revoke", "a", "--ca", ca); code != exitUsage || !strings.Contains(errOut, "--role") {
		t.Fatalf("revoke a, a node and a client: exit %d %s", code, errOut)
	}
	if code, out, errOut := runCLI("certs", "revoke", "a", "--role", "client", "--ca", ca); code != exitOK || !strings.Contains(out, "2 certificate(s)") {
		t.Fatalf("revoke client a: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI("certs", "revoke", "carol", "--ca", ca); code != exitFail || !strings.Contains(errOut, "--cert") {
		t.Fatalf("revoke carol, never issued: exit %d %s", code, errOut)
	}
	code, out, errOut = runCLI("certs", "revoke", "--cert", filepath.Join(other, pki.ClientCert), "--ca", ca)
	if code != exitOK || !strings.Contains(out, `client "bob"`) || !strings.Contains(out, "3 certificate(s)") {
		t.Fatalf("revoke bob by file: exit %d\n%s%s", code, out, errOut)
	}
	crl, err := pki.ReadCRL(ca)
	if err != nil || len(crl.RevokedCertificateEntries) != 3 {
		t.Fatalf("ReadCRL: %v %v", crl, err)
	}
	// The node's directory, with the list, takes a's certificate still
	// and refuses alice's.
	nodeDir := filepath.Join(ca, "nodes", "a")
	b, _ := os.ReadFile(filepath.Join(ca, pki.CRLFile))
	if err := os.WriteFile(filepath.Join(nodeDir, pki.CRLFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := pki.OpenRevocations(nodeDir)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := pki.ReadCert(filepath.Join(ca, "clients", "alice", pki.ClientCert))
	node, _ := pki.ReadCert(filepath.Join(nodeDir, pki.ServerCert))
	if !errors.Is(r.Check(alice), pki.ErrRevoked) || r.Check(node) != nil {
		t.Fatalf("alice: %v; node a: %v", r.Check(alice), r.Check(node))
	}
}
