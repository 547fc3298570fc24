package nbd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"golang.org/x/sys/cpu"
)

// recConn is a net.Conn that records what is written to it, and fails
// every write once failing is set.
type recConn struct {
	net.Conn // nil unless it stands in front of a real connection
	mu       sync.Mutex
	data     bytes.Buffer
	calls    int
	failing  atomic.Bool
}

var errInjected = errors.New("injected write failure")

func (r *recConn) Write(p []byte) (int, error) {
	if r.failing.Load() {
		return 0, errInjected
	}
	r.mu.Lock()
	r.data.Write(p)
	r.calls++
	r.mu.Unlock()
	if r.Conn == nil {
		return len(p), nil
	}
	return r.Conn.Write(p)
}

// written returns the bytes written so far and the number of Write calls.
func (r *recConn) written() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.data.Len(), r.calls
}

// TestBufferedConnCork: uncorked writes go straight out; corked ones wait
// for flush and leave in order, in few writes, even when they are larger
// than the buffer.
func TestBufferedConnCork(t *testing.T) {
	rec := &recConn{}
	b := newBufferedConn(rec)
	if _, err := b.Write([]byte("alert")); err != nil {
		t.Fatal(err)
	}
	if n, calls := rec.written(); n != 5 || calls != 1 {
		t.Fatalf("uncorked write: %d bytes in %d writes", n, calls)
	}
	var want bytes.Buffer
	want.WriteString("alert")
	const record = maxRecordData + 22
	pieces := [][]byte{pattern(1, 28), pattern(2, record), pattern(3, 2*tlsWriteBuffer+1), pattern(4, 7)}
	for range tlsWriteBuffer / record * 3 {
		pieces = append(pieces, pattern(5, record))
	}
	b.cork()
	before, _ := rec.written()
	for i, p := range pieces {
		if n, err := b.Write(p); n != len(p) || err != nil {
			t.Fatalf("corked write %d of %d bytes: %d, %v", i, len(p), n, err)
		}
		want.Write(p)
		if i == 1 {
			if n, _ := rec.written(); n != before {
				t.Fatalf("%d bytes went out while corked, before the buffer was full", n-before)
			}
		}
	}
	if err := b.flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	n, calls := rec.written()
	if n != want.Len() || !bytes.Equal(rec.data.Bytes(), want.Bytes()) {
		t.Fatalf("%d bytes written, want %d in order", n, want.Len())
	}
	if most := 1 + 2*want.Len()/tlsWriteBuffer; calls > most {
		t.Fatalf("%d bytes took %d writes, want at most %d", want.Len(), calls, most)
	}
	if err := b.flush(); err != nil {
		t.Fatalf("flush of nothing: %v", err)
	}
	if _, c := rec.written(); c != calls {
		t.Fatalf("an empty flush wrote")
	}
}

// TestBufferedConnWriteFailureSticks: a failed send — at flush, while
// corked, or uncorked — fails every later write and flush with the same
// error: the peer may have part of a record.
func TestBufferedConnWriteFailureSticks(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(*bufferedConn) error
	}{
		{"flush", func(b *bufferedConn) error {
			b.cork()
			if _, err := b.Write(pattern(1, 100)); err != nil {
				return errors.New("a corked write that fits went out")
			}
			return b.flush()
		}},
		{"corked", func(b *bufferedConn) error {
			b.cork()
			_, err := b.Write(pattern(1, tlsWriteBuffer+1))
			if ferr := b.flush(); !errors.Is(ferr, errInjected) {
				return ferr
			}
			return err
		}},
		{"uncorked", func(b *bufferedConn) error {
			_, err := b.Write(pattern(1, 100))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recConn{}
			b := newBufferedConn(rec)
			rec.failing.Store(true)
			if err := tc.fail(b); !errors.Is(err, errInjected) {
				t.Fatalf("the failed send: %v, want the write's error", err)
			}
			rec.failing.Store(false)
			if _, err := b.Write([]byte("x")); !errors.Is(err, errInjected) {
				t.Fatalf("write after a failure: %v", err)
			}
			b.cork()
			b.Write([]byte("x"))
			if err := b.flush(); !errors.Is(err, errInjected) {
				t.Fatalf("flush after a failure: %v", err)
			}
			if n, _ := rec.written(); n != 0 {
				t.Fatalf("%d bytes went out after the failure", n)
			}
		})
	}
}

// TestBufferedConnFlushDeadline: the connection's write deadline bounds a
// flush to a peer that does not read.
func TestBufferedConnFlushDeadline(t *testing.T) {
	a, z := net.Pipe()
	defer z.Close()
	defer a.Close()
	b := newBufferedConn(a)
	b.cork()
	if _, err := b.Write(pattern(1, 4096)); err != nil {
		t.Fatal(err)
	}
	b.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if err := b.flush(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("flush to a peer that does not read: %v, want a deadline error", err)
	}
	b.SetWriteDeadline(time.Time{})
	if _, err := b.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write after a timed-out flush: %v", err)
	}
}

