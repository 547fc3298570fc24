package repl

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/internal/simnet"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/nbd"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// handler accepts one hello (refusing the others with its state) and
// takes control messages only from the connection it accepted.
type handler struct {
	mu       sync.Mutex
	accepted uint64
	refuse   bool
	dev      blockdev.Device
	msgs     []MsgKind
}

func (h *handler) Hello(_ context.Context, c nbd.ConnInfo, peer Hello) (Hello, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	me := Hello{Proto: Proto, Name: "vol", Role: meta.Secondary, DiskState: meta.UpToDate}
	if h.refuse {
		me.Verdict = SplitBrain
		return Hello{}, &Refusal{Msg: "split brain", Peer: &me}
	}
	h.accepted = c.ID
	me.Verdict = NoSync
	return me, nil
}

func (h *handler) Attach(_ context.Context, c nbd.ConnInfo) (blockdev.Device, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.ID != h.accepted {
		return nil, errors.New("not the link")
	}
	return h.dev, nil
}

func (h *handler) Control(_ context.Context, c nbd.ConnInfo, m Message) (Hello, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.ID != h.accepted {
		return Hello{}, errors.New("not the link")
	}
	h.msgs = append(h.msgs, m.Kind)
	return Hello{Proto: Proto, Name: "vol", DiskState: meta.Inconsistent}, nil
}

// serve starts a replication server on host b of a simulated network and
// returns a dialer from host a.
func serve(t *testing.T, h *handler) func(ctx context.Context) (*Link, error) {
	t.Helper()
	n := simnet.New(simnet.Options{})
	ln, err := n.Host("b").Listen("tcp", ":7789")
	if err != nil {
		t.Fatal(err)
	}
	h.dev = blockdev.NewMem(1 << 20)
	srv, err := NewServer(h, ServerOptions{Dev: h.dev, IdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return func(ctx context.Context) (*Link, error) {
		c, err := n.Host("a").Dial(ctx, "tcp", "b:7789")
		if err != nil {
			return nil, err
		}
		return Connect(ctx, c, DialOptions{Hello: Hello{Proto: Proto, Name: "vol", Role: meta.Primary}, Timeout: 5 * time.Second})
	}
}

func TestLinkAccepted(t *testing.T) {
	h := &handler{}
	dial := serve(t, h)
	l, err := dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Peer.Verdict != NoSync || l.Peer.Name != "vol" {
		t.Fatalf("the secondary's hello: %+v", l.Peer)
	}
	got, err := l.Send(Message{Kind: MsgSyncStart, Total: 1})
	if err != nil || got.DiskState != meta.Inconsistent {
		t.Fatalf("sync start: %+v, %v", got, err)
	}
	if _, err := l.WriteAt([]byte("data"), 512); err != nil {
		t.Fatalf("a write on the link: %v", err)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	h.dev.ReadAt(b, 512)
	if string(b) != "data" {
		t.Fatalf("the secondary's device holds %q", b)
	}
}

func TestLinkRefused(t *testing.T) {
	dial := serve(t, &handler{refuse: true})
	_, err := dial(context.Background())
	var r *Refusal
	if !errors.As(err, &r) || r.Msg != "split brain" || r.Peer == nil || r.Peer.Verdict != SplitBrain {
		t.Fatalf("a refused meeting: %v (%+v)", err, r)
	}
}

// TestOnlyTheLinkWrites: a second connection whose hello the handler
// accepted takes the link over; the first can no longer open the export
// or send messages.
func TestOnlyTheLinkWrites(t *testing.T) {
	h := &handler{}
	dial := serve(t, h)
	first, err := dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := first.Send(Message{Kind: MsgPing}); err == nil {
		t.Fatal("a superseded connection's message was taken")
	}
	if _, err := second.Send(Message{Kind: MsgPing}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.msgs) != 1 {
		t.Fatalf("messages handled: %v", h.msgs)
	}
}
