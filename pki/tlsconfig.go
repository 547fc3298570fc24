package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// ServerOptions shape the export's TLS configuration.
type ServerOptions struct {
	// AllowNodeClients accepts a node certificate of the volume as an
	// NBD client's. By default only client certificates ('certs client')
	// open the export: a node's key, kept on a node for the replication
	// link, is not also a key to the volume's clients' door.
	AllowNodeClients bool
}

// ServerTLS is the configuration of a node's NBD export, from a node
// directory: the node's certificate, and a client certificate required
// from every client, signed by the directory's CA, for the node's volume
// and not revoked.
func ServerTLS(dir string, o ServerOptions) (*tls.Config, error) {
	m, err := loadLeaf(dir, ServerCert, ServerKey, RoleNode)
	if err != nil {
		return nil, err
	}
	role := RoleClient
	if o.AllowNodeClients {
		role = ""
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.pair},
		ClientCAs:    m.roots,
		// NBD connections live long: resumption saves nothing, and
		// without it every connection shows a certificate checked now.
		SessionTicketsDisabled: true,
		// Any certificate is asked for, and VerifyConnection verifies it
		// (chain, usage, volume, role, revocation), so that a refusal
		// says why; the client's proof that it holds the key is checked
		// after it.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := m.checkPeer(cs.PeerCertificates, role, x509.ExtKeyUsageClientAuth)
			if errors.Is(err, ErrWrongRole) && id.Role == RoleNode {
				err = fmt.Errorf("%w; a node's certificate opens the export only where the operator allows it (serve --tls-allow-node-clients)", err)
			}
			return err
		},
	}, nil
}

// ClientTLS is the configuration of a netraid NBD client, from a client
// directory: the client's certificate, and the server's verified against
// the directory's CA and revocation list, its host name and its volume.
// The caller (nbd.Dial) sets ServerName.
func ClientTLS(dir string) (*tls.Config, error) {
	m, err := loadLeaf(dir, ClientCert, ClientKey, RoleClient)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.pair},
		RootCAs:      m.roots,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := m.checkPeer(cs.PeerCertificates, RoleNode, x509.ExtKeyUsageServerAuth)
			return err
		},
	}, nil
}

// PeerTLS is the configuration of both ends of the replication link,
// from a node directory. Each side presents its node certificate and
// requires the other's: signed by the directory's CA, a node's (not a
// client's), for volume, and not revoked. The peer's address is not
// checked against its certificate: nodes are named by their volume, not
// their host.
// It fails if the directory's own certificate is not a node's of volume.
func PeerTLS(dir, volume string) (*tls.Config, error) { return PeerTLSFor(dir, volume, "") }

// PeerTLSFor is PeerTLS pinned to one peer: with peer not empty, the
// other's certificate must be that node's (a third node's certificate of
// the same volume is refused).
func PeerTLSFor(dir, volume, peer string) (*tls.Config, error) {
	m, err := loadLeaf(dir, ServerCert, ServerKey, RoleNode)
	if err != nil {
		return nil, err
	}
	if m.id.Volume != volume {
		return nil, fmt.Errorf("%w: %s is for volume %q, this node serves volume %q",
			ErrWrongVolume, filepath.Join(dir, ServerCert), m.id.Volume, volume)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.pair},
		RootCAs:      m.roots,
		ClientCAs:    m.roots,
		ClientAuth:   tls.RequireAnyClientCert,
		// As for the export: every connection checks a certificate now.
		SessionTicketsDisabled: true,
		// The host name is not what identifies a peer: VerifyConnection
		// verifies the chain, the usages and the volume instead, on
		// both sides.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := m.checkPeer(cs.PeerCertificates, RoleNode, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
			if err == nil && peer != "" && id.Name != peer {
				return fmt.Errorf("%w: the certificate is node %q's, and this node's peer is %q (--peer-name)", ErrWrongPeer, id.Name, peer)
			}
			return err
		},
	}, nil
}

// ReadIdentity reads the identity of the certificate in a PEM file.
func ReadIdentity(path string) (Identity, error) {
	c, err := readCert(path)
	if err != nil {
		return Identity{}, err
	}
	id, err := IdentityOf(c)
	if err != nil {
		return Identity{}, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// leaf is a directory's own certificate and key, its identity, its CA
// and its revocation list.
type leaf struct {
	dir   string
	pair  tls.Certificate
	id    Identity
	roots *x509.CertPool
	rev   *Revocations
}

// loadLeaf loads a directory's CA certificate, revocation list and its
// own certificate and key, and checks that the certificate is current,
// has the role, was signed by that CA and is not revoked.
func loadLeaf(dir, certName, keyName string, role Role) (*leaf, error) {
	ca, err := readCert(filepath.Join(dir, CACert))
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, certName), filepath.Join(dir, keyName))
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", dir, err)
	}
	cert := pair.Leaf
	id, err := IdentityOf(cert)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, certName), err)
	}
	if id.Role != role {
		return nil, fmt.Errorf("%w: %s is a %s certificate, not a %s's", ErrWrongRole, filepath.Join(dir, certName), id.Role, role)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("pki: %s does not verify against %s: %w", filepath.Join(dir, certName), filepath.Join(dir, CACert), err)
	}
	rev, err := OpenRevocations(dir)
	if err != nil {
		return nil, err
	}
	if err := rev.Check(cert); err != nil {
		return nil, fmt.Errorf("%w: issue a new one for %s", err, filepath.Join(dir, certName))
	}
	return &leaf{dir: dir, pair: pair, id: id, roots: roots, rev: rev}, nil
}

// checkPeer verifies the other side's chain against the CA, and that it
// names this leaf's volume, has the role if one is given, allows every
// usage and is not revoked. The error says what is wrong with which
// certificate.
func (m *leaf) checkPeer(chain []*x509.Certificate, role Role, usages ...x509.ExtKeyUsage) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, errors.New("pki: the peer presented no certificate")
	}
	cert := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	verify := func(u x509.ExtKeyUsage) error {
		_, err := cert.Verify(x509.VerifyOptions{
			Roots: m.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u}, CurrentTime: time.Now(),
		})
		return err
	}
	if err := verify(x509.ExtKeyUsageAny); err != nil {
		return Identity{}, fmt.Errorf("pki: peer certificate %q (issuer %q) is not trusted by %s: %w",
			cert.Subject.CommonName, cert.Issuer.CommonName, filepath.Join(m.dir, CACert), err)
	}
	id, err := IdentityOf(cert)
	switch {
	case err != nil:
		return Identity{}, fmt.Errorf("pki: peer certificate %q: %w", cert.Subject.CommonName, err)
	case id.Volume != m.id.Volume:
		return id, fmt.Errorf("%w: the peer's certificate is for volume %q, this one is for volume %q", ErrWrongVolume, id.Volume, m.id.Volume)
	case role != "" && id.Role != role:
		return id, fmt.Errorf("%w: the peer presented the certificate of %s, not a %s's", ErrWrongRole, id, role)
	}
	for _, u := range usages {
		if err := verify(u); err != nil {
			return id, fmt.Errorf("pki: peer certificate of %s: %w", id, err)
		}
	}
	if err := m.rev.Check(cert); err != nil {
		return id, err
	}
	return id, nil
}
