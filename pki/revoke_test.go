package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIssuedTo(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	ca := filepath.Join(dir, "ca")
	alice, err := readCert(filepath.Join(dir, "alice", ClientCert))
	if err != nil {
		t.Fatal(err)
	}
	got, err := IssuedTo(ca, "alice", "")
	if err != nil || len(got) != 1 || !got[0].Equal(alice) {
		t.Fatalf("IssuedTo alice: %v, %v", len(got), err)
	}
	if _, err := IssuedTo(ca, "alice", RoleNode); !errors.Is(err, ErrNotIssued) {
		t.Errorf("IssuedTo alice as a node: %v, want ErrNotIssued", err)
	}
	if _, err := IssuedTo(ca, "carol", ""); !errors.Is(err, ErrNotIssued) {
		t.Errorf("IssuedTo carol: %v, want ErrNotIssued", err)
	}
	// A node and a client of one name, and a second certificate for
	// alice: each is found under its role.
	if _, err := IssueNode(ca, filepath.Join(dir, "alice-node"), "alice", IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := IssueClient(ca, filepath.Join(dir, "alice2"), "alice", IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	for role, want := range map[Role]int{"": 3, RoleClient: 2, RoleNode: 1} {
		if got, err := IssuedTo(ca, "alice", role); err != nil || len(got) != want {
			t.Errorf("IssuedTo alice %q: %d, %v; want %d", role, len(got), err, want)
		}
	}
	// A certificate made before the CA kept records is found in the
	// default output directory; one of another CA there is not.
	bob := filepath.Join(ca, "clients", "bob")
	if _, err := IssueClient(ca, bob, "bob", IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	recs, _ := filepath.Glob(filepath.Join(ca, issuedDir, "client-bob-*.pem"))
	if len(recs) != 1 {
		t.Fatalf("records of bob: %q", recs)
	}
	os.Remove(recs[0])
	if got, err := IssuedTo(ca, "bob", RoleClient); err != nil || len(got) != 1 {
		t.Fatalf("IssuedTo bob from clients/bob: %d, %v", len(got), err)
	}
	other := t.TempDir()
	setup(t, other, "vol")
	copyFile(t, filepath.Join(other, "alice", ClientCert), filepath.Join(bob, ClientCert))
	if _, err := IssuedTo(ca, "bob", ""); !errors.Is(err, ErrNotIssued) {
		t.Errorf("IssuedTo bob, another CA's certificate in clients/bob: %v, want ErrNotIssued", err)
	}
}

func TestRevokeList(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	ca := filepath.Join(dir, "ca")
	if _, err := ReadCRL(ca); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadCRL before any revocation: %v", err)
	}
	alice := issuedTo(t, ca, "alice")
	b := issuedTo(t, ca, "b")
	crl, err := Revoke(ca, alice...)
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(alice[0].SerialNumber) != 0 || crl.Number.Int64() != 1 {
		t.Fatalf("first list: %+v number %v", crl.RevokedCertificateEntries, crl.Number)
	}
	// Revoking again keeps the list, adds once, and counts up.
	if _, err := Revoke(ca, alice...); err != nil {
		t.Fatal(err)
	}
	crl, err = Revoke(ca, b...)
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 2 || crl.Number.Int64() != 3 {
		t.Fatalf("third list: %d entries, number %v; want 2 and 3", len(crl.RevokedCertificateEntries), crl.Number)
	}
	read, err := ReadCRL(ca)
	if err != nil || !read.Number.IsInt64() || read.Number.Int64() != 3 {
		t.Fatalf("ReadCRL: %v %v", read, err)
	}
	if fi, err := os.Stat(filepath.Join(ca, CRLFile)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("%s: %v %v", CRLFile, fi, err)
	}
	// Another CA's certificate cannot be put on this list, nor can this
	// CA extend another's list.
	other := t.TempDir()
	setup(t, other, "vol")
	if _, err := Revoke(ca, issuedTo(t, filepath.Join(other, "ca"), "alice")...); err == nil {
		t.Error("Revoke took another CA's certificate")
	}
	copyFile(t, filepath.Join(ca, CRLFile), filepath.Join(other, "ca", CRLFile))
	if _, err := Revoke(filepath.Join(other, "ca"), issuedTo(t, filepath.Join(other, "ca"), "b")...); err == nil || !strings.Contains(err.Error(), "not signed by the CA") {
		t.Errorf("Revoke over another CA's list: %v", err)
	}
}

// TestRevokedRefused: a revocation list copied into a node or client
// directory refuses, on the next connection and without a new
// configuration, the certificates it lists, on the export, the
// replication link and the client side alike.
func TestRevokedRefused(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	ca := filepath.Join(dir, "ca")
	if _, err := IssueClient(ca, filepath.Join(dir, "bob"), "bob", IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	server := must(t)(ServerTLS(filepath.Join(dir, "a"), ServerOptions{}))
	client := func(name string) *tls.Config {
		cfg := must(t)(ClientTLS(filepath.Join(dir, name)))
		cfg.ServerName = "localhost"
		return cfg
	}
	alice, bob := client("alice"), client("bob")
	peerA := must(t)(PeerTLS(filepath.Join(dir, "a"), "vol"))
	peerB := must(t)(PeerTLS(filepath.Join(dir, "b"), "vol"))
	for _, c := range []*tls.Config{alice, bob} {
		if serr, cerr := handshake(t, server, c); serr != nil || cerr != nil {
			t.Fatalf("before revocation: server %v, client %v", serr, cerr)
		}
	}

	if _, err := Revoke(ca, append(issuedTo(t, ca, "alice"), issuedTo(t, ca, "b")...)...); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(ca, CRLFile), filepath.Join(dir, "a", CRLFile))
	serr, cerr := handshake(t, server, alice)
	if !errors.Is(serr, ErrRevoked) || cerr == nil || !strings.Contains(serr.Error(), `client "alice"`) {
		t.Fatalf("revoked alice: server %v, client %v", serr, cerr)
	}
	t.Logf("refused: %v", serr)
	if serr, cerr := handshake(t, server, bob); serr != nil || cerr != nil {
		t.Fatalf("bob, not revoked: server %v, client %v", serr, cerr)
	}
	// Node b is revoked: a refuses it as its primary and as its
	// secondary, though b, without the list, would take a.
	if serr, cerr := handshake(t, peerA, peerB); !errors.Is(serr, ErrRevoked) || cerr == nil {
		t.Fatalf("revoked b dialing a: server %v, client %v", serr, cerr)
	}
	if serr, cerr := handshake(t, peerB, peerA); !errors.Is(cerr, ErrRevoked) || serr == nil {
		t.Fatalf("a dialing revoked b: server %v, client %v", serr, cerr)
	}
	// A client holding the list refuses a revoked server.
	copyFile(t, filepath.Join(ca, CRLFile), filepath.Join(dir, "bob", CRLFile))
	bServer := must(t)(ServerTLS(filepath.Join(dir, "b"), ServerOptions{}))
	copyFile(t, filepath.Join(ca, CRLFile), filepath.Join(dir, "b", CRLFile))
	if _, err := ServerTLS(filepath.Join(dir, "b"), ServerOptions{}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("ServerTLS of revoked node b: %v, want ErrRevoked", err)
	}
	os.Remove(filepath.Join(dir, "b", CRLFile))
	if serr, cerr := handshake(t, bServer, bob); !errors.Is(cerr, ErrRevoked) || serr == nil {
		t.Fatalf("bob to revoked b: server %v, client %v", serr, cerr)
	}
	// The list removed, alice is back: the list is read at each
	// connection.
	os.Remove(filepath.Join(dir, "a", CRLFile))
	if serr, cerr := handshake(t, server, alice); serr != nil || cerr != nil {
		t.Fatalf("no list: server %v, client %v", serr, cerr)
	}
}

// TestRevocationsBrokenList: a list that cannot be read or that another
// CA signed refuses every certificate until it is fixed, and a node does
// not start with it.
func TestRevocationsBrokenList(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	other := t.TempDir()
	setup(t, other, "vol")
	if _, err := Revoke(filepath.Join(other, "ca"), issuedTo(t, filepath.Join(other, "ca"), "alice")...); err != nil {
		t.Fatal(err)
	}
	server := must(t)(ServerTLS(filepath.Join(dir, "a"), ServerOptions{}))
	alice := must(t)(ClientTLS(filepath.Join(dir, "alice")))
	alice.ServerName = "localhost"
	list := filepath.Join(dir, "a", CRLFile)
	for _, tc := range []struct {
		name, want string
		write      func()
	}{
		{"another CA's list", "not signed by the CA", func() { copyFile(t, filepath.Join(other, "ca", CRLFile), list) }},
		{"garbage", "revocation list", func() { os.WriteFile(list, []byte("not a list"), 0o644) }},
		{"a certificate", "not an X509 CRL", func() { copyFile(t, filepath.Join(dir, "a", CACert), list) }},
		{"unreadable", "revocation list", func() { os.Remove(list); os.Mkdir(list, 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(list)
			tc.write()
			serr, cerr := handshake(t, server, alice)
			if serr == nil || cerr == nil || !strings.Contains(serr.Error(), tc.want) || !strings.Contains(serr.Error(), "until it is fixed") {
				t.Fatalf("server %v, client %v", serr, cerr)
			}
			if _, err := ServerTLS(filepath.Join(dir, "a"), ServerOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ServerTLS with a broken list: %v", err)
			}
		})
	}
	os.RemoveAll(list)
	if serr, cerr := handshake(t, server, alice); serr != nil || cerr != nil {
		t.Fatalf("list removed: server %v, client %v", serr, cerr)
	}
}

// TestRevocationsReload: Load reads the list again only when the file
// changed, and sees a list renamed into place.
func TestRevocationsReload(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	ca := filepath.Join(dir, "ca")
	r, err := OpenRevocations(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Load(); n != 0 || err != nil {
		t.Fatalf("no list: %d, %v", n, err)
	}
	alice := issuedTo(t, ca, "alice")[0]
	for i, name := range []string{"alice", "b"} {
		if _, err := Revoke(ca, issuedTo(t, ca, name)...); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join(ca, CRLFile), r.Path())
		if n, err := r.Load(); n != i+1 || err != nil {
			t.Fatalf("after revoking %s: %d, %v", name, n, err)
		}
	}
	if !r.Revoked(alice) || !errors.Is(r.Check(alice), ErrRevoked) {
		t.Fatal("alice not revoked")
	}
	if r.Revoked(issuedTo(t, ca, "a")[0]) {
		t.Fatal("a revoked")
	}
}

func issuedTo(t *testing.T, ca, name string) []*x509.Certificate {
	t.Helper()
	c, err := IssuedTo(ca, name, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
