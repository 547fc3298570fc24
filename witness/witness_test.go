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

// world is a witness the behaviours run against: etcd, or a Memory.
type world interface {
	// client returns a client of the volume "vol" for node.
	client(t *testing.T, node string) *Client
	// expire ends a leadership's lease behind its session's back, as
	// its expiry would, and waits until the session has noticed.
	expire(t *testing.T, l *Leadership)
	// stop makes the witness answer nothing; cont ends that.
	stop(t *testing.T)
	cont(t *testing.T)
	// cut cuts one node from the witness, heal ends that; nil if the
	// world cannot.
	cutter() (cut, heal func(node string))
	// failer makes one node's requests fail at once with an error;
	// nil if the world cannot.
	failer() func(node string, err error)
}

// behaviours run against every world: the semantics the node relies on.
var behaviours = []struct {
	name string
	run  func(t *testing.T, w world)
}{
	{"Election", testElection},
	{"RecordGuarded", testRecordGuarded},
	{"ClearKeepsNewerRecord", testClearKeepsNewerRecord},
	{"Unreachable", testUnreachable},
	{"Renewed", testRenewed},
	{"CloseHandsOver", testCloseHandsOver},
	{"CampaignCancelled", testCampaignCancelled},
	{"NewSessionAfterExpiry", testNewSessionAfterExpiry},
	{"Cut", testCut},
	{"Failing", testFailing},
}

func runAll(t *testing.T, mk func(t *testing.T) world) {
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) { b.run(t, mk(t)) })
	}
}

// TestEtcd runs the behaviours against a real etcd (skipped when etcd is
// not installed).
func TestEtcd(t *testing.T) {
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd is not installed (scripts/deps.sh installs etcd-server)")
	}
	runAll(t, func(t *testing.T) world { return &etcdWorld{e: startEtcd(t)} })
}

// TestMemory runs the behaviours against the in-memory witness.
func TestMemory(t *testing.T) {
	runAll(t, func(t *testing.T) world { return &memWorld{m: NewMemory()} })
}

type etcdWorld struct{ e *etcd }

