package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

const expSize = 1 << 20

// wellBehaved keeps a client writing and verifying its own region while
// the test abuses the server on other connections; stop returns its
// first failure.
type wellBehaved struct {
	stop func() error
}

func startWellBehaved(t *testing.T, ts *testServer, export string, off int64) *wellBehaved {
	t.Helper()
	c := ts.dial(t, ClientOptions{Export: export})
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var err error
	wg.Go(func() {
		for i := 0; i < 10000; i++ {
			select {
			case <-quit:
				return
			default:
			}
			want := pattern(byte(i), 8192)
			if _, err = c.WriteAt(want, off); err != nil {
				return
			}
			got := make([]byte, len(want))
			if _, err = c.ReadAt(got, off); err != nil {
				return
			}
			if !bytes.Equal(got, want) {
				err = errors.New("well-behaved client read back different data")
				return
			}
		}
	})
	return &wellBehaved{stop: func() error { close(quit); wg.Wait(); return err }}
}

func TestMalformedRequests(t *testing.T) {
	for _, structured := range []bool{false, true} {
		name := "simple"
		if structured {
			name = "structured"
		}
		t.Run(name, func(t *testing.T) { testMalformed(t, structured) })
	}
}

func testMalformed(t *testing.T, structured bool) {
	mem := blockdev.NewMem(expSize)
	ts := startServer(t, "unix", ServerOptions{MaxRequest: 64 << 10}, Export{Name: "d", Dev: mem})
	good := startWellBehaved(t, ts, "d", expSize-8192)
	marker := pattern(9, 4096)
	if _, err := mem.WriteAt(marker, 0); err != nil {
		t.Fatal(err)
	}

	r := ts.raw(t)
	r.open("d", structured, false)
	// expect reads one error reply and checks its value.
	expect := func(handle uint64, want Errno) {
		t.Helper()
		if !structured {
			if got := r.simple(handle); got != want {
				t.Fatalf("handle %d: %v, want %v", handle, got, want)
			}
			return
		}
		flags, typ, p := r.chunk(handle)
		if typ != chunkError || flags&replyFlagDone == 0 || len(p) < chunkErrorMinSize {
			t.Fatalf("handle %d: chunk type %d flags %#x len %d, want a final error chunk", handle, typ, flags, len(p))
		}
		got, msgLen := Errno(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint16(p[4:]))
		if got != want || msgLen != len(p)-chunkErrorMinSize || msgLen == 0 {
			t.Fatalf("handle %d: %v with %d-byte message in %d, want %v with a message", handle, got, msgLen, len(p), want)
		}
	}

	r.request(0x77, 0, 1, 0, 512, nil)
	expect(1, EINVAL)
	r.request(CmdRead, 0, 2, expSize-512, 1024, nil)
	expect(2, EINVAL)
	r.request(CmdRead, 0, 3, ^uint64(0)-100, 512, nil)
	expect(3, EINVAL)
	r.request(CmdRead, 0, 4, 0, 64<<10+1, nil)
	expect(4, EINVAL)
	r.request(CmdWrite, 0, 5, expSize-4, 8, pattern(1, 8))
	expect(5, ENOSPC)
	// An oversized write is refused and its payload skipped: the next
	// request on the same connection is understood.
	r.request(CmdWrite, 0, 6, 0, 64<<10+1, pattern(2, 64<<10+1))
	expect(6, EINVAL)
	r.request(CmdTrim, 0, 7, expSize, 1, nil)
	expect(7, EINVAL)
	r.request(CmdRead, 1<<9, 8, 0, 512, nil)
	expect(8, EINVAL)
	r.request(CmdFlush, 0, 9, 1, 0, nil)
	expect(9, EINVAL)
	r.request(CmdBlockStatus, 0, 10, 0, 512, nil)
	expect(10, EINVAL)
	r.request(CmdNetraidControl, 0, 11, 0, 17, encodeChecksumRequest(0, 512))
	expect(11, EINVAL)
	r.request(CmdWrite, CmdFlagReqOne, 12, 0, 16, pattern(4, 16))
	expect(12, EINVAL)
	r.request(CmdRead, 0, 13, 0, 16, nil)
	if !structured {
		if e := r.simple(13); e != 0 {
			t.Fatalf("read after bad requests: %v", e)
		}
		if got := r.read(16); !bytes.Equal(got, marker[:16]) {
			t.Fatalf("read %x, want %x", got, marker[:16])
		}
	} else {
		flags, typ, p := r.chunk(13)
		if typ != chunkOffsetData || flags&replyFlagDone == 0 || binary.BigEndian.Uint64(p) != 0 || !bytes.Equal(p[8:], marker[:16]) {
			t.Fatalf("read after bad requests: type %d flags %#x payload %x", typ, flags, p)
		}
	}

	// A bad magic number ends the connection, and only that one.
	bad := make([]byte, requestSize)
	(&Request{Type: CmdRead, Handle: 14, Length: 512}).encode(bad)
	bad[0] ^= 0xff
	r.write(bad)
	r.expectClosed()

	// A write whose payload is cut by a disconnect writes nothing.
	r2 := ts.raw(t)
	r2.open("d", structured, false)
	r2.request(CmdWrite, 0, 1, 0, 4096, pattern(3, 1000))
	r2.nc.Close()

	// The server is still up and serving.
	r3 := ts.raw(t)
	r3.open("d", structured, false)
	r3.request(CmdFlush, 0, 1, 0, 0, nil)
	if e := r3.simple(1); e != 0 {
		t.Fatalf("flush on a new connection: %v", e)
	}
	if err := good.stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the truncated connection to end", func() bool { return ts.Clients("d") == 2 })
	if got := mem.Bytes()[:4096]; !bytes.Equal(got, marker) {
		t.Fatalf("a truncated or refused write changed the export")
	}
	if st := ts.Stats(); st.Errors < 12 || st.Requests < 14 {
		t.Fatalf("stats %+v: want at least 12 errors in 14 requests", st)
	}
}

