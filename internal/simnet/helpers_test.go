package simnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testWait bounds every wait that must end; nothing should take more than
// a fraction of it.
const testWait = 20 * time.Second

// quiet is how long a call is given to show that it waits: the call must
// time out whatever the machine's load, since what it waits for cannot
// come.
const quiet = 30 * time.Millisecond

// listen listens on port 7789 of h, closed at cleanup.
func listen(t *testing.T, h *Host) net.Listener {
	t.Helper()
	l, err := h.Listen("tcp", ":7789")
	if err != nil {
		t.Fatalf("listen on %s: %v", h.Name(), err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// connect dials l from h and accepts: the dialer's end, the acceptor's.
// Both are closed at cleanup.
func connect(t *testing.T, h *Host, l net.Listener) (net.Conn, net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	d, err := h.Dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial %v from %s: %v", l.Addr(), h.Name(), err)
	}
	t.Cleanup(func() { d.Close() })
	a, err := l.Accept()
	if err != nil {
		t.Fatalf("accept on %v: %v", l.Addr(), err)
	}
	t.Cleanup(func() { a.Close() })
	return d, a
}

// pair is a network with hosts a and b, b listening, and a connection
// dialed from a: a's end and b's.
func pair(t *testing.T, o Options) (n *Network, ca, cb net.Conn) {
	t.Helper()
	n = New(o)
	l := listen(t, n.Host("b"))
	ca, cb = connect(t, n.Host("a"), l)
	return n, ca, cb
}

// write writes p whole within testWait.
func write(t *testing.T, c net.Conn, p []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(testWait))
	if k, err := c.Write(p); err != nil || k != len(p) {
		t.Fatalf("write of %d bytes: wrote %d: %v", len(p), k, err)
	}
}

// expectRead reads len(want) bytes within testWait and checks them.
func expectRead(t *testing.T, c net.Conn, want []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testWait))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read of %d bytes: %v", len(want), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectSilence checks that a read gets nothing for a while: it times out.
func expectSilence(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(quiet))
	var b [64]byte
	k, err := c.Read(b[:])
	if !isTimeout(err) {
		t.Fatalf("read got %d bytes %q, err %v; want a time-out", k, b[:k], err)
	}
}

// expectErr checks that err is target (errors.Is).
func expectErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err %v, want %v", what, err, target)
	}
}

// expectReadErr checks that a read fails with target within testWait.
func expectReadErr(t *testing.T, c net.Conn, target error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testWait))
	var b [64]byte
	k, err := c.Read(b[:])
	if k != 0 || !errors.Is(err, target) {
		t.Fatalf("read: %d bytes %q, err %v; want %v", k, b[:k], err, target)
	}
}

// isTimeout reports whether err is a deadline's, in every way a caller
// may test it.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

var (
	errReset   = syscall.ECONNRESET
	errRefused = syscall.ECONNREFUSED
)

// pattern is n bytes that differ from one offset to the next.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i/251) ^ seed
	}
	return b
}

// pendingDial dials addr from h in a goroutine, checks that the dial
// waits, and returns where its error will come (the connection, if any,
// is closed).
func pendingDial(t *testing.T, h *Host, addr string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		c, err := h.Dial(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("dial of %s from %s did not wait: %v", addr, h.Name(), err)
	case <-time.After(quiet):
	}
	return done
}