// TestBufferedConnReadAhead: whatever the sizes of reads and writes, the
// bytes arrive whole and in order; a read deadline fails one read and not
// the connection; a connection waiting for data holds no read buffer.
func TestBufferedConnReadAhead(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b := newBufferedConn(nc)

	want := pattern(9, 3*tlsReadAhead+12345)
	sent := make(chan error, 1)
	go func() {
		var err error
		for p, i := want, 0; len(p) > 0 && err == nil; i++ {
			n := min(len(p), []int{28, maxRecordData + 22, 100 << 10, 1}[i%4])
			_, err = peer.Write(p[:n])
			p = p[n:]
		}
		sent <- err
	}()
	got := make([]byte, 0, len(want))
	for i := 0; len(got) < len(want); i++ {
		p := make([]byte, min(len(want)-len(got), []int{5, maxRecordData + 22 + 512, 1, tlsReadAhead}[i%4]))
		n, err := io.ReadFull(b, p)
		if err != nil {
			t.Fatalf("read %d bytes at %d: %d, %v", len(p), len(got), n, err)
		}
		got = append(got, p...)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes read are not the bytes written")
	}

	b.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := b.Read(make([]byte, 100)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	if b.ahead != nil {
		t.Fatal("a connection waiting for data holds a read-ahead buffer")
	}
	b.SetReadDeadline(time.Time{})
	peer.Write([]byte("more"))
	peer.Close()
	if rest, err := io.ReadAll(b); err != nil || string(rest) != "more" {
		t.Fatalf("read after a deadline: %q, %v", rest, err)
	}
}

// tlsPair is a TLS session over a recording connection, as the client
// side, and the server's tls.Conn on the other end of a loopback socket.
func tlsPair(t *testing.T) (*tlsSession, *recConn, *tls.Conn) {
	p := newTestPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	snc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snc.Close() })
	srv := tls.Server(snc, p.server(t, "a"))
	handshake := make(chan error, 1)
	go func() { handshake <- srv.Handshake() }()
	rec := &recConn{Conn: nc}
	cli := newTLSSession(rec, tls.Client, p.client(t, "alice"))
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-handshake; err != nil {
		t.Fatal(err)
	}
	return cli, rec, srv
}

// TestTLSMessageRecords: writeMessage seals a message in as few records as
// its size allows, sends each message that spans records with few writes,
// and the other end reads back what was sent.
func TestTLSMessageRecords(t *testing.T) {
	cli, rec, srv := tlsPair(t)
	// With AES in hardware, both ends of a Go link prefer AES-GCM, and
	// the server picks the cheaper key size.
	st := cli.ConnectionState()
	t.Logf("negotiated %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	if runtime.GOARCH == "amd64" && cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ && st.CipherSuite != tls.TLS_AES_128_GCM_SHA256 {
		t.Errorf("AES in hardware, and the link negotiated %s", tls.CipherSuiteName(st.CipherSuite))
	}
	// crypto/tls starts a connection with small records; get past them.
	warm := pattern(7, 256<<10)
	read := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(warm))
		io.ReadFull(srv, b)
		read <- b
	}()
	if err := writeMessage(cli, nil, warm); err != nil {
		t.Fatal(err)
	}
	<-read
	const overhead = 5 + 1 + 16 // TLS 1.3: header, content type, AEAD tag
	head := pattern(1, requestSize)
	for _, n := range []int{0, 1, 4096, maxRecordData - requestSize, maxRecordData - requestSize + 1,
		maxRecordData, 3*maxRecordData + 5, 3*maxRecordData - 5, 1 << 20, 1<<20 + 4096} {
		body := pattern(byte(n), n)
		go func() {
			b := make([]byte, len(head)+n)
			io.ReadFull(srv, b)
			read <- b
		}()
		bytes0, calls0 := rec.written()
		if err := writeMessage(cli, head, body); err != nil {
			t.Fatalf("message of %d bytes: %v", n, err)
		}
		bytes1, calls1 := rec.written()
		got := <-read
		if !bytes.Equal(got, append(append([]byte(nil), head...), body...)) {
			t.Fatalf("message of %d bytes: the server read other bytes", n)
		}
		records := (bytes1 - bytes0 - len(head) - n) / overhead
		if want := (len(head) + n + maxRecordData - 1) / maxRecordData; records != want {
			t.Errorf("message of %d bytes: %d records, want %d", n, records, want)
		}
		if most := 1 + (bytes1-bytes0)/tlsWriteBuffer; calls1-calls0 > most {
			t.Errorf("message of %d bytes: %d writes, want at most %d", n, calls1-calls0, most)
		}
	}
}

