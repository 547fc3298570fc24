package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testWait bounds every wait in these tests; nothing is expected to take
// more than a fraction of it.
const testWait = 20 * time.Second

// testServer is a Server serving one listener, stopped in t.Cleanup.
type testServer struct {
	*Server
	network, addr string
	serveErr      chan error
}

// startServer serves exports over a unix socket in t.TempDir(), or TCP on
// 127.0.0.1 if network is "tcp".
func startServer(t testing.TB, network string, o ServerOptions, exports ...Export) *testServer {
	t.Helper()
	s := NewServer(o)
	for _, e := range exports {
		if err := s.AddExport(e); err != nil {
			t.Fatalf("AddExport(%q): %v", e.Name, err)
		}
	}
	addr := filepath.Join(t.TempDir(), "nbd.sock")
	if network == "tcp" {
		addr = "127.0.0.1:0"
	} else {
		network = "unix"
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ts := &testServer{Server: s, network: network, addr: l.Addr().String(), serveErr: make(chan error, 1)}
	go func() { ts.serveErr <- s.Serve(context.Background(), l) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down (again, harmlessly) and waits for Serve.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil && !errors.Is(err, blockdev.ErrClosed) {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-ts.serveErr:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.serveErr <- nil // a second stop finds it too
	case <-time.After(testWait):
		t.Fatalf("Serve did not return after Shutdown")
	}
}

// dial opens a client on the test server, closed in t.Cleanup.
func (ts *testServer) dial(t testing.TB, o ClientOptions) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := Dial(ctx, ts.network, ts.addr, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds, failing the test after testWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	devtest.WaitWithin(t, testWait, what, cond)
}

// raw is a hand-driven client connection for feeding the server bad input.
type raw struct {
	t  *testing.T
	nc net.Conn
}

func (ts *testServer) raw(t *testing.T) *raw {
	t.Helper()
	nc, err := net.Dial(ts.network, ts.addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	nc.SetDeadline(time.Now().Add(testWait))
	t.Cleanup(func() { nc.Close() })
	return &raw{t: t, nc: nc}
}

func (r *raw) write(b ...[]byte) {
	r.t.Helper()
	for _, p := range b {
		if len(p) == 0 {
			continue
		}
		// Each step is bounded on its own: a deadline set once at the
		// dial bounded the whole test, which a loaded machine overran.
		r.nc.SetWriteDeadline(time.Now().Add(testWait))
		if _, err := r.nc.Write(p); err != nil {
			r.t.Fatalf("raw write: %v", err)
		}
	}
}

func (r *raw) read(n int) []byte {
	r.t.Helper()
	b := make([]byte, n)
	r.nc.SetReadDeadline(time.Now().Add(testWait))
	if _, err := io.ReadFull(r.nc, b); err != nil {
		r.t.Fatalf("raw read of %d bytes: %v", n, err)
	}
	return b
}

// expectClosed checks that the server closes the connection.
func (r *raw) expectClosed() {
	r.t.Helper()
	var b [64]byte
	for {
		_, err := r.nc.Read(b[:])
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			r.t.Fatalf("expected the server to close the connection, got %v", err)
		}
		return
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// greet reads the server greeting and sends client flags.
func (r *raw) greet(flags uint32) {
	r.t.Helper()
	g := r.read(18)
	if binary.BigEndian.Uint64(g) != magicNBD || binary.BigEndian.Uint64(g[8:]) != magicOpt {
		r.t.Fatalf("bad greeting % x", g)
	}
	if f := binary.BigEndian.Uint16(g[16:]); f != flagFixedNewstyle|flagNoZeroes {
		r.t.Fatalf("handshake flags %#x", f)
	}
	r.write(binary.BigEndian.AppendUint32(nil, flags))
}

func (r *raw) option(opt Option, data []byte) {
	r.t.Helper()
	h := make([]byte, optHeaderSize)
	putOptHeader(h, opt, uint32(len(data)))
	r.write(h, data)
}

// reply reads one option reply to opt.
func (r *raw) reply(opt Option) (Reply, []byte) {
	r.t.Helper()
	h := r.read(optReplyHeaderSize)
	if binary.BigEndian.Uint64(h) != magicOptReply {
		r.t.Fatalf("bad option reply magic % x", h)
	}
	if got := Option(binary.BigEndian.Uint32(h[8:])); got != opt {
		r.t.Fatalf("reply for option %v, want %v", got, opt)
	}
	return Reply(binary.BigEndian.Uint32(h[12:])), r.read(int(binary.BigEndian.Uint32(h[16:])))
}

func (r *raw) expectReply(opt Option, want Reply) []byte {
	r.t.Helper()
	typ, data := r.reply(opt)
	if typ != want {
		r.t.Fatalf("option %v: reply %v (%q), want %v", opt, typ, data, want)
	}
	return data
}

// open does the handshake up to transmission on export name.
func (r *raw) open(name string, structured, meta bool) {
	r.t.Helper()
	r.greet(clientFixedNewstyle | clientNoZeroes)
	if structured {
		r.option(OptStructuredReply, nil)
		r.expectReply(OptStructuredReply, RepAck)
	}
	if meta {
		q := metaRequest{name: name, queries: []string{metaBaseAllocation}}
		r.option(OptSetMetaContext, q.encode())
		r.expectReply(OptSetMetaContext, RepMetaContext)
		r.expectReply(OptSetMetaContext, RepAck)
	}
	q := infoRequest{name: name}
	r.option(OptGo, q.encode())
	r.expectReply(OptGo, RepInfo)
	r.expectReply(OptGo, RepAck)
}

// request sends a request header and payload.
func (r *raw) request(typ Command, flags CommandFlags, handle, off uint64, length uint32, payload []byte) {
	r.t.Helper()
	h := make([]byte, requestSize)
	(&Request{Type: typ, Flags: flags, Handle: handle, Offset: off, Length: length}).encode(h)
	r.write(h, payload)
}

// simple reads a simple reply and returns its error value.
func (r *raw) simple(handle uint64) Errno {
	r.t.Helper()
	h := r.read(simpleReplySize)
	if m := binary.BigEndian.Uint32(h); m != magicSimpleReply {
		r.t.Fatalf("reply magic %#x, want simple", m)
	}
	if got := binary.BigEndian.Uint64(h[8:]); got != handle {
		r.t.Fatalf("reply handle %d, want %d", got, handle)
	}
	return Errno(binary.BigEndian.Uint32(h[4:]))
}

// chunk reads a structured reply chunk.
func (r *raw) chunk(handle uint64) (flags, typ uint16, payload []byte) {
	r.t.Helper()
	h := r.read(chunkHeaderSize)
	if m := binary.BigEndian.Uint32(h); m != magicChunkReply {
		r.t.Fatalf("reply magic %#x, want structured", m)
	}
	if got := binary.BigEndian.Uint64(h[8:]); got != handle {
		r.t.Fatalf("reply handle %d, want %d", got, handle)
	}
	return binary.BigEndian.Uint16(h[4:]), binary.BigEndian.Uint16(h[6:]), r.read(int(binary.BigEndian.Uint32(h[16:])))
}

// gate is a device wrapper that holds the reads and writes of chosen
// offsets until released, reporting when one arrives.
type gate struct {
	*blockdev.Mem
	mu      sync.Mutex
	held    map[int64]chan struct{}
	arrived chan int64
}

func newGate(size int64) *gate {
	return &gate{Mem: blockdev.NewMem(size), held: map[int64]chan struct{}{}, arrived: make(chan int64, 64)}
}

// hold makes I/O at off wait until release(off).
func (g *gate) hold(off int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held[off] = make(chan struct{})
}

func (g *gate) release(off int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.held[off]; ok {
		close(ch)
		delete(g.held, off)
	}
}

func (g *gate) wait(off int64) {
	g.mu.Lock()
	ch := g.held[off]
	g.mu.Unlock()
	if ch != nil {
		g.arrived <- off
		<-ch
	}
}

func (g *gate) ReadAt(p []byte, off int64) (int, error) {
	g.wait(off)
	return g.Mem.ReadAt(p, off)
}

func (g *gate) WriteAt(p []byte, off int64) (int, error) {
	g.wait(off)
	return g.Mem.WriteAt(p, off)
}

// pattern is deterministic test data.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>9)
	}
	return b
}

func listenUnix(t *testing.T) (net.Listener, error) {
	return net.Listen("unix", filepath.Join(t.TempDir(), "nbd.sock"))
}
