package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/netraid/netraid/pki"
	"github.com/spf13/pflag"
)

func init() {
	register(command{name: "certs", summary: "make a volume's CA and its node and client certificates (TLS)", run: runCerts, actions: []string{"init", "issue", "client"}})
}

const certsHelp = `
Make the certificates that secure a volume with TLS: a CA for the volume,
a certificate per node (the NBD export and both ends of the replication
link) and per NBD client. A secure pair is three commands, run where the
CA key is kept:

  netraid certs init --volume VOL             the CA, in --ca DIR
  netraid certs issue a --host 10.0.0.1       node a, in DIR/nodes/a
  netraid certs issue b --host 10.0.0.2       node b, in DIR/nodes/b

then copy each node's directory to it and serve with --tls-dir. A client
certificate ('certs client NAME') is a directory in libnbd's layout, for
nbdinfo/nbdcopy/nbdfuse (nbds://HOST/VOL?tls-certificates=DIR) and qemu
(--object tls-creds-x509,dir=DIR,endpoint=client).

  init --volume VOL     make the CA: ca-cert.pem, ca-key.pem
  issue NODE            a node certificate: server-cert.pem, server-key.pem
  client NAME           a client certificate: client-cert.pem, client-key.pem
  revoke NAME           put NAME's certificates on the CA's revocation list,
                        ca-crl.pem, to copy into every node's --tls-dir

Keys are ECDSA P-256, written 0600; nothing is overwritten without --force.`

func runCerts(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs := newFlags(e, "certs", "init|issue NODE|client NAME|revoke NAME [FLAGS]", certsHelp)
		if err := parse(fs, args); err != nil {
			return err
		}
		return usagef("certs needs init, issue NODE, client NAME or revoke NAME")
	}
	switch args[0] {
	case "init":
		return runCertsInit(e, args[1:])
	case "issue":
		return runCertsIssue(e, pki.RoleNode, args[1:])
	case "client":
		return runCertsIssue(e, pki.RoleClient, args[1:])
	case "revoke":
		return runCertsRevoke(e, args[1:])
	}
	return usagef("unknown certs action %q", args[0])
}

func caFlag(fs *pflag.FlagSet) *string {
	return fs.String("ca", "netraid-ca", "the CA directory")
}

func runCertsInit(e *env, args []string) error {
	fs := newFlags(e, "certs init", "--volume VOL [--ca DIR]", `
Make a certificate authority for a volume in DIR: ca-cert.pem, which every
node and client gets a copy of, and ca-key.pem, which signs certificates
and stays here (keep it off the nodes if you can).`)
	volume := fs.String("volume", "", "the volume's name, as given to 'netraid create --name'")
	dir := caFlag(fs)
	days := fs.Int("days", int(pki.DefaultCAValidity/(24*time.Hour)), "validity in days")
	force := fs.Bool("force", false, "replace an existing CA (every certificate it signed stops being trusted)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *volume == "" {
		return usagef("give the volume's name with --volume")
	}
	if *days < 1 {
		return usagef("--days must be at least 1")
	}
	cert, err := pki.InitCA(*dir, pki.CAOptions{Volume: *volume, Validity: time.Duration(*days) * 24 * time.Hour, Force: *force})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "CA for volume %s in %s: %s (%s), %s, valid until %s\n",
		*volume, *dir, pki.CACert, cert.Subject.CommonName, pki.CAKey, day(cert))
	fmt.Fprintf(e.stdout, "next: 'netraid certs issue NODE --host ADDRESS --ca %s' for each node\n", *dir)
	return nil
}

func runCertsIssue(e *env, role pki.Role, args []string) error {
	name, files := "certs issue", "server-cert.pem and server-key.pem"
	usage, help := "NODE [--host HOST]... [--ca DIR] [--out DIR]", `
Make a node's certificate, signed by the CA: it identifies the node to NBD
clients and to its peer on the replication link. The node's name,
localhost, 127.0.0.1 and ::1 are always among the host names NBD clients
may check; add the addresses clients use to reach the export with --host.`
	if role == pki.RoleClient {
		name, files = "certs client", "client-cert.pem and client-key.pem"
		usage, help = "NAME [--ca DIR] [--out DIR]", `
Make an NBD client's certificate, signed by the CA, in a directory laid
out as libnbd and qemu expect (ca-cert.pem, client-cert.pem,
client-key.pem).`
	}
	fs := newFlags(e, name, usage, help)
	dir := caFlag(fs)
	out := fs.String("out", "", "where to write it (default: the CA directory's nodes/NAME or clients/NAME)")
	var hosts *[]string
	if role == pki.RoleNode {
		hosts = fs.StringArray("host", nil, "a DNS name or IP address the node is reached at (repeatable)")
	}
	volume := fs.String("volume", "", "the volume (default: the CA's)")
	days := fs.Int("days", int(pki.DefaultCertValidity/(24*time.Hour)), "validity in days (never past the CA's)")
	force := fs.Bool("force", false, "replace existing files in the output directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("%s takes one name", name)
	}
	if *days < 1 {
		return usagef("--days must be at least 1")
	}
	who := fs.Arg(0)
	if err := pki.ValidName(who); err != nil {
		return usagef("%v", err)
	}
	if *out == "" {
		*out = filepath.Join(*dir, string(role)+"s", who)
	}
	o := pki.IssueOptions{Volume: *volume, Validity: time.Duration(*days) * 24 * time.Hour, Force: *force}
	issue := pki.IssueClient
	if hosts != nil {
		o.Hosts, issue = *hosts, pki.IssueNode
	}
	cert, err := issue(*dir, *out, who, o)
	if err != nil {
		return err
	}
	id, err := pki.IdentityOf(cert)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s in %s: %s, valid until %s\n", id, *out, files, day(cert))
	if role == pki.RoleNode {
		fmt.Fprintf(e.stdout, "hosts: %s\n", strings.Join(certHosts(cert), ", "))
		fmt.Fprintf(e.stdout, "next: copy %s to node %s and run 'netraid serve --tls-dir DIR ...' there\n", *out, who)
		return nil
	}
	fmt.Fprintf(e.stdout, "use: nbdinfo 'nbds://HOST/%s?tls-certificates=%s'\n", id.Volume, *out)
	fmt.Fprintf(e.stdout, "     qemu-img info --object tls-creds-x509,id=tls0,dir=%s,endpoint=client \\\n", *out)
	fmt.Fprintf(e.stdout, "       --image-opts driver=nbd,server.type=inet,server.host=HOST,server.port=10809,export=%s,tls-creds=tls0\n", id.Volume)
	return nil
}

func certHosts(c *x509.Certificate) []string {
	l := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		l = append(l, ip.String())
	}
	return l
}

func day(c *x509.Certificate) string { return c.NotAfter.UTC().Format(time.DateOnly) }
