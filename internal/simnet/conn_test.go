package simnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// TestConnConformance runs x/net's net.Conn conformance suite: basic
// I/O, ping-pong, racing reads and writes against deadline changes,
// past, present and future deadlines, Close during calls, concurrent
// methods.
func TestConnConformance(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		n := New(Options{BufferBytes: 64 << 10})
		l, err := n.Host("b").Listen("tcp", ":1")
		if err != nil {
			return nil, nil, nil, err
		}
		c1, err = n.Host("a").Dial(context.Background(), "tcp", "b:1")
		if err != nil {
			return nil, nil, nil, err
		}
		c2, err = l.Accept()
		if err != nil {
			return nil, nil, nil, err
		}
		l.Close()
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	})
}

func TestReadWriteClose(t *testing.T) {
	_, ca, cb := pair(t, Options{})
	write(t, ca, []byte("hello "))
	write(t, ca, []byte("world"))
	expectRead(t, cb, []byte("hello world"))
	write(t, cb, []byte("back"))
	expectRead(t, ca, []byte("back"))

	write(t, ca, []byte("last"))
	if err := ca.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	expectRead(t, cb, []byte("last"))
	expectReadErr(t, cb, io.EOF)
	_, err := cb.Write([]byte("x"))
	expectErr(t, "write after the peer closed", err, syscall.EPIPE)

	_, err = ca.Read(make([]byte, 1))
	expectErr(t, "read after close", err, net.ErrClosed)
	_, err = ca.Write([]byte("x"))
	expectErr(t, "write after close", err, net.ErrClosed)
	expectErr(t, "second close", ca.Close(), net.ErrClosed)
	expectErr(t, "deadline after close", ca.SetDeadline(time.Now()), net.ErrClosed)
}

// TestCloseWithUnreadResets: closing an end that left bytes unread resets
// the connection, as Linux does; the peer loses what it had not read.
func TestCloseWithUnreadResets(t *testing.T) {
	_, ca, cb := pair(t, Options{})
	write(t, cb, []byte("to b"))
	write(t, ca, []byte("never read"))
	cb.Close()
	expectReadErr(t, ca, errReset)
	_, err := ca.Write([]byte("x"))
	expectErr(t, "write after a reset", err, errReset)
}

func TestCloseUnblocksCalls(t *testing.T) {
	_, ca, _ := pair(t, Options{BufferBytes: 16})
	write(t, ca, make([]byte, 16)) // full
	errs := make(chan error, 2)
	go func() {
		_, err := ca.Read(make([]byte, 1))
		errs <- err
	}()
	go func() {
		_, err := ca.Write([]byte("x"))
		errs <- err
	}()
	ca.Close()
	for range 2 {
		expectErr(t, "call blocked across Close", <-errs, net.ErrClosed)
	}
}

func TestListenerCloseUnblocksAccept(t *testing.T) {
	n := New(Options{})
	l, err := n.Host("b").Listen("tcp", "b:7789")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	l.Close()
	expectErr(t, "accept across Close", <-errc, net.ErrClosed)
	// The port is free again.
	l2 := listen(t, n.Host("b"))
	if l2.Addr().String() != "b:7789" {
		t.Fatalf("listener on %v, want b:7789", l2.Addr())
	}
}

// TestListenerCloseResetsQueue: a connection never accepted is reset
// when its listener closes.
func TestListenerCloseResetsQueue(t *testing.T) {
	n := New(Options{})
	l, err := n.Host("b").Listen("tcp", ":7789")
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.Host("a").Dial(context.Background(), "tcp", "b:7789")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.Close()
	expectReadErr(t, c, errReset)
}

