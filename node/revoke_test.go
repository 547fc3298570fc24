package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/pki"
)

// fakeConns is an export's connections, each with the certificate its
// client presented (nil: plaintext).
type fakeConns struct {
	mu     sync.Mutex
	conns  map[uint64]*x509.Certificate
	closed chan uint64
}

func (f *fakeConns) CloseWhere(match func(nbd.ConnInfo) bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for id, cert := range f.conns {
		ci := nbd.ConnInfo{ID: id}
		if cert != nil {
			ci.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
		}
		if match(ci) {
			delete(f.conns, id)
			f.closed <- id
			n++
		}
	}
	return n
}

func (f *fakeConns) open() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var l []uint64
	for id := range f.conns {
		l = append(l, id)
	}
	slices.Sort(l)
	return l
}

// TestWatchRevocations: the watcher closes the connections of a
// certificate once a list naming it is copied into the TLS directory,
// and no other; a broken list is reported once and closes nothing; the
// watcher stops with its context.
func TestWatchRevocations(t *testing.T) {
	setVar(t, &revokeInterval, 10*time.Millisecond)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if _, err := pki.InitCA(ca, pki.CAOptions{Volume: "vol"}); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(dir, "a")
	if _, err := pki.IssueNode(ca, node, "a", pki.IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	certs := map[string]*x509.Certificate{}
	for _, name := range []string{"alice", "bob"} {
		c, err := pki.IssueClient(ca, filepath.Join(dir, name), name, pki.IssueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		certs[name] = c
	}
	f := &fakeConns{
		conns:  map[uint64]*x509.Certificate{1: certs["alice"], 2: certs["bob"], 3: nil, 4: certs["alice"]},
		closed: make(chan uint64, 8),
	}
	log := &lockedWriter{w: &strings.Builder{}}
	n := &Node{cfg: Config{TLSDir: node}, log: slog.New(slog.NewTextHandler(log, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	n.closeRevoked(ctx, &wg, f)
	defer func() { cancel(); wg.Wait() }()

	// A broken list: reported, nothing closed.
	list := filepath.Join(node, pki.CRLFile)
	if err := os.WriteFile(list, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broken list reported", func() bool { return strings.Contains(log.String(), "revocation list unusable") })
	alice, err := pki.IssuedTo(ca, "alice", pki.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Revoke(ca, alice...); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(ca, pki.CRLFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got := []uint64{<-f.closed, <-f.closed}
	slices.Sort(got)
	if !slices.Equal(got, []uint64{1, 4}) || !slices.Equal(f.open(), []uint64{2, 3}) {
		t.Fatalf("closed %v, open %v; want alice's 1 and 4 closed, 2 and 3 open", got, f.open())
	}
	waitFor(t, "the closing logged", func() bool { return strings.Contains(log.String(), "closed the connections of revoked certificates") })
	out := log.String()
	if c := strings.Count(out, "revocation list unusable"); c != 1 || !strings.Contains(out, "usable again") || !strings.Contains(out, "alice") {
		t.Fatalf("log:\n%s", out)
	}
	cancel()
	wg.Wait()
}

// waitFor polls cond until it holds; the test's own time-out bounds it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
