package witness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcd is one etcd process on loopback, started by the test.
type etcd struct {
	endpoint string
	cmd      *exec.Cmd
}

// startEtcd starts Debian's etcd on free loopback ports with its data on
// a temporary directory, and waits until it answers. It skips the test
// when etcd is not installed ('make test' installs it).
func startEtcd(t *testing.T) *etcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (scripts/deps.sh installs etcd-server)")
	}
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", port()), fmt.Sprintf("http://127.0.0.1:%d", port())
	dir := t.TempDir()
	cmd := exec.Command(bin, "--name", "w", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "w="+peer, "--heartbeat-interval", "50", "--election-timeout", "500")
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &etcd{endpoint: client, cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return e
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("etcd did not answer within 30s: %v\n%s", err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newClient(t *testing.T, e *etcd, node string) *Client {
	t.Helper()
	c, err := New(Options{Endpoints: []string{e.endpoint}, Volume: "vol", Node: node, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestElection: the first to campaign wins, with a token; the other waits
// until it resigns, then wins with a larger token; Leader says who holds
// it.
func TestElection(t *testing.T) {
	e := startEtcd(t)
	a, b := newClient(t, e, "a"), newClient(t, e, "b")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := b.Leader(ctx); err != nil || h.Node != "a" || h.Token != la.Token {
		t.Fatalf("Leader = %+v, %v; want a with token %d", h, err, la.Token)
	}
	won := make(chan *Leadership, 1)
	go func() {
		lb, err := b.Campaign(ctx)
		if err != nil {
			t.Error(err)
		}
		won <- lb
	}()
	select {
	case <-won:
		t.Fatal("b won while a held the election")
	case <-time.After(300 * time.Millisecond):
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	lb := <-won
	if lb.Token <= la.Token {
		t.Fatalf("b's token %d is not larger than a's %d", lb.Token, la.Token)
	}
}

// TestRecordGuarded: only the holder of the election records a copy
// outdated; after its lease is gone its writes fail with ErrNotLeader,
// whatever it believes.
func TestRecordGuarded(t *testing.T) {
	e := startEtcd(t)
	a, b := newClient(t, e, "a"), newClient(t, e, "b")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := la.RecordOutdated(ctx, "b", 42); err != nil {
		t.Fatal(err)
	}
	r, err := b.Outdated(ctx, "b")
	if err != nil || r == nil || r.Generation != 42 || r.By != "a" || r.Token != la.Token {
		t.Fatalf("b's record: %+v, %v", r, err)
	}
	if r, err := b.Outdated(ctx, "a"); err != nil || r != nil {
		t.Fatalf("a's record: %+v, %v; want none", r, err)
	}
	// a's lease goes (as when it is partitioned from etcd past its TTL);
	// b wins; a's old leadership can write nothing.
	revoke(t, e, la)
	lb, err := b.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := la.RecordOutdated(ctx, "b", 43); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a record by a node whose lease is gone: %v, want ErrNotLeader", err)
	}
	if err := la.ClearOutdated(ctx, "b"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a clear by a node whose lease is gone: %v, want ErrNotLeader", err)
	}
	if err := lb.ClearOutdated(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Outdated(ctx, "b"); err != nil || r != nil {
		t.Fatalf("b's record after the clear: %+v, %v", r, err)
	}
}

// revoke revokes a leadership's lease behind its back, as its expiry
// would.
func revoke(t *testing.T, e *etcd, l *Leadership) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Revoke(context.Background(), l.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end after its lease was revoked")
	}
}

// TestUnreachable: with etcd stopped, requests fail within their time-out
// with ErrUnreachable, and a leadership's session ends after its TTL.
func TestUnreachable(t *testing.T) {
	e := startEtcd(t)
	a := newClient(t, e, "a")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.cmd.Process.Signal(syscall.SIGSTOP)
	if err := la.RecordOutdated(ctx, "b", 1); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a record with etcd stopped: %v, want ErrUnreachable", err)
	}
	if _, err := a.Outdated(ctx, "b"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a read with etcd stopped: %v, want ErrUnreachable", err)
	}
	select {
	case <-la.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end with etcd stopped")
	}
}