func TestDeadlines(t *testing.T) {
	_, ca, cb := pair(t, Options{BufferBytes: 8})
	write(t, ca, []byte("data"))

	// A past deadline fails the read though data waits, as on a socket.
	cb.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := cb.Read(make([]byte, 4))
	if !isTimeout(err) {
		t.Fatalf("read past its deadline: %v, want a time-out", err)
	}
	expectRead(t, cb, []byte("data")) // a new deadline: the data is there

	// A deadline moved into the past wakes a blocked read.
	cb.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := cb.Read(make([]byte, 1))
		errc <- err
	}()
	cb.SetReadDeadline(time.Unix(1, 0))
	if err := <-errc; !isTimeout(err) {
		t.Fatalf("read woken by a past deadline: %v, want a time-out", err)
	}

	// A deadline moved further away lets a blocked read go on.
	cb.SetReadDeadline(time.Now().Add(quiet))
	go func() {
		_, err := cb.Read(make([]byte, 1))
		errc <- err
	}()
	cb.SetReadDeadline(time.Now().Add(testWait))
	write(t, ca, []byte("x"))
	if err := <-errc; err != nil {
		t.Fatalf("read after its deadline was extended: %v", err)
	}

	// A write that does not fit by its deadline returns what fitted.
	ca.SetWriteDeadline(time.Now().Add(quiet))
	k, err := ca.Write([]byte("0123456789"))
	if k != 8 || !isTimeout(err) {
		t.Fatalf("write of 10 into 8 bytes of room: %d, %v; want 8 and a time-out", k, err)
	}
	expectRead(t, cb, []byte("01234567"))
	write(t, ca, []byte("89")) // the deadline renewed, room again
	expectRead(t, cb, []byte("89"))

	// SetDeadline sets both.
	ca.SetDeadline(time.Unix(1, 0))
	if _, err := ca.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("read after SetDeadline in the past: %v", err)
	}
	if _, err := ca.Write([]byte("x")); !isTimeout(err) {
		t.Fatalf("write after SetDeadline in the past: %v", err)
	}
}

// TestWriteWaitsForRoom: a Write returns once its bytes are in the
// buffer, and waits while it is full until the reader makes room.
func TestWriteWaitsForRoom(t *testing.T) {
	_, ca, cb := pair(t, Options{BufferBytes: 1024})
	first, second := pattern(1024, 1), pattern(1000, 2)
	write(t, ca, first) // fills the buffer, nobody reading
	done := make(chan error, 1)
	go func() {
		_, err := ca.Write(second)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("write into a full buffer returned: %v", err)
	case <-time.After(quiet):
	}
	expectRead(t, cb, first)
	if err := <-done; err != nil {
		t.Fatalf("write after room was made: %v", err)
	}
	expectRead(t, cb, second)
}

// TestLargeTransfer moves 4 MiB each way at once through 4 KiB buffers,
// in writes of odd sizes, and checks every byte.
func TestLargeTransfer(t *testing.T) {
	_, ca, cb := pair(t, Options{BufferBytes: 4096})
	const size = 4 << 20
	var wg sync.WaitGroup
	for i, c := range []net.Conn{ca, cb} {
		data := pattern(size, byte(i))
		other := []net.Conn{cb, ca}[i]
		wg.Go(func() {
			c.SetWriteDeadline(time.Now().Add(testWait))
			for p := data; len(p) > 0; {
				k := min(len(p), 3001)
				if _, err := c.Write(p[:k]); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				p = p[k:]
			}
		})
		wg.Go(func() {
			other.SetReadDeadline(time.Now().Add(testWait))
			got := make([]byte, size)
			if _, err := io.ReadFull(other, got); err != nil {
				t.Errorf("read: %v", err)
				return
			}
			if !bytes.Equal(got, data) {
				t.Errorf("direction %d: the bytes read differ from those written", i)
			}
		})
	}
	wg.Wait()
}

