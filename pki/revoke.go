package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CRLFile is the revocation list: a CRL signed by the volume's CA. 'certs
// revoke' writes it into the CA directory; a node or client directory
// holding a copy refuses the certificates it lists. qemu reads the same
// name from its certificate directories.
const CRLFile = "ca-crl.pem"

// issuedDir is where a CA directory keeps a copy of every certificate it
// issued, so that 'certs revoke NAME' can find them.
const issuedDir = "issued"

// ErrRevoked: the certificate is on the revocation list.
var ErrRevoked = errors.New("pki: certificate revoked")

// ErrNotIssued: no certificate of that name was found among those the CA
// issued.
var ErrNotIssued = errors.New("pki: no such certificate issued")

// recordIssued keeps a copy of a certificate the CA in caDir just signed.
func recordIssued(caDir string, cert *x509.Certificate, id Identity) error {
	name := fmt.Sprintf("%s-%s-%s.pem", id.Role, id.Name, cert.SerialNumber.Text(16))
	return writeFiles(filepath.Join(caDir, issuedDir), false, certFile(name, cert.Raw))
}

// IssuedTo returns the certificates of the CA in caDir that name the
// holder name (and have role, unless role is empty): those recorded in
// its issued directory, and those in the default output directories
// (nodes/NAME, clients/NAME) for certificates made before the record was
// kept. Each is signed by the CA, each once.
func IssuedTo(caDir, name string, role Role) ([]*x509.Certificate, error) {
	ca, err := readCert(filepath.Join(caDir, CACert))
	if err != nil {
		return nil, err
	}
	paths, err := filepath.Glob(filepath.Join(caDir, issuedDir, "*.pem"))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	paths = append(paths,
		filepath.Join(caDir, string(RoleNode)+"s", name, ServerCert),
		filepath.Join(caDir, string(RoleClient)+"s", name, ClientCert))
	var certs []*x509.Certificate
	seen := map[string]bool{}
	for _, p := range paths {
		c, err := readCert(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		id, err := IdentityOf(c)
		if err != nil || id.Name != name || role != "" && id.Role != role {
			continue
		}
		if seen[string(c.Raw)] || c.CheckSignatureFrom(ca) != nil {
			continue
		}
		seen[string(c.Raw)] = true
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		what := "certificate"
		if role != "" {
			what = string(role) + " certificate"
		}
		return nil, fmt.Errorf("%w: the CA in %s issued no %s to %q", ErrNotIssued, caDir, what, name)
	}
	return certs, nil
}

// Revoke puts certs on the revocation list of the CA in caDir and writes
// the list, signed by the CA, to caDir/ca-crl.pem. What the list held
// stays on it: a revocation is for good. It returns the new list.
func Revoke(caDir string, certs ...*x509.Certificate) (*x509.RevocationList, error) {
	ca, key, err := readCA(caDir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(caDir, CRLFile)
	old, err := readCRL(path, ca)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: ca.NotAfter}
	if old != nil {
		tmpl.RevokedCertificateEntries = old.RevokedCertificateEntries
		if old.Number != nil {
			tmpl.Number = new(big.Int).Add(old.Number, big.NewInt(1))
		}
	}
	for _, c := range certs {
		if err := c.CheckSignatureFrom(ca); err != nil {
			return nil, fmt.Errorf("pki: certificate %q was not issued by the CA in %s: %w", c.Subject.CommonName, caDir, err)
		}
		if !slices.ContainsFunc(tmpl.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool {
			return e.SerialNumber.Cmp(c.SerialNumber) == 0
		}) {
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
				x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: tmpl.ThisUpdate})
		}
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca, key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign the revocation list: %w", err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse the new revocation list: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	if err := writeAtomic(path, data, 0o644); err != nil {
		return nil, err
	}
	return crl, nil
}

// ReadCRL reads the revocation list in a CA, node or client directory
// and checks that the directory's CA signed it. A directory without one
// returns an error that wraps fs.ErrNotExist.
func ReadCRL(dir string) (*x509.RevocationList, error) {
	ca, err := readCert(filepath.Join(dir, CACert))
	if err != nil {
		return nil, err
	}
	return readCRL(filepath.Join(dir, CRLFile), ca)
}

// readCRL reads a PEM (or DER) CRL and checks ca's signature on it.
func readCRL(path string, ca *x509.Certificate) (*x509.RevocationList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: revocation list: %w", err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("pki: revocation list %s: a PEM %q block, not an X509 CRL", path, blk.Type)
		}
		b = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("pki: revocation list %s: %w", path, err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("pki: revocation list %s is not signed by the CA of %s (%q): %w; copy the list of this volume's CA",
			path, filepath.Join(filepath.Dir(path), CACert), ca.Subject.CommonName, err)
	}
	return crl, nil
}

// serialKey is how a serial number is looked up.
func serialKey(n *big.Int) string { return n.Text(16) }

// describe names a certificate for messages: its identity if it has one,
// and its serial.
func describe(c *x509.Certificate) string {
	who := fmt.Sprintf("%q", c.Subject.CommonName)
	if id, err := IdentityOf(c); err == nil {
		who = id.String()
	}
	s := serialKey(c.SerialNumber)
	if len(s) > 12 {
		s = s[:12] + "…"
	}
	return strings.TrimSpace(fmt.Sprintf("%s (serial %s)", who, s))
}

// ReadCert reads the first certificate of a PEM file.
func ReadCert(path string) (*x509.Certificate, error) { return readCert(path) }
