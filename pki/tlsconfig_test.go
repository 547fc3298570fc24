package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// handshake runs a TLS handshake over a pipe, then the server sends a
// byte the client reads: in TLS 1.3 a client learns that the server
// refused its certificate only on its first read. It returns each side's
// error.
func handshake(t *testing.T, server, client *tls.Config) (serr, cerr error) {
	t.Helper()
	a, b := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	var wg sync.WaitGroup
	// Each side closes the pipe, not the TLS session: two close_notify
	// alerts written at once would block each other on a pipe.
	wg.Go(func() {
		defer a.Close()
		s := tls.Server(a, server)
		if serr = s.Handshake(); serr == nil {
			_, serr = s.Write([]byte{1})
		}
	})
	wg.Go(func() {
		defer b.Close()
		c := tls.Client(b, client)
		if cerr = c.Handshake(); cerr == nil {
			_, cerr = io.ReadFull(c, make([]byte, 1))
		}
	})
	wg.Wait()
	return serr, cerr
}

// impostor is base presenting the certificate of from (none if from has
// none) whatever CAs the server asks for, and trusting any server: only
// the server's checks decide.
func impostor(base, from *tls.Config) *tls.Config {
	c := base.Clone()
	c.Certificates = nil
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if len(from.Certificates) == 0 {
			return &tls.Certificate{}, nil
		}
		return &from.Certificates[0], nil
	}
	c.InsecureSkipVerify, c.VerifyConnection = true, nil
	return c
}

// must fails the test on a configuration that did not load.
func must(t *testing.T) func(*tls.Config, error) *tls.Config {
	return func(cfg *tls.Config, err error) *tls.Config {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
}

func TestPeerTLS(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	other := t.TempDir()
	setup(t, other, "vol") // same volume name, another CA
	if _, err := IssueNode(filepath.Join(dir, "ca"), filepath.Join(dir, "x"), "x", IssueOptions{Volume: "other"}); err != nil {
		t.Fatal(err)
	}
	peer := func(d, vol string) *tls.Config {
		return must(t)(PeerTLS(d, vol))
	}
	a, b := peer(filepath.Join(dir, "a"), "vol"), peer(filepath.Join(dir, "b"), "vol")
	if serr, cerr := handshake(t, b, a); serr != nil || cerr != nil {
		t.Fatalf("a to b: server %v, client %v", serr, cerr)
	}
	if serr, cerr := handshake(t, a, b); serr != nil || cerr != nil {
		t.Fatalf("b to a: server %v, client %v", serr, cerr)
	}

	foreign := peer(filepath.Join(other, "b"), "vol")
	wrongVol := peer(filepath.Join(dir, "x"), "other")
	client := must(t)(ClientTLS(filepath.Join(dir, "alice")))
	for _, tc := range []struct {
		name           string
		server, client *tls.Config
		// want is in the error of the side that checks the bad
		// certificate; the other side sees a TLS alert.
		want       string
		serverSees bool
	}{
		{"secondary of another CA", foreign, a, "not trusted", false},
		{"primary of another CA", a, impostor(a, foreign), "not trusted", true},
		{"primary that trusts another CA", a, foreign, "not trusted", false},
		{"secondary of another volume", wrongVol, a, `for volume "other"`, false},
		{"primary of another volume", a, impostor(a, wrongVol), `for volume "other"`, true},
		{"a client certificate as primary", a, impostor(a, client), `client "alice"`, true},
		{"no certificate", a, impostor(a, &tls.Config{}), "certificate", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serr, cerr := handshake(t, tc.server, tc.client)
			if serr == nil || cerr == nil {
				t.Fatalf("accepted: server %v, client %v", serr, cerr)
			}
			checker := cerr
			if tc.serverSees {
				checker = serr
			}
			if !strings.Contains(checker.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", checker, tc.want)
			}
			t.Logf("refused: %v", checker)
		})
	}
}