func TestReadOnlyExport(t *testing.T) {
	mem := blockdev.NewMem(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "ro", Dev: mem, ReadOnly: true})
	r := ts.raw(t)
	r.open("ro", false, false)
	r.request(CmdWrite, 0, 1, 0, 512, pattern(1, 512))
	r.request(CmdTrim, 0, 2, 0, 512, nil)
	r.request(CmdWriteZeroes, 0, 3, 0, 512, nil)
	r.request(CmdRead, 0, 4, 0, 512, nil)
	for h := uint64(1); h <= 3; h++ {
		if e := r.simple(h); e != EPERM {
			t.Fatalf("handle %d: %v, want EPERM", h, e)
		}
	}
	if e := r.simple(4); e != 0 {
		t.Fatalf("read: %v", e)
	}
	r.read(512)

	c := ts.dial(t, ClientOptions{Export: "ro"})
	if c.Flags()&FlagReadOnly == 0 {
		t.Fatalf("flags %#x lack READ_ONLY", c.Flags())
	}
	if _, err := c.WriteAt(make([]byte, 512), 0); !errors.Is(err, blockdev.ErrReadOnly) {
		t.Fatalf("WriteAt on a read-only export: %v", err)
	}
	if _, err := c.ReadAt(make([]byte, 512), 512); err != nil {
		t.Fatalf("ReadAt on a read-only export: %v", err)
	}
	if !bytes.Equal(mem.Bytes(), make([]byte, expSize)) {
		t.Fatalf("read-only export changed")
	}
}

// serverConn returns the server's only connection in transmission.
func serverConn(t *testing.T, s *Server) *conn {
	t.Helper()
	var c *conn
	waitFor(t, "a connection in transmission", func() bool {
		l := s.connsWhere(func(c *conn) bool { return c.exp != nil })
		if len(l) == 1 {
			c = l[0]
		}
		return c != nil
	})
	return c
}