// TestTLSSendFailureBreaksClient: a request whose records cannot go out —
// at flush, or while its records gather — breaks the client as a failed
// write does.
func TestTLSSendFailureBreaksClient(t *testing.T) {
	p := newTestPKI(t)
	ts := startServer(t, "tcp", ServerOptions{TLS: p.server(t, "a"), TLSRequired: true},
		Export{Name: "x", Dev: blockdev.NewMem(4 << 20)})
	for _, n := range []int{4096, 64 << 10, 1 << 20} {
		nc, err := net.Dial(ts.network, ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recConn{Conn: nc}
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		c, err := NewClient(ctx, rec, ClientOptions{Export: "x", TLS: p.client(t, "alice")})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteAt(pattern(1, n), 0); err != nil {
			t.Fatalf("write of %d bytes: %v", n, err)
		}
		rec.failing.Store(true)
		if _, err := c.WriteAt(pattern(2, n), 0); !errors.Is(err, ErrBroken) || !errors.Is(err, errInjected) {
			t.Fatalf("write of %d bytes that cannot be sent: %v, want ErrBroken and the cause", n, err)
		}
		select {
		case <-c.Done():
		case <-time.After(testWait):
			t.Fatalf("write of %d bytes: the client is not broken", n)
		}
		if _, err := c.ReadAt(make([]byte, 512), 0); !errors.Is(err, ErrBroken) {
			t.Fatalf("read on the broken client: %v", err)
		}
		c.Close()
	}
}

// TestTLSStalledSendTimesOut: a client whose server stops reading in the
// middle of a large request is broken by its write deadline; the request
// fails, it does not hang.
func TestTLSStalledSendTimesOut(t *testing.T) {
	p := newTestPKI(t)
	g := newGate(34 << 20)
	ts := startServer(t, "tcp", ServerOptions{TLS: p.server(t, "a"), TLSRequired: true, MaxInflight: 1},
		Export{Name: "g", Dev: g})
	c := ts.dial(t, ClientOptions{Export: "g", TLS: p.client(t, "alice"), Timeout: 300 * time.Millisecond})
	g.hold(0)
	defer g.release(0)
	first := make(chan error, 1)
	go func() {
		_, err := c.WriteAt(pattern(1, 4096), 0)
		first <- err
	}()
	<-g.arrived
	// The server's reader waits for room: 32 MiB fill the socket buffers.
	_, err := c.WriteAt(make([]byte, 32<<20), 1<<20)
	if !errors.Is(err, ErrBroken) {
		t.Fatalf("write to a server that stopped reading: %v, want ErrBroken", err)
	}
	if err := <-first; !errors.Is(err, ErrBroken) {
		t.Fatalf("the held write: %v, want ErrBroken", err)
	}
}

// TestTLSSlowReaderIsDisconnected: the server's reply deadline bounds
// replies on TLS too, whose records gather before they go out.
func TestTLSSlowReaderIsDisconnected(t *testing.T) {
	p := newTestPKI(t)
	ts := startServer(t, "tcp", ServerOptions{TLS: p.server(t, "a"), ReplyTimeout: 50 * time.Millisecond},
		Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	r := ts.raw(t)
	r.greet(clientFixedNewstyle | clientNoZeroes)
	r.startTLS(p.client(t, "alice"))
	r.option(OptGo, (&infoRequest{name: "x"}).encode())
	r.expectReply(OptGo, RepInfo)
	r.expectReply(OptGo, RepAck)
	for h := range uint64(256) {
		r.request(CmdRead, 0, h, 0, 64<<10, nil)
	}
	waitFor(t, "the stuck client to be dropped", func() bool { return ts.Stats().Connections == 0 })
	c := ts.dial(t, ClientOptions{Export: "x", TLS: p.client(t, "alice")})
	if _, err := c.ReadAt(make([]byte, 512), 0); err != nil {
		t.Fatalf("server unusable after dropping a stuck client: %v", err)
	}
}

// TestTLSReplyFailureAbortsConnection: a reply whose records cannot go out
// ends the server's connection as a failed write does, and the client
// learns it.
func TestTLSReplyFailureAbortsConnection(t *testing.T) {
	p := newTestPKI(t)
	s := NewServer(ServerOptions{TLS: p.server(t, "a"), TLSRequired: true})
	if err := s.AddExport(Export{Name: "x", Dev: blockdev.NewMem(expSize)}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{512, 64 << 10, 1 << 20} {
		cend, send := net.Pipe()
		rec := &recConn{Conn: send}
		c := s.register(context.Background(), rec, nil)
		go c.serve()
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		cli, err := NewClient(ctx, cend, ClientOptions{Export: "x", TLS: p.client(t, "alice")})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		if _, err := cli.ReadAt(buf, 0); err != nil {
			t.Fatalf("read of %d bytes: %v", n, err)
		}
		rec.failing.Store(true)
		if _, err := cli.ReadAt(buf, 0); !errors.Is(err, ErrBroken) {
			t.Fatalf("read of %d bytes whose reply cannot be sent: %v, want ErrBroken", n, err)
		}
		select {
		case <-c.done:
		case <-time.After(testWait):
			t.Fatalf("read of %d bytes: the server kept the connection", n)
		}
		cli.Close()
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
