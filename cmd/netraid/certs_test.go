package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netraid/netraid/pki"
)

// TestCerts: the documented three commands make a CA and two node
// directories, a fourth a client directory, each in the layout TLS
// clients and 'serve --tls-dir' read; nothing is overwritten.
func TestCerts(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca")
	for _, args := range [][]string{
		{"certs", "init", "--volume", "vol", "--ca", ca},
		{"certs", "issue", "a", "--host", "10.0.0.1", "--ca", ca},
		{"certs", "issue", "b", "--host", "b.example", "--ca", ca},
		{"certs", "client", "alice", "--ca", ca},
	} {
		if code, out, errOut := runCLI(args...); code != exitOK {
			t.Fatalf("netraid %q: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	for dir, want := range map[string]pki.Identity{
		filepath.Join(ca, "nodes", "a", pki.ServerCert):       {Volume: "vol", Role: pki.RoleNode, Name: "a"},
		filepath.Join(ca, "nodes", "b", pki.ServerCert):       {Volume: "vol", Role: pki.RoleNode, Name: "b"},
		filepath.Join(ca, "clients", "alice", pki.ClientCert): {Volume: "vol", Role: pki.RoleClient, Name: "alice"},
	} {
		if id, err := pki.ReadIdentity(dir); err != nil || id != want {
			t.Errorf("%s: %+v, %v; want %+v", dir, id, err, want)
		}
	}
	if _, err := pki.PeerTLS(filepath.Join(ca, "nodes", "a"), "vol"); err != nil {
		t.Errorf("node a's directory does not load: %v", err)
	}
	if _, err := pki.ClientTLS(filepath.Join(ca, "clients", "alice")); err != nil {
		t.Errorf("alice's directory does not load: %v", err)
	}
	key := filepath.Join(ca, "nodes", "a", pki.ServerKey)
	before, _ := os.ReadFile(key)
	code, _, errOut := runCLI("certs", "issue", "a", "--ca", ca)
	if after, _ := os.ReadFile(key); code != exitFail || !strings.Contains(errOut, "--force") || string(after) != string(before) {
		t.Errorf("issuing over node a: exit %d %q, key changed %v", code, errOut, string(after) != string(before))
	}
}

func TestCertsUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"certs"}, exitUsage, "certs needs init"},
		{[]string{"certs", "--help"}, exitOK, "three commands"},
		{[]string{"certs", "renew"}, exitUsage, `unknown certs action "renew"`},
		{[]string{"certs", "init"}, exitUsage, "--volume"},
		{[]string{"certs", "init", "--volume", "v", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"certs", "issue"}, exitUsage, "takes one name"},
		{[]string{"certs", "issue", "a/b"}, exitUsage, "invalid name"},
		{[]string{"certs", "client", "x", "--host", "h"}, exitUsage, "unknown flag: --host"},
		{[]string{"certs", "issue", "a", "--days", "0"}, exitUsage, "--days"},
		{[]string{"serve", "--tls-required", "/dev/null"}, exitUsage, "--tls-required needs --tls-dir"},
		{[]string{"serve", "--max-connections", "0", "/dev/null"}, exitUsage, "--max-connections"},
		{[]string{"serve", "--memory-budget", "lots", "/dev/null"}, exitUsage, "bad --memory-budget"},
		{[]string{"serve", "--memory-budget", "16MiB", "/dev/null"}, exitUsage, "at least 80 MiB for --max-connections 256"},
	} {
		code, out, errOut := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("netraid %q: exit %d, output %q %q; want exit %d and %q", tt.args, code, out, errOut, tt.code, tt.want)
		}
	}
}
