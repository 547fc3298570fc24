package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/netraid/netraid/meta"
)

// Role is what a certificate is for.
type Role string

// Roles.
const (
	RoleNode   Role = "node"
	RoleClient Role = "client"
)

// Sentinel errors. Callers test with errors.Is.
var (
	// ErrNoIdentity: the certificate carries no netraid identity (it was
	// not made by this package).
	ErrNoIdentity = errors.New("pki: certificate has no netraid identity")
	// ErrWrongVolume: the certificate is for another volume.
	ErrWrongVolume = errors.New("pki: certificate is for another volume")
	// ErrWrongPeer: a node's certificate of the volume, but not of the
	// node configured as the peer.
	ErrWrongPeer = errors.New("pki: certificate is another node's")
	// ErrWrongRole: a client certificate where a node's is needed.
	ErrWrongRole = errors.New("pki: certificate has the wrong role")
	// ErrExists: a file would be overwritten.
	ErrExists = errors.New("pki: file already exists")
	// ErrName: a node or client name that cannot be used.
	ErrName = errors.New("pki: invalid name")
)

// Identity is who a netraid certificate names.
type Identity struct {
	Volume string
	Role   Role
	Name   string // the node or client; empty for a CA
}

const uriScheme = "netraid"

// URI is the identity as it appears in the certificate's URI SAN.
func (id Identity) URI() *url.URL {
	p := "/" + id.Volume
	if id.Role != "" {
		p += "/" + string(id.Role) + "/" + id.Name
	}
	return &url.URL{Scheme: uriScheme, Host: "volume", Path: p}
}

func (id Identity) String() string {
	if id.Role == "" {
		return fmt.Sprintf("CA of volume %q", id.Volume)
	}
	return fmt.Sprintf("%s %q of volume %q", id.Role, id.Name, id.Volume)
}

// IdentityOf reads the netraid identity of a certificate.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme || u.Host != "volume" {
			continue
		}
		return parseIdentity(u)
	}
	return Identity{}, fmt.Errorf("%w (subject %q)", ErrNoIdentity, cert.Subject.String())
}

func parseIdentity(u *url.URL) (Identity, error) {
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	var id Identity
	switch len(parts) {
	case 1:
		id.Volume = parts[0]
	case 3:
		id = Identity{Volume: parts[0], Role: Role(parts[1]), Name: parts[2]}
		if id.Role != RoleNode && id.Role != RoleClient {
			return Identity{}, fmt.Errorf("%w: unknown role in %s", ErrNoIdentity, u)
		}
		if err := ValidName(id.Name); err != nil {
			return Identity{}, fmt.Errorf("%w: %s: %w", ErrNoIdentity, u, err)
		}
	default:
		return Identity{}, fmt.Errorf("%w: malformed %s", ErrNoIdentity, u)
	}
	if err := meta.ValidName(id.Volume); err != nil {
		return Identity{}, fmt.Errorf("%w: %s: %w", ErrNoIdentity, u, err)
	}
	return id, nil
}

// ValidName reports whether name can name a node or a client: the rules
// of a volume name (1 to 64 ASCII letters, digits, '.', '_' and '-'), so
// that every name in a certificate's URI is plain.
func ValidName(name string) error {
	if err := meta.ValidName(name); err != nil {
		return fmt.Errorf("%w: %v", ErrName, err)
	}
	return nil
}
