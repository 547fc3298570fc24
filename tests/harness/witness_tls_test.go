package harness

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

// TestWitnessTLSFiles: the members' certificate verifies for every
// member's address and only for serving; the client certificate verifies
// for client authentication; both under the CA the client is given.
func TestWitnessTLSFiles(t *testing.T) {
	addrs := []string{"10.214.7.11", "10.214.7.12", "10.214.7.13"}
	tl := makeWitnessTLS(t, t.TempDir(), addrs)
	ca, err := os.ReadFile(tl.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatalf("%s holds no certificate", tl.CA)
	}
	leaf := func(cert, key string) *x509.Certificate {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatalf("%s with %s: %v", cert, key, err)
		}
		c, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server := leaf(tl.ServerCert, tl.ServerKey)
	for _, a := range addrs {
		_, err := server.Verify(x509.VerifyOptions{DNSName: a, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("the members' certificate for %s: %v", a, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{DNSName: "10.214.7.14", Roots: roots}); err == nil {
		t.Error("the members' certificate verifies for an address no member has")
	}
	client := leaf(tl.Cert, tl.Key)
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the client certificate: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("the client certificate verifies for serving")
	}
}
