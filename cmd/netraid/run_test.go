package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string // in stdout or stderr
	}{
		{nil, exitUsage, "Commands:"},
		{[]string{"--help"}, exitOK, "promote"},
		{[]string{"--version"}, exitOK, "netraid devel ("},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"create"}, exitUsage, "give at least one DISK"},
		{[]string{"create", "--chunk", "lots", "/dev/null"}, exitUsage, "bad --chunk"},
		{[]string{"serve"}, exitUsage, "member DISKs"},
		{[]string{"serve", "--peer", "10.0.0.2:7789", "/dev/null"}, exitUsage, "go together"},
		{[]string{"serve", "--metrics", "localhost", "/dev/null"}, exitUsage, "--metrics: metrics address \"localhost\": want HOST:PORT"},
		{[]string{"resync", "sideways"}, exitUsage, "unknown resync action"},
		{[]string{"disk", "replace", "/dev/a"}, exitUsage, "takes OLD and NEW"},
		{[]string{"status", "--bogus"}, exitUsage, "bogus"},
		{[]string{"promote", "--help"}, exitOK, "Usage: netraid promote"},
		{[]string{"status", "--control", "/nonexistent/ctl"}, exitFail, "is 'netraid serve' running"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("netraid %q: exit %d, output %q %q; want exit %d and %q", tt.args, code, out, errOut, tt.code, tt.want)
		}
	}
}

// TestServeRefusesWrongDisks: serve given a disk of another volume, or
// only some members, refuses with a message naming the disk and what to
// do, and writes nothing to any of them.
func TestServeRefusesWrongDisks(t *testing.T) {
	dir := t.TempDir()
	disk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 16<<20); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a0, a1, b0, blank := disk("a0"), disk("a1"), disk("b0"), disk("blank")
	if code, _, e := runCLI("create", "--name", "a", a0, a1); code != exitOK {
		t.Fatalf("create a: %s", e)
	}
	if code, _, e := runCLI("create", "--name", "b", b0); code != exitOK {
		t.Fatalf("create b: %s", e)
	}
	snapshot := func() map[string][]byte {
		m := map[string][]byte{}
		for _, p := range []string{a0, a1, b0, blank} {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m[p] = b
		}
		return m
	}
	before := snapshot()
	for _, tc := range []struct {
		disks []string
		want  string
	}{
		{[]string{a0, b0}, b0},
		{[]string{a0}, "missing"},
		{[]string{a0, a1, blank}, "not a netraid member"},
		{[]string{a0, a0}, "twice"},
	} {
		args := append([]string{"serve", "--control", filepath.Join(dir, "ctl"), "--listen", filepath.Join(dir, "sock")}, tc.disks...)
		code, _, errOut := runCLI(args...)
		if code != exitFail || !strings.Contains(errOut, tc.want) {
			t.Errorf("serve %v: exit %d, %q; want a refusal that says %q", tc.disks, code, errOut, tc.want)
		}
	}
	after := snapshot()
	for p, b := range before {
		if !bytes.Equal(b, after[p]) {
			t.Errorf("%s was written to by a refused serve", p)
		}
	}
}

// TestServeMetricsAddressInUse: a --metrics address that cannot be
// opened stops serve before it opens the volume, saying why.
func TestServeMetricsAddressInUse(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "d0")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 16<<20); err != nil {
		t.Fatal(err)
	}
	if code, _, e := runCLI("create", "--name", "v", disk); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	code, _, errOut := runCLI("serve", "--control", filepath.Join(dir, "ctl"), "--listen", filepath.Join(dir, "sock"),
		"--metrics", busy.Addr().String(), disk)
	if code != exitFail || !strings.Contains(errOut, "metrics: listen tcp "+busy.Addr().String()) || !strings.Contains(errOut, "address already in use") {
		t.Fatalf("serve with a busy --metrics address: exit %d, %q; want exit %d saying the address is in use", code, errOut, exitFail)
	}
}
