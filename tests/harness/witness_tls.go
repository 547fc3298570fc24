package harness

import (
	"path/filepath"

	"github.com/netraid/netraid/pki"
)

// WitnessTLS is the client side of a witness whose members require
// client certificates: a CA of its own, made with the project's pki
// package, that signed the members' server certificate and one client
// certificate.
type WitnessTLS struct {
	// Dir holds CA, Cert and Key in pki's client layout (ca-cert.pem,
	// client-cert.pem, client-key.pem), for a flag that takes a directory.
	Dir       string
	CA        string // the CA's certificate, which signed the members'
	Cert, Key string // a client certificate the members accept, and its key
	// CADir is the CA itself (pki.IssueClient(CADir, ...) makes more
	// client certificates).
	CADir string
	// The members' certificate, valid for every member's address.
	ServerCert, ServerKey string
}

// TLS returns the client certificate files of a witness made with
// WitnessOptions.TLS, or nil when its members take plain connections.
func (w *Witness) TLS() *WitnessTLS { return w.tls }

// makeWitnessTLS makes a CA under dir/tls, a server certificate valid
// for addrs and a client certificate.
func makeWitnessTLS(t T, dir string, addrs []string) *WitnessTLS {
	t.Helper()
	base := filepath.Join(dir, "tls")
	tl := &WitnessTLS{
		Dir:   filepath.Join(base, "client"),
		CADir: filepath.Join(base, "ca"),
	}
	server := filepath.Join(base, "server")
	if _, err := pki.InitCA(tl.CADir, pki.CAOptions{Volume: "witness"}); err != nil {
		t.Fatalf("witness: etcd CA: %v", err)
	}
	if _, err := pki.IssueNode(tl.CADir, server, "etcd", pki.IssueOptions{Hosts: addrs}); err != nil {
		t.Fatalf("witness: etcd server certificate: %v", err)
	}
	if _, err := pki.IssueClient(tl.CADir, tl.Dir, "netraid", pki.IssueOptions{}); err != nil {
		t.Fatalf("witness: etcd client certificate: %v", err)
	}
	tl.CA = filepath.Join(tl.Dir, pki.CACert)
	tl.Cert = filepath.Join(tl.Dir, pki.ClientCert)
	tl.Key = filepath.Join(tl.Dir, pki.ClientKey)
	tl.ServerCert = filepath.Join(server, pki.ServerCert)
	tl.ServerKey = filepath.Join(server, pki.ServerKey)
	return tl
}
