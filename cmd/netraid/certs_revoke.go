package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/netraid/netraid/pki"
)

const revokeHelp = `
Put certificates on the revocation list of the CA in DIR, ca-crl.pem, a
list signed by the CA that only ever grows: every certificate the CA
issued to NAME (as a node or a client; --role picks one), and any
certificate file given with --cert.

The list takes effect where it is copied: into each node's --tls-dir as
ca-crl.pem (the export and the replication link refuse a listed
certificate at their next connection, and the export closes its open
connections, without a restart), and into client directories, whose
clients then refuse a revoked node. Revoking a node's certificate ends its
replication link: issue it a new one (certs issue NODE --force) first.`

func runCertsRevoke(e *env, args []string) error {
	fs := newFlags(e, "certs revoke", "NAME [--role node|client] [--ca DIR] | --cert FILE...", revokeHelp)
	dir := caFlag(fs)
	role := fs.String("role", "", "revoke only NAME's node or only its client certificates")
	files := fs.StringArray("cert", nil, "a certificate file to revoke (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("certs revoke takes one name")
	}
	if fs.NArg() == 0 && len(*files) == 0 {
		return usagef("give the NAME whose certificates to revoke, or --cert FILE")
	}
	if r := pki.Role(*role); r != "" && r != pki.RoleNode && r != pki.RoleClient {
		return usagef("--role is node or client, not %q", *role)
	}
	var certs []*x509.Certificate
	if fs.NArg() == 1 {
		l, err := revokeByName(*dir, fs.Arg(0), pki.Role(*role))
		if err != nil {
			return err
		}
		certs = l
	}
	for _, f := range *files {
		c, err := pki.ReadCert(f)
		if err != nil {
			return err
		}
		certs = append(certs, c)
	}
	crl, err := pki.Revoke(*dir, certs...)
	if err != nil {
		return err
	}
	for _, c := range certs {
		fmt.Fprintf(e.stdout, "revoked %s, serial %s, valid until %s\n", certName(c), c.SerialNumber.Text(16), day(c))
	}
	path := filepath.Join(*dir, pki.CRLFile)
	fmt.Fprintf(e.stdout, "revocation list %s: %d certificate(s), number %v\n", path, len(crl.RevokedCertificateEntries), crl.Number)
	fmt.Fprintf(e.stdout, "next: copy %s into every node's --tls-dir (and client directories) as %s; it takes effect there without a restart\n", path, pki.CRLFile)
	return nil
}

// revokeByName finds what the CA issued to name; a name that is both a
// node's and a client's needs --role.
func revokeByName(dir, name string, role pki.Role) ([]*x509.Certificate, error) {
	if err := pki.ValidName(name); err != nil {
		return nil, usagef("%v", err)
	}
	certs, err := pki.IssuedTo(dir, name, role)
	if errors.Is(err, pki.ErrNotIssued) {
		return nil, fmt.Errorf("%w (a certificate issued elsewhere: give its file with --cert)", err)
	}
	if err != nil {
		return nil, err
	}
	roles := map[pki.Role]bool{}
	for _, c := range certs {
		id, _ := pki.IdentityOf(c)
		roles[id.Role] = true
	}
	if len(roles) > 1 {
		return nil, usagef("%q names both a node and a client: give --role node or --role client", name)
	}
	return certs, nil
}

func certName(c *x509.Certificate) string {
	if id, err := pki.IdentityOf(c); err == nil {
		return id.String()
	}
	return strings.TrimSpace(fmt.Sprintf("%q", c.Subject.CommonName))
}
