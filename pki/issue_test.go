package pki

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// setup makes a CA for vol in dir/ca, node certificates a and b and a
// client certificate alice.
func setup(t *testing.T, dir, vol string) {
	t.Helper()
	if _, err := InitCA(filepath.Join(dir, "ca"), CAOptions{Volume: vol}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if _, err := IssueNode(filepath.Join(dir, "ca"), filepath.Join(dir, n), n, IssueOptions{Hosts: []string{"10.0.0.1", "db.example"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := IssueClient(filepath.Join(dir, "ca"), filepath.Join(dir, "alice"), "alice", IssueOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestIssueLayout(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	for sub, files := range map[string][]string{
		"ca":    {CACert, CAKey, issuedDir},
		"a":     {CACert, ServerCert, ServerKey},
		"alice": {CACert, ClientCert, ClientKey},
	} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v mode %v, want a 0700 directory", sub, err, fi.Mode())
		}
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
			fi, _ := e.Info()
			want := os.FileMode(0o644)
			switch {
			case e.IsDir():
				want = 0o700
			case e.Name() == CAKey || e.Name() == ServerKey || e.Name() == ClientKey:
				want = 0o600
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s/%s: mode %v, want %v", sub, e.Name(), fi.Mode().Perm(), want)
			}
		}
		slices.Sort(files)
		if !slices.Equal(names, files) {
			t.Errorf("%s holds %q, want %q", sub, names, files)
		}
	}

	ca, err := readCert(filepath.Join(dir, "ca", CACert))
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || !ca.MaxPathLenZero {
		t.Errorf("CA certificate: IsCA %v usage %v", ca.IsCA, ca.KeyUsage)
	}
	node, err := readCert(filepath.Join(dir, "a", ServerCert))
	if err != nil {
		t.Fatal(err)
	}
	if err := node.CheckSignatureFrom(ca); err != nil {
		t.Errorf("node certificate not signed by the CA: %v", err)
	}
	if _, ok := node.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("node key is %T, want ECDSA", node.PublicKey)
	}
	if !slices.Equal(node.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("node usages %v", node.ExtKeyUsage)
	}
	if node.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("node key usage %v", node.KeyUsage)
	}
	if !slices.Equal(node.DNSNames, []string{"a", "localhost", "db.example"}) {
		t.Errorf("node DNS names %q", node.DNSNames)
	}
	wantIPs := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1")}
	if len(node.IPAddresses) != len(wantIPs) {
		t.Errorf("node IP addresses %v, want %v", node.IPAddresses, wantIPs)
	}
	for i, ip := range wantIPs {
		if i < len(node.IPAddresses) && !node.IPAddresses[i].Equal(ip) {
			t.Errorf("node IP address %d: %v, want %v", i, node.IPAddresses[i], ip)
		}
	}
	if node.NotAfter.After(ca.NotAfter) || time.Until(node.NotAfter) < DefaultCertValidity-time.Hour {
		t.Errorf("node valid until %v, CA until %v", node.NotAfter, ca.NotAfter)
	}
	client, err := readCert(filepath.Join(dir, "alice", ClientCert))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(client.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(client.DNSNames)+len(client.IPAddresses) != 0 {
		t.Errorf("client usages %v names %v %v", client.ExtKeyUsage, client.DNSNames, client.IPAddresses)
	}
	for path, want := range map[string]Identity{
		filepath.Join(dir, "ca", CACert):        {Volume: "vol"},
		filepath.Join(dir, "a", ServerCert):     {Volume: "vol", Role: RoleNode, Name: "a"},
		filepath.Join(dir, "alice", ClientCert): {Volume: "vol", Role: RoleClient, Name: "alice"},
	} {
		if got, err := ReadIdentity(path); err != nil || got != want {
			t.Errorf("%s: identity %+v, %v; want %+v", path, got, err, want)
		}
	}
}

func TestIssueRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	ca := filepath.Join(dir, "ca")
	before, _ := os.ReadFile(filepath.Join(dir, "a", ServerKey))
	if _, err := InitCA(ca, CAOptions{Volume: "vol"}); !errors.Is(err, ErrExists) {
		t.Errorf("InitCA over a CA: %v, want ErrExists", err)
	}
	if _, err := IssueNode(ca, filepath.Join(dir, "a"), "a", IssueOptions{}); !errors.Is(err, ErrExists) {
		t.Errorf("IssueNode over a node directory: %v, want ErrExists", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "a", ServerKey)); string(after) != string(before) {
		t.Fatal("a refused issue changed the key")
	}
	if _, err := IssueNode(ca, filepath.Join(dir, "a"), "a", IssueOptions{Force: true}); err != nil {
		t.Fatalf("IssueNode --force: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "a", ServerKey)); string(after) == string(before) {
		t.Fatal("a forced issue kept the old key")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "a", ".*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %q", leftovers)
	}
}

func TestIssueErrors(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	ca := filepath.Join(dir, "ca")
	if _, err := InitCA(filepath.Join(dir, "x"), CAOptions{Volume: "bad name"}); err == nil {
		t.Error("InitCA took an invalid volume name")
	}
	if _, err := IssueNode(ca, filepath.Join(dir, "y"), "a/b", IssueOptions{}); !errors.Is(err, ErrName) {
		t.Errorf("IssueNode with a bad name: %v", err)
	}
	if _, err := IssueNode(filepath.Join(dir, "a"), filepath.Join(dir, "y"), "y", IssueOptions{}); err == nil {
		t.Error("a node directory was taken for a CA")
	}
	// A CA key that does not match its certificate.
	other := t.TempDir()
	if _, err := InitCA(other, CAOptions{Volume: "vol"}); err != nil {
		t.Fatal(err)
	}
	mixed := t.TempDir()
	copyFile(t, filepath.Join(ca, CACert), filepath.Join(mixed, CACert))
	copyFile(t, filepath.Join(other, CAKey), filepath.Join(mixed, CAKey))
	if _, err := IssueNode(mixed, filepath.Join(dir, "z"), "z", IssueOptions{}); err == nil {
		t.Error("issued with a CA key that does not match the CA certificate")
	}
}

func TestIssueVolumeOverride(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	if _, err := IssueNode(filepath.Join(dir, "ca"), filepath.Join(dir, "o"), "o", IssueOptions{Volume: "other"}); err != nil {
		t.Fatal(err)
	}
	id, err := ReadIdentity(filepath.Join(dir, "o", ServerCert))
	if err != nil || id.Volume != "other" {
		t.Fatalf("identity %+v, %v: want volume other", id, err)
	}
}

func TestReadKeyFormats(t *testing.T) {
	dir := t.TempDir()
	k, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "ec.pem")
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	got, err := readKey(p)
	if err != nil || !samePublic(got.Public(), k.Public()) {
		t.Fatalf("SEC 1 key: %v", err)
	}
	os.WriteFile(p, []byte("not a key"), 0o600)
	if _, err := readKey(p); err == nil {
		t.Fatal("read a key from garbage")
	}
}

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
