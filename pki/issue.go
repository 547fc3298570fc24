package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/netraid/netraid/meta"
)

// Default validity periods.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 2 * 365 * 24 * time.Hour
	// backdate covers clocks that are a little behind the issuer's.
	backdate = time.Hour
)

// CAOptions shape a new CA.
type CAOptions struct {
	// Volume is the volume the CA is for; certificates it issues carry
	// it unless told otherwise.
	Volume   string
	Validity time.Duration // default DefaultCAValidity
	Force    bool          // replace an existing CA
}

// InitCA makes a CA for a volume in dir: ca-cert.pem and ca-key.pem.
func InitCA(dir string, o CAOptions) (*x509.Certificate, error) {
	if err := meta.ValidName(o.Volume); err != nil {
		return nil, fmt.Errorf("pki: volume: %w", err)
	}
	if o.Validity <= 0 {
		o.Validity = DefaultCAValidity
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	id := Identity{Volume: o.Volume}
	tmpl, err := template(id, o.Validity)
	if err != nil {
		return nil, err
	}
	// The serial's start tells two CAs of one volume apart in messages.
	tmpl.Subject.CommonName = fmt.Sprintf("netraid CA for volume %s (%x)", o.Volume, tmpl.SerialNumber.Bytes()[:3])
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	cert, der, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	kf, err := keyFile(CAKey, key)
	if err != nil {
		return nil, err
	}
	if err := writeFiles(dir, o.Force, certFile(CACert, der), kf); err != nil {
		return nil, err
	}
	return cert, nil
}

// IssueOptions shape a node or client certificate.
type IssueOptions struct {
	// Volume overrides the CA's volume, for a CA shared by volumes.
	Volume string
	// Hosts are the DNS names and IP addresses a node certificate is
	// valid for, as NBD clients check them; the node's name, localhost,
	// 127.0.0.1 and ::1 are always included. Ignored for clients.
	Hosts    []string
	Validity time.Duration // default DefaultCertValidity
	Force    bool          // replace existing files in the output directory
}

// IssueNode makes a node certificate signed by the CA in caDir and
// writes it to outDir with its key and the CA certificate:
// server-cert.pem, server-key.pem and ca-cert.pem.
func IssueNode(caDir, outDir, name string, o IssueOptions) (*x509.Certificate, error) {
	return issue(caDir, outDir, RoleNode, name, o)
}

// IssueClient makes a client certificate signed by the CA in caDir and
// writes it to outDir in libnbd's layout: client-cert.pem,
// client-key.pem and ca-cert.pem.
func IssueClient(caDir, outDir, name string, o IssueOptions) (*x509.Certificate, error) {
	return issue(caDir, outDir, RoleClient, name, o)
}

func issue(caDir, outDir string, role Role, name string, o IssueOptions) (*x509.Certificate, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	caCert, caKey, err := readCA(caDir)
	if err != nil {
		return nil, err
	}
	if o.Volume == "" {
		caID, err := IdentityOf(caCert)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w: give the volume", filepath.Join(caDir, CACert), err)
		}
		o.Volume = caID.Volume
	}
	if err := meta.ValidName(o.Volume); err != nil {
		return nil, fmt.Errorf("pki: volume: %w", err)
	}
	if o.Validity <= 0 {
		o.Validity = DefaultCertValidity
	}
	// A leaf does not outlive its CA.
	if left := time.Until(caCert.NotAfter); left <= 0 {
		return nil, fmt.Errorf("pki: the CA in %s expired on %s", caDir, caCert.NotAfter.UTC().Format(time.DateOnly))
	} else {
		o.Validity = min(o.Validity, left)
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	id := Identity{Volume: o.Volume, Role: role, Name: name}
	tmpl, err := template(id, o.Validity)
	if err != nil {
		return nil, err
	}
	tmpl.Subject.CommonName = name
	// qemu insists on both usages for a leaf whose key usage is critical.
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	certName, keyName := ClientCert, ClientKey
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if role == RoleNode {
		certName, keyName = ServerCert, ServerKey
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		addHosts(tmpl, append([]string{name, "localhost", "127.0.0.1", "::1"}, o.Hosts...))
	}
	cert, der, err := sign(tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	kf, err := keyFile(keyName, key)
	if err != nil {
		return nil, err
	}
	if !o.Force {
		for _, f := range []string{CACert, certName, keyName} {
			if err := refuseExisting(filepath.Join(outDir, f)); err != nil {
				return nil, err
			}
		}
	}
	// The CA keeps a copy first, so that no certificate it signed is
	// beyond 'certs revoke'.
	if err := recordIssued(caDir, cert, id); err != nil {
		return nil, err
	}
	err = writeFiles(outDir, o.Force, certFile(CACert, caCert.Raw), certFile(certName, der), kf)
	if err != nil {
		return nil, err
	}
	return cert, nil
}

// addHosts puts each host into the certificate as an IP address or a DNS
// name, once.
func addHosts(c *x509.Certificate, hosts []string) {
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			c.IPAddresses = append(c.IPAddresses, ip)
		} else {
			c.DNSNames = append(c.DNSNames, h)
		}
	}
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	return k, nil
}

// template is the common part of every certificate: a random serial,
// the validity, and the identity in the subject and the URI SAN.
func template(id Identity, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization:       []string{"netraid"},
			OrganizationalUnit: []string{"volume " + id.Volume},
		},
		NotBefore: now.Add(-backdate),
		NotAfter:  now.Add(validity),
		URIs:      []*url.URL{id.URI()},
	}, nil
}

// sign creates the certificate and parses it back.
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, []byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: sign certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: parse new certificate: %w", err)
	}
	return c, der, nil
}
