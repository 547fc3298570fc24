package nbd

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// socketPair returns the two ends of a connected socket of network
// ("tcp" on loopback, or "unix"), each wrapped by wrapSocket.
func socketPair(t *testing.T, network string) (net.Conn, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	a, err := net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.FailNow()
	}
	wa, wb := wrapSocket(a), wrapSocket(b)
	for _, c := range []net.Conn{wa, wb} {
		if _, ok := c.(*sockConn); !ok {
			t.Fatalf("wrapSocket(%T) = %T, want *sockConn", a, c)
		}
	}
	t.Cleanup(func() { wa.Close(); wb.Close() })
	return wa, wb
}

func TestWrapSocketLeavesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := wrapSocket(a); c != a {
		t.Fatalf("wrapSocket(net.Pipe) = %T, want the pipe itself", c)
	}
}

// TestSockConnStream sends a vector much larger than the socket buffers,
// of many buffers (more than one writev takes, empty ones among them),
// while the other side reads it in small pieces: every byte arrives, in
// order, through partial writes and waits for room.
func TestSockConnStream(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			a, b := socketPair(t, network)
			rng := rand.New(rand.NewPCG(1, 2))
			var bufs net.Buffers
			var want []byte
			for i := range 3*1024 + 7 { // more than three writev(2) calls take (IOV_MAX)
				n := rng.IntN(9000)
				if i%50 == 0 {
					n = 0
				}
				p := make([]byte, n)
				for j := range p {
					p[j] = byte(rng.Uint32())
				}
				bufs = append(bufs, p)
				want = append(want, p...)
			}
			got := make(chan []byte, 1)
			go func() {
				var out bytes.Buffer
				p := make([]byte, 1000)
				for out.Len() < len(want) {
					n, err := b.Read(p)
					out.Write(p[:n])
					if err != nil {
						t.Errorf("read after %d bytes: %v", out.Len(), err)
						break
					}
				}
				got <- out.Bytes()
			}()
			n, err := writeVec(a, bufs)
			if err != nil || n != int64(len(want)) {
				t.Fatalf("writeVec = %d, %v; want %d, nil", n, err, len(want))
			}
			if g := <-got; !bytes.Equal(g, want) {
				t.Fatalf("read %d bytes, not the %d written (or not in order)", len(g), len(want))
			}
			// Write, the single-buffer way, and EOF after the writer closes.
			if _, err := a.Write([]byte("end")); err != nil {
				t.Fatal(err)
			}
			a.Close()
			rest, err := io.ReadAll(b)
			if err != nil || string(rest) != "end" {
				t.Fatalf("after close: read %q, %v; want \"end\", nil (EOF)", rest, err)
			}
		})
	}
}

// TestSockConnDeadlinesAndClose: the connection's deadlines and Close
// apply to raw reads and writes as to package net's.
func TestSockConnDeadlinesAndClose(t *testing.T) {
	a, b := socketPair(t, "tcp")

	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := a.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v; want a timeout (os.ErrDeadlineExceeded)", err)
	}
	a.SetReadDeadline(time.Time{})

	// A writer that fills the socket waits for room until its deadline.
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = a.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write that cannot finish before its deadline: %v; want os.ErrDeadlineExceeded", err)
	}

	// A reader waiting when the connection is closed returns net.ErrClosed.
	errc := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 10))
		for err == nil { // drain what a sent above
			_, err = b.Read(make([]byte, 1<<20))
		}
		errc <- err
	}()
	b.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v; want net.ErrClosed", err)
	}
}

// TestSockConnPeerGone: writing to a connection whose peer has gone fails
// with an error (EPIPE or ECONNRESET), not a signal that ends the process.
func TestSockConnPeerGone(t *testing.T) {
	a, b := socketPair(t, "unix")
	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = a.Write(make([]byte, 64<<10))
	}
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write to a connection whose peer closed: %v; want EPIPE or ECONNRESET", err)
	}
}