func TestShutdownDrains(t *testing.T) {
	g := newGate(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "g", Dev: g})
	r := ts.raw(t)
	r.open("g", false, false)
	data := pattern(5, 4096)
	g.hold(8192)
	r.request(CmdWrite, 0, 1, 8192, 4096, data)
	<-g.arrived

	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	sc := serverConn(t, ts.Server)
	waitFor(t, "the connection to drain", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.draining
	})
	// Requests after the shutdown began are refused; the one in flight
	// holds the shutdown up.
	r.request(CmdRead, 0, 2, 0, 512, nil)
	if e := r.simple(2); e != ESHUTDOWN {
		t.Fatalf("request during shutdown: %v, want ESHUTDOWN", e)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	g.release(8192)
	if e := r.simple(1); e != 0 {
		t.Fatalf("write in flight at shutdown: %v", e)
	}
	r.expectClosed()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(testWait):
		t.Fatalf("Shutdown did not return")
	}
	// The acknowledged write was flushed: a crash keeps it.
	if n := g.Crash(); n != 0 {
		t.Fatalf("Crash rolled back %d pages after Shutdown", n)
	}
	if !bytes.Equal(g.Bytes()[8192:8192+4096], data) {
		t.Fatalf("write acknowledged at shutdown is not on the device")
	}
	if _, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Timeout: time.Second}); err == nil {
		t.Fatalf("Dial after Shutdown succeeded")
	}
	if err := ts.AddExport(Export{Name: "late", Dev: g}); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("AddExport after Shutdown: %v", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	g := newGate(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "g", Dev: g})
	c := ts.dial(t, ClientOptions{Export: "g", Timeout: testWait})
	g.hold(0)
	read := make(chan error, 1)
	go func() { _, err := c.ReadAt(make([]byte, 512), 0); read <- err }()
	<-g.arrived
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with an expired context: %v", err)
	}
	// The connection was cut: the client's read fails without its reply.
	if err := <-read; !errors.Is(err, ErrBroken) {
		t.Fatalf("read cut by Shutdown: %v", err)
	}
	g.release(0) // lets the stuck handler, and so Serve, finish
}

func TestMultiConn(t *testing.T) {
	mem := blockdev.NewMem(expSize)
	ts := startServer(t, "tcp", ServerOptions{}, Export{Name: "m", Dev: mem})
	a := ts.dial(t, ClientOptions{Export: "m"})
	b := ts.dial(t, ClientOptions{Export: "m"})
	if a.Flags()&FlagCanMultiConn == 0 {
		t.Fatalf("flags %#x lack CAN_MULTI_CONN", a.Flags())
	}
	kept, lost := pattern(1, 8192), pattern(2, 8192)
	if _, err := a.WriteAt(kept, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteAt(lost, 65536); err != nil {
		t.Fatal(err)
	}
	mem.Crash()
	got := make([]byte, 8192)
	if _, err := a.ReadAt(got, 0); err != nil || !bytes.Equal(got, kept) {
		t.Fatalf("write flushed through another connection was lost (%v)", err)
	}
	if _, err := a.ReadAt(got, 65536); err != nil || bytes.Equal(got, lost) {
		t.Fatalf("unflushed write survived the crash (%v): the test proves nothing", err)
	}
}

func TestFlushOnDisconnect(t *testing.T) {
	mem := blockdev.NewMem(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "m", Dev: mem})
	c := ts.dial(t, ClientOptions{Export: "m"})
	data := pattern(3, 4096)
	if _, err := c.WriteAt(data, 4096); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to see the disconnect", func() bool { return ts.Stats().Connections == 0 })
	if n := mem.Crash(); n != 0 || !bytes.Equal(mem.Bytes()[4096:8192], data) {
		t.Fatalf("acknowledged write not flushed when its client left (%d pages rolled back)", n)
	}
}