func (w *etcdWorld) client(t *testing.T, node string) *Client {
	t.Helper()
	c, err := New(Options{Endpoints: []string{w.e.endpoint}, Volume: "vol", Node: node, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (w *etcdWorld) expire(t *testing.T, l *Leadership) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{w.e.endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Revoke(context.Background(), l.sess.(*etcdSession).s.Lease()); err != nil {
		t.Fatal(err)
	}
	waitDone(t, l)
}

func (w *etcdWorld) stop(t *testing.T) { w.e.cmd.Process.Signal(syscall.SIGSTOP) }
func (w *etcdWorld) cont(t *testing.T) { w.e.cmd.Process.Signal(syscall.SIGCONT) }
func (w *etcdWorld) cutter() (func(string), func(string)) {
	return nil, nil
}
func (w *etcdWorld) failer() func(string, error) { return nil }

type memWorld struct{ m *Memory }

func (w *memWorld) client(t *testing.T, node string) *Client {
	t.Helper()
	c, err := New(Options{Backend: w.m, Volume: "vol", Node: node, TTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (w *memWorld) expire(t *testing.T, l *Leadership) {
	t.Helper()
	w.m.Expire(l.c.o.Node)
	waitDone(t, l)
}

func (w *memWorld) stop(t *testing.T)                    { w.m.Stop() }
func (w *memWorld) cont(t *testing.T)                    { w.m.Start() }
func (w *memWorld) failer() func(string, error)          { return w.m.Fail }
func (w *memWorld) cutter() (func(string), func(string)) { return w.m.Cut, w.m.Heal }

func waitDone(t *testing.T, l *Leadership) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the session did not end after its lease ended")
	}
}

// campaign campaigns in the background; the leadership (nil on error)
// comes on the channel.
func campaign(t *testing.T, ctx context.Context, c *Client) <-chan *Leadership {
	won := make(chan *Leadership, 1)
	go func() {
		l, err := c.Campaign(ctx)
		if err != nil && ctx.Err() == nil {
			t.Error(err)
		}
		won <- l
	}()
	return won
}

func leader(t *testing.T, c *Client) Holder {
	t.Helper()
	h, err := c.Leader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testElection: the first to campaign wins, with a token; the other
// waits until it resigns, then wins with a larger token; Leader says who
// holds it.
func testElection(t *testing.T, w world) {
	a, b := w.client(t, "a"), w.client(t, "b")
	ctx := context.Background()
	if h := leader(t, b); h != (Holder{}) {
		t.Fatalf("Leader before any campaign = %+v, want none", h)
	}
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := leader(t, b); h.Node != "a" || h.Token != la.Token {
		t.Fatalf("Leader = %+v; want a with token %d", h, la.Token)
	}
	won := campaign(t, ctx, b)
	select {
	case <-won:
		t.Fatal("b won while a held the election")
	case <-time.After(300 * time.Millisecond):
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	lb := <-won
	if lb == nil || lb.Token <= la.Token {
		t.Fatalf("b's leadership %+v: its token is not larger than a's %d", lb, la.Token)
	}
	if h := leader(t, a); h.Node != "b" || h.Token != lb.Token {
		t.Fatalf("Leader = %+v; want b with token %d", h, lb.Token)
	}
	if lb.Key() == la.Key() {
		t.Fatalf("a and b hold the same key %q", lb.Key())
	}
}

// testRecordGuarded: only the holder of the election records a copy
// outdated; after its lease is gone its writes fail with ErrNotLeader,
// whatever it believes.
func testRecordGuarded(t *testing.T, w world) {
	a, b := w.client(t, "a"), w.client(t, "b")
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
	w.expire(t, la)
	lb, err := b.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := la.RecordOutdated(ctx, "b", 43); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a record by a node whose lease is gone: %v, want ErrNotLeader", err)
	}
	if err := la.ClearOutdated(ctx, r); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a clear by a node whose lease is gone: %v, want ErrNotLeader", err)
	}
	if r, err := b.Outdated(ctx, "b"); err != nil || r == nil || r.Generation != 42 {
		t.Fatalf("b's record after a's refused writes: %+v, %v; want generation 42", r, err)
	}
	if err := lb.ClearOutdated(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Outdated(ctx, "b"); err != nil || r != nil {
		t.Fatalf("b's record after the clear: %+v, %v", r, err)
	}
}

// testClearKeepsNewerRecord: a removal clears the record as it was read,
// never one made since. A primary reads its peer's record before the
// resync that supersedes it ends; if the link fails again at once, the
// new record may reach the witness before the removal, which must not
// erase it (explorer seed 117, fenced).
func testClearKeepsNewerRecord(t *testing.T, w world) {
	a := w.client(t, "a")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := la.RecordOutdated(ctx, "b", 42); err != nil {
		t.Fatal(err)
	}
	old, err := a.Outdated(ctx, "b")
	if err != nil || old == nil {
		t.Fatalf("b's record: %+v, %v", old, err)
	}
	if err := la.RecordOutdated(ctx, "b", 43); err != nil {
		t.Fatal(err)
	}
	if err := la.ClearOutdated(ctx, old); err != nil {
		t.Fatalf("removing a record changed since: %v, want no error (the guard held)", err)
	}
	now, err := a.Outdated(ctx, "b")
	if err != nil || now == nil || now.Generation != 43 {
		t.Fatalf("b's record after removing the one read before it: %+v, %v; want generation 43", now, err)
	}
	if err := la.ClearOutdated(ctx, now); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Outdated(ctx, "b"); err != nil || r != nil {
		t.Fatalf("b's record after removing it as read: %+v, %v; want none", r, err)
	}
}

// testUnreachable: with the witness stopped, requests fail within their
// time-out with ErrUnreachable, and a leadership's session ends after
// its TTL.
func testUnreachable(t *testing.T, w world) {
	a := w.client(t, "a")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.stop(t)
	defer w.cont(t)
	if err := la.RecordOutdated(ctx, "b", 1); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a record with the witness stopped: %v, want ErrUnreachable", err)
	}
	if _, err := a.Outdated(ctx, "b"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a read with the witness stopped: %v, want ErrUnreachable", err)
	}
	if _, err := a.Leader(ctx); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Leader with the witness stopped: %v, want ErrUnreachable", err)
	}
	if _, err := la.TimeLeft(ctx); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("TimeLeft with the witness stopped: %v, want ErrUnreachable", err)
	}
	waitDone(t, la)
}

// testRenewed: a session lives on while the witness answers: after
// three TTLs the leadership holds, its lease has time left, and its
// guarded writes go through.
func testRenewed(t *testing.T, w world) {
	a := w.client(t, "a")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A negative check: the session must not end while renewed.
	select {
	case <-la.Done():
		t.Fatal("the session ended while the witness answered")
	case <-time.After(3 * a.TTL()):
	}
	left, err := la.TimeLeft(ctx)
	if err != nil || left <= 0 || left > a.TTL() {
		t.Fatalf("TimeLeft = %v, %v; want in (0, %v]", left, err, a.TTL())
	}
	if err := la.RecordOutdated(ctx, "b", 7); err != nil {
		t.Fatal(err)
	}
	if h := leader(t, a); h.Node != "a" || h.Token != la.Token {
		t.Fatalf("Leader = %+v, want a with %d", h, la.Token)
	}
}

// testCloseHandsOver: closing the client revokes its lease: a waiting
// candidate wins, and the closed client's requests fail.
func testCloseHandsOver(t *testing.T, w world) {
	a, b := w.client(t, "a"), w.client(t, "b")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	won := campaign(t, ctx, b)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	lb := <-won
	if lb == nil || lb.Token <= la.Token {
		t.Fatalf("b's leadership %+v after a closed", lb)
	}
	select {
	case <-la.Done():
	default:
		t.Fatal("a's session did not end when a closed")
	}
	if _, err := a.Leader(ctx); err == nil {
		t.Fatal("a closed client answered")
	}
}

// testCampaignCancelled: a campaign whose context ends returns
// ErrUnreachable and takes its key away: it wins nothing later.
func testCampaignCancelled(t *testing.T, w world) {
	a, b := w.client(t, "a"), w.client(t, "b")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = b.Campaign(cctx)
	cancel()
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a campaign whose context ended: %v, want ErrUnreachable", err)
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if h := leader(t, a); h != (Holder{}) {
		t.Fatalf("Leader after a resigned = %+v; the cancelled campaign's key stayed", h)
	}
}

// testNewSessionAfterExpiry: a node whose lease expired campaigns on a
// new session and wins with a larger token; the old leadership stays
// dead.
func testNewSessionAfterExpiry(t *testing.T, w world) {
	a := w.client(t, "a")
	ctx := context.Background()
	l1, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.expire(t, l1)
	if h := leader(t, a); h != (Holder{}) {
		t.Fatalf("Leader after the lease expired = %+v, want none", h)
	}
	l2, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Token <= l1.Token || l2.Key() == l1.Key() {
		t.Fatalf("the new leadership (%s, %d) is not newer than the old (%s, %d)", l2.Key(), l2.Token, l1.Key(), l1.Token)
	}
	if err := l1.RecordOutdated(ctx, "b", 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a record under the expired leadership: %v, want ErrNotLeader", err)
	}
	select {
	case <-l2.Done():
		t.Fatal("the new session is done")
	default:
	}
}

// testCut: a node cut from the witness loses its session a TTL after
// its last renewal, the other node wins, and the cut node's requests
// fail with ErrUnreachable; healed, its guarded writes are refused.
func testCut(t *testing.T, w world) {
	cut, heal := w.cutter()
	if cut == nil {
		t.Skip("this witness cannot cut one node")
	}
	a, b := w.client(t, "a"), w.client(t, "b")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	won := campaign(t, ctx, b)
	cut("a")
	if err := la.RecordOutdated(ctx, "b", 1); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a record by a cut node: %v, want ErrUnreachable", err)
	}
	waitDone(t, la)
	lb := <-won
	if lb == nil || lb.Token <= la.Token {
		t.Fatalf("b's leadership %+v after a's lease expired", lb)
	}
	if err := lb.RecordOutdated(ctx, "a", 9); err != nil {
		t.Fatal(err)
	}
	heal("a")
	if err := la.RecordOutdated(ctx, "b", 2); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("a record by the healed old leader: %v, want ErrNotLeader", err)
	}
	if h := leader(t, a); h.Node != "b" {
		t.Fatalf("Leader seen by a after healing = %+v, want b", h)
	}
}

// testFailing: a node whose requests fail (the witness lost its quorum)
// gets the error at once, not ErrUnreachable nor ErrNotLeader, and
// loses its session a TTL after its last renewal.
func testFailing(t *testing.T, w world) {
	fail := w.failer()
	_, heal := w.cutter()
	if fail == nil {
		t.Skip("this witness cannot fail one node's requests")
	}
	a := w.client(t, "a")
	ctx := context.Background()
	la, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	noLeader := errors.New("etcdserver: no leader")
	fail("a", noLeader)
	err = la.RecordOutdated(ctx, "b", 1)
	if !errors.Is(err, noLeader) || errors.Is(err, ErrUnreachable) || errors.Is(err, ErrNotLeader) {
		t.Fatalf("a record while the witness fails: %v, want its error", err)
	}
	waitDone(t, la)
	heal("a")
	if _, err := a.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
}