func TestPeerTLSLoadChecks(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	if _, err := PeerTLS(filepath.Join(dir, "a"), "other"); !errors.Is(err, ErrWrongVolume) {
		t.Errorf("PeerTLS of a node of vol for volume other: %v, want ErrWrongVolume", err)
	}
	if _, err := PeerTLS(filepath.Join(dir, "alice"), "vol"); err == nil {
		t.Error("PeerTLS took a client directory")
	}
	if _, err := ServerTLS(filepath.Join(dir, "ca"), ServerOptions{}); err == nil {
		t.Error("ServerTLS took a CA directory")
	}
	// A node certificate that does not chain to the directory's CA.
	other := t.TempDir()
	setup(t, other, "vol")
	copyFile(t, filepath.Join(other, "ca", CACert), filepath.Join(dir, "a", CACert))
	if _, err := PeerTLS(filepath.Join(dir, "a"), "vol"); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("PeerTLS with a foreign ca-cert.pem: %v", err)
	}
	// An expired certificate.
	if _, err := IssueNode(filepath.Join(dir, "ca"), filepath.Join(dir, "old"), "old", IssueOptions{Validity: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := PeerTLS(filepath.Join(dir, "old"), "vol"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("PeerTLS with an expired certificate: %v", err)
	}
}

func TestExportTLS(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	other := t.TempDir()
	setup(t, other, "vol")
	if _, err := IssueClient(filepath.Join(dir, "ca"), filepath.Join(dir, "mallory"), "mallory", IssueOptions{Volume: "other"}); err != nil {
		t.Fatal(err)
	}
	server := must(t)(ServerTLS(filepath.Join(dir, "a"), ServerOptions{}))
	client := func(d string) *tls.Config {
		cfg := must(t)(ClientTLS(d))
		cfg.ServerName = "localhost"
		return cfg
	}
	if serr, cerr := handshake(t, server, client(filepath.Join(dir, "alice"))); serr != nil || cerr != nil {
		t.Fatalf("alice: server %v, client %v", serr, cerr)
	}
	// A node is a client of the export only where the server allows it.
	nodeAsClient := must(t)(PeerTLS(filepath.Join(dir, "b"), "vol"))
	nodeAsClient.ServerName = "localhost"
	serr, cerr := handshake(t, server, nodeAsClient)
	if !errors.Is(serr, ErrWrongRole) || !strings.Contains(serr.Error(), "--tls-allow-node-clients") || cerr == nil {
		t.Fatalf("node b as a client of a server that does not allow it: server %v, client %v", serr, cerr)
	}
	lenient := must(t)(ServerTLS(filepath.Join(dir, "a"), ServerOptions{AllowNodeClients: true}))
	if serr, cerr := handshake(t, lenient, nodeAsClient); serr != nil || cerr != nil {
		t.Fatalf("node b as a client of a server that allows it: server %v, client %v", serr, cerr)
	}
	if serr, cerr := handshake(t, lenient, client(filepath.Join(dir, "alice"))); serr != nil || cerr != nil {
		t.Fatalf("alice, node clients allowed: server %v, client %v", serr, cerr)
	}
	alice := client(filepath.Join(dir, "alice"))
	wrongHost := client(filepath.Join(dir, "alice"))
	wrongHost.ServerName = "elsewhere.example"
	for _, tc := range []struct {
		name       string
		client     *tls.Config
		want       string
		serverSees bool
	}{
		{"no client certificate", impostor(alice, &tls.Config{}), "certificate", true},
		{"client of another CA", impostor(alice, client(filepath.Join(other, "alice"))), "not trusted", true},
		{"client of another volume", impostor(alice, client(filepath.Join(dir, "mallory"))), `for volume "other"`, true},
		{"client that trusts another CA", client(filepath.Join(other, "alice")), "unknown authority", false},
		{"server of another host name", wrongHost, "elsewhere.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serr, cerr := handshake(t, server, tc.client)
			if serr == nil || cerr == nil {
				t.Fatalf("accepted: server %v, client %v", serr, cerr)
			}
			checker := cerr
			if tc.serverSees {
				checker = serr
			}
			if !strings.Contains(checker.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", checker, tc.want)
			}
		})
	}
	// A client refuses a server of another volume.
	if _, err := IssueNode(filepath.Join(dir, "ca"), filepath.Join(dir, "x"), "x", IssueOptions{Volume: "other"}); err != nil {
		t.Fatal(err)
	}
	serr, cerr = handshake(t, must(t)(ServerTLS(filepath.Join(dir, "x"), ServerOptions{})), client(filepath.Join(dir, "alice")))
	if cerr == nil || !errors.Is(cerr, ErrWrongVolume) && !strings.Contains(cerr.Error(), `for volume "other"`) {
		t.Fatalf("alice to a server of volume other: server %v, client %v", serr, cerr)
	}
}

// TestPeerTLSNeedsBothUsages: a node certificate that cannot
// authenticate a client (made by hand, not by IssueNode) cannot dial the
// replication link.
func TestPeerTLSNeedsBothUsages(t *testing.T) {
	dir := t.TempDir()
	setup(t, dir, "vol")
	caCert, caKey, err := readCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template(Identity{Volume: "vol", Role: RoleNode, Name: "c"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	_, der, err := sign(tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	serverOnly := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	a := must(t)(PeerTLS(filepath.Join(dir, "a"), "vol"))
	serr, cerr := handshake(t, a, impostor(a, serverOnly))
	if serr == nil || !strings.Contains(serr.Error(), "key usage") {
		t.Fatalf("server %v, client %v: want the usage refused", serr, cerr)
	}
}