func TestDropClientsAndRemoveExport(t *testing.T) {
	ts := startServer(t, "unix", ServerOptions{},
		Export{Name: "a", Dev: blockdev.NewMem(expSize)}, Export{Name: "b", Dev: blockdev.NewMem(expSize)})
	a1, a2 := ts.dial(t, ClientOptions{Export: "a"}), ts.dial(t, ClientOptions{Export: "a"})
	b := ts.dial(t, ClientOptions{Export: "b"})
	if n := ts.Clients("a"); n != 2 {
		t.Fatalf("Clients(a) = %d", n)
	}
	if n := ts.DropClients("a"); n != 2 {
		t.Fatalf("DropClients(a) = %d, want 2", n)
	}
	for _, c := range []*Client{a1, a2} {
		if _, err := c.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrBroken) {
			t.Fatalf("read on a dropped client: %v", err)
		}
	}
	if _, err := b.ReadAt(make([]byte, 512), 0); err != nil {
		t.Fatalf("client of another export: %v", err)
	}
	if ts.Clients("a") != 0 || ts.Clients("b") != 1 {
		t.Fatalf("Clients after drop: a %d b %d", ts.Clients("a"), ts.Clients("b"))
	}
	if err := ts.RemoveExport("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrBroken) {
		t.Fatalf("read on a client of a removed export: %v", err)
	}
	if _, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "b"}); !errors.Is(err, ErrUnknownExport) {
		t.Fatalf("Dial of a removed export: %v", err)
	}
	if err := ts.RemoveExport("b"); !errors.Is(err, ErrUnknownExport) {
		t.Fatalf("second RemoveExport: %v", err)
	}
	if err := ts.AddExport(Export{Name: "a", Dev: blockdev.NewMem(1)}); !errors.Is(err, ErrExportExists) {
		t.Fatalf("AddExport of a taken name: %v", err)
	}
	if err := ts.AddExport(Export{Name: "nil"}); err == nil {
		t.Fatalf("AddExport without a device succeeded")
	}
}

func TestStats(t *testing.T) {
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "s", Dev: blockdev.NewMem(expSize)})
	c := ts.dial(t, ClientOptions{Export: "s"})
	if _, err := c.WriteAt(make([]byte, 3000), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAt(make([]byte, 5000), 0); err != nil {
		t.Fatal(err)
	}
	st := ts.Stats()
	if st.Connections != 1 || st.TotalConnections != 1 || st.BytesWritten != 3000 || st.BytesRead != 5000 ||
		st.Requests != 2 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServeContextCancel(t *testing.T) {
	mem := blockdev.NewMem(expSize)
	s := NewServer(ServerOptions{})
	if err := s.AddExport(Export{Name: "x", Dev: mem}); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, network: "unix"}
	l, err := listenUnix(t)
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	c := ts.dial(t, ClientOptions{Export: "x"})
	if _, err := c.WriteAt(pattern(1, 512), 0); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(testWait):
		t.Fatalf("Serve did not return after cancel")
	}
	// The drained connection answers ESHUTDOWN or is gone.
	if _, err := c.ReadAt(make([]byte, 512), 0); err == nil {
		t.Fatalf("read after the server stopped succeeded")
	}
	if mem.Crash() != 0 {
		t.Fatalf("drained connection did not flush its write")
	}
}

func TestSlowReaderIsDisconnected(t *testing.T) {
	ts := startServer(t, "unix", ServerOptions{ReplyTimeout: 50 * time.Millisecond},
		Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	r := ts.raw(t)
	r.open("x", false, false)
	// Ask for far more than socket buffers hold, and never read it. The
	// server may drop the connection before every request is sent (a
	// loaded machine can stall this goroutine past the reply timeout):
	// the sending stops there, which is what is tested.
	var reqs []byte
	for h := range uint64(256) {
		b := make([]byte, requestSize)
		(&Request{Type: CmdRead, Handle: h, Length: 64 << 10}).encode(b)
		reqs = append(reqs, b...)
	}
	r.nc.SetWriteDeadline(time.Now().Add(testWait))
	if _, err := r.nc.Write(reqs); err != nil {
		t.Logf("the requests were cut off: %v", err)
	}
	waitFor(t, "the stuck client to be dropped", func() bool { return ts.Stats().Connections == 0 })
	c := ts.dial(t, ClientOptions{Export: "x"})
	if _, err := c.ReadAt(make([]byte, 512), 0); err != nil {
		t.Fatalf("server unusable after dropping a stuck client: %v", err)
	}
}

func TestShutdownCutsHandshake(t *testing.T) {
	ts := startServer(t, "unix", ServerOptions{NegotiationTimeout: time.Hour}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	r := ts.raw(t)
	r.greet(clientFixedNewstyle) // and then say nothing
	waitFor(t, "the handshake to start", func() bool { return ts.Stats().Connections == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a client in its handshake: %v", err)
	}
	r.expectClosed()
	l, err := listenUnix(t)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Serve(context.Background(), l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}