// TestConcurrentWriters: writes from several goroutines, each larger
// than the buffer, arrive whole, never interleaved.
func TestConcurrentWriters(t *testing.T) {
	_, ca, cb := pair(t, Options{BufferBytes: 4096})
	const writers, records, size = 8, 50, 10000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rec := make([]byte, size)
			for r := range records {
				for i := 0; i < size; i += 4 {
					binary.BigEndian.PutUint32(rec[i:], uint32(w<<16|r))
				}
				if _, err := ca.Write(rec); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	cb.SetReadDeadline(time.Now().Add(testWait))
	rec := make([]byte, size)
	next := make([]int, writers) // each writer's records arrive in its order
	for range writers * records {
		if _, err := io.ReadFull(cb, rec); err != nil {
			t.Fatalf("read: %v", err)
		}
		tag := binary.BigEndian.Uint32(rec)
		for i := 0; i < size; i += 4 {
			if binary.BigEndian.Uint32(rec[i:]) != tag {
				t.Fatalf("record %#x interleaved with %#x at byte %d", tag, binary.BigEndian.Uint32(rec[i:]), i)
			}
		}
		w, r := int(tag>>16), int(tag&0xffff)
		if w >= writers || r != next[w] {
			t.Fatalf("record %d of writer %d, want record %d", r, w, next[w])
		}
		next[w]++
	}
	wg.Wait()
}

func TestAddresses(t *testing.T) {
	n := New(Options{})
	a, b := n.Host("a"), n.Host("b")
	l := listen(t, b)
	ca, cb := connect(t, a, l)
	if ca.RemoteAddr() != cb.LocalAddr() || cb.RemoteAddr() != ca.LocalAddr() {
		t.Errorf("ends disagree: a %v->%v, b %v->%v", ca.LocalAddr(), ca.RemoteAddr(), cb.LocalAddr(), cb.RemoteAddr())
	}
	if got := ca.LocalAddr().(Addr); got.Host != "a" || got.Port != firstEphemeral {
		t.Errorf("dialer's address %v, want a:%d", got, firstEphemeral)
	}
	if ca.RemoteAddr().String() != "b:7789" || ca.RemoteAddr().Network() != "sim" {
		t.Errorf("remote %s %v, want sim b:7789", ca.RemoteAddr().Network(), ca.RemoteAddr())
	}
	e, err := b.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if p := e.Addr().(Addr).Port; p != firstEphemeral {
		t.Errorf("ephemeral listener on port %d, want %d", p, firstEphemeral)
	}
	// Dialing one's own host by name or as localhost.
	self, err := b.Dial(context.Background(), "tcp", "localhost:7789")
	if err != nil {
		t.Fatalf("dial localhost: %v", err)
	}
	self.Close()

	_, err = b.Listen("tcp", ":7789")
	expectErr(t, "listen on a port in use", err, syscall.EADDRINUSE)
	_, err = a.Listen("tcp", "b:7790")
	expectErr(t, "listen on another host's address", err, syscall.EADDRNOTAVAIL)
	_, err = a.Listen("unix", "/tmp/x")
	var unknown net.UnknownNetworkError
	if !errors.As(err, &unknown) {
		t.Errorf("listen on unix: %v, want an unknown network", err)
	}
	_, err = a.Dial(context.Background(), "tcp", "c:7789")
	var dns *net.DNSError
	if !errors.As(err, &dns) || !dns.IsNotFound {
		t.Errorf("dial an unknown host: %v, want no such host", err)
	}
	_, err = a.Dial(context.Background(), "tcp", "b:7790")
	expectErr(t, "dial a port nobody listens on", err, errRefused)
	_, err = a.Dial(context.Background(), "tcp", "b")
	if err == nil {
		t.Errorf("dial without a port succeeded")
	}
}

// TestSameCallsSameOutcome: the IDs and ports of a run are a function of
// its calls.
func TestSameCallsSameOutcome(t *testing.T) {
	run := func() []string {
		n := New(Options{})
		l := listen(t, n.Host("b"))
		var out []string
		for i := range 5 {
			h := n.Host([]string{"a", "c"}[i%2])
			connect(t, h, l)
		}
		for _, h := range []string{"a", "c"} {
			for _, c := range n.Conns(h, "b") {
				out = append(out, c.String())
			}
		}
		return out
	}
	first, second := run(), run()
	if len(first) != 5 || !slices.Equal(first, second) {
		t.Fatalf("two runs of the same calls: %v and %v", first, second)
	}
	if first[0] != "conn 1 a:32768->b:7789" || first[1] != "conn 3 a:32769->b:7789" {
		t.Fatalf("connections %v", first)
	}
}
