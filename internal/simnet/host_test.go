package simnet

import (
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestPause: a paused host gets nothing and delivers nothing; what it
// had sent and what is sent to it is delivered on Resume, in order. A
// dial to it connects (its kernel answers) but is accepted on Resume.
func TestPause(t *testing.T) {
	n := New(Options{})
	lb := listen(t, n.Host("b"))
	ca, cb := connect(t, n.Host("a"), lb)
	write(t, cb, []byte("before "))
	n.Host("b").Pause()
	write(t, ca, []byte("to b"))
	write(t, cb, []byte("during")) // its process's goroutines run on
	expectRead(t, ca, []byte("before "))
	expectSilence(t, ca)
	expectSilence(t, cb)

	d, err := n.Host("a").Dial(context.Background(), "tcp", "b:7789")
	if err != nil {
		t.Fatalf("dial a paused host: %v", err)
	}
	defer d.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := lb.Accept()
		accepted <- c
	}()
	select {
	case <-accepted:
		t.Fatal("a paused host accepted")
	case <-time.After(quiet):
	}

	// A paused host's dials wait.
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	la := listen(t, n.Host("a"))
	_, err = n.Host("b").Dial(ctx, "tcp", la.Addr().String())
	expectErr(t, "dial from a paused host", err, context.DeadlineExceeded)

	n.Host("b").Resume()
	expectRead(t, cb, []byte("to b"))
	expectRead(t, ca, []byte("during"))
	c := <-accepted
	if c == nil {
		t.Fatal("accept after Resume failed")
	}
	c.Close()
}

// TestCrash: a crashed host's peers hear nothing: what had arrived is
// read, then reads wait and writes fill the buffer. Its own calls fail.
// Once restarted, a peer that sends on an old connection is reset, and
// new connections work.
func TestCrash(t *testing.T) {
	n := New(Options{BufferBytes: 8})
	b := n.Host("b")
	lb := listen(t, b)
	ca, cb := connect(t, n.Host("a"), lb)
	idle, idleB := connect(t, n.Host("a"), lb)
	write(t, cb, []byte("arrived"))
	accepting := make(chan error, 1)
	go func() {
		_, err := lb.Accept()
		accepting <- err
	}()
	b.Crash()

	expectErr(t, "accept on a crashed host", <-accepting, ErrHostDown)
	_, err := cb.Read(make([]byte, 1))
	expectErr(t, "read on a crashed host", err, ErrHostDown)
	_, err = idleB.Write([]byte("x"))
	expectErr(t, "write on a crashed host", err, ErrHostDown)
	_, err = b.Listen("tcp", ":1")
	expectErr(t, "listen on a crashed host", err, ErrHostDown)
	_, err = b.Dial(context.Background(), "tcp", "a:1")
	expectErr(t, "dial from a crashed host", err, ErrHostDown)

	expectRead(t, ca, []byte("arrived"))
	expectSilence(t, ca)
	write(t, ca, []byte("12345678"))
	ca.SetWriteDeadline(time.Now().Add(quiet))
	if _, err := ca.Write([]byte("9")); !isTimeout(err) {
		t.Fatalf("write to a crashed host with a full buffer: %v, want a time-out", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	_, err = n.Host("a").Dial(ctx, "tcp", "b:7789")
	expectErr(t, "dial a crashed host", err, context.DeadlineExceeded)

	b.Restart()
	// ca had bytes for the old process: the new machine resets it. idle
	// had none: it hears nothing until it sends.
	expectReadErr(t, ca, syscall.ECONNRESET)
	expectSilence(t, idle)
	_, err = idle.Write([]byte("x"))
	expectErr(t, "write to a restarted host on an old connection", err, syscall.ECONNRESET)
	_, err = n.Host("a").Dial(context.Background(), "tcp", "b:7789")
	expectErr(t, "dial a restarted host before it listens", err, syscall.ECONNREFUSED)
	lb2 := listen(t, b)
	ca2, cb2 := connect(t, n.Host("a"), lb2)
	write(t, ca2, []byte("new"))
	expectRead(t, cb2, []byte("new"))
}

// TestCrashLosesInFlight: what a host sent that had not arrived when it
// crashed never arrives.
func TestCrashLosesInFlight(t *testing.T) {
	n, ca, cb := pair(t, Options{})
	n.Partition("a", "b")
	write(t, cb, []byte("in flight"))
	n.Host("b").Crash()
	n.Heal("a", "b")
	expectSilence(t, ca)
	_, err := cb.Write([]byte("x"))
	expectErr(t, "write by the crashed process", err, ErrHostDown)
}

// TestDialWaitsForCrashedHost: a dial pending on a crashed host connects
// once it is back and listening, as a retransmitted SYN would.
func TestDialWaitsForCrashedHost(t *testing.T) {
	n := New(Options{})
	b := n.Host("b")
	b.Crash()
	done := pendingDial(t, n.Host("a"), "b:7789")
	// Behind a partition, so that the dial cannot look between Restart
	// and Listen (it would be refused, as a rebooted machine refuses).
	n.Partition("a", "b")
	b.Restart()
	listen(t, b)
	n.Heal("a", "b")
	if err := <-done; err != nil {
		t.Fatalf("dial pending while the host came back: %v", err)
	}

	f := New(Options{FailDials: true})
	f.Host("b").Crash()
	_, err := f.Host("a").Dial(context.Background(), "tcp", "b:7789")
	expectErr(t, "dial a crashed host with FailDials", err, syscall.EHOSTUNREACH)
}

// TestKill: a killed process's machine closes its connections: peers read
// what it sent, then EOF; a peer whose bytes it left unread is reset.
// Dials to it are refused; its own calls fail; Restart brings it back.
func TestKill(t *testing.T) {
	n := New(Options{})
	b := n.Host("b")
	lb := listen(t, b)
	ca, cb := connect(t, n.Host("a"), lb)
	unread, _ := connect(t, n.Host("a"), lb)
	write(t, cb, []byte("last words"))
	write(t, unread, []byte("never read"))
	b.Kill()

	expectRead(t, ca, []byte("last words"))
	expectReadErr(t, ca, io.EOF)
	expectReadErr(t, unread, syscall.ECONNRESET)
	_, err := cb.Read(make([]byte, 1))
	expectErr(t, "read by a killed process", err, ErrHostDown)
	_, err = lb.Accept()
	expectErr(t, "accept by a killed process", err, ErrHostDown)
	_, err = n.Host("a").Dial(context.Background(), "tcp", "b:7789")
	expectErr(t, "dial a killed host", err, syscall.ECONNREFUSED)
	if b.Up() {
		t.Fatal("a killed host reports itself up")
	}

	b.Restart()
	if !b.Up() {
		t.Fatal("a restarted host reports itself down")
	}
	lb2 := listen(t, b)
	ca2, cb2 := connect(t, n.Host("a"), lb2)
	write(t, cb2, []byte("again"))
	expectRead(t, ca2, []byte("again"))
}

// TestKillAcrossPartition: the FIN of a killed process waits for the
// partition to heal.
func TestKillAcrossPartition(t *testing.T) {
	n, ca, cb := pair(t, Options{})
	write(t, cb, []byte("sent"))
	n.Partition("a", "b")
	write(t, cb, []byte(" held"))
	n.Host("b").Kill()
	expectRead(t, ca, []byte("sent"))
	expectSilence(t, ca)
	n.Heal("a", "b")
	expectRead(t, ca, []byte(" held"))
	expectReadErr(t, ca, io.EOF)
}

// TestOnConn: the hook sees each connection before either end uses it,
// and may fault it and call the network.
func TestOnConn(t *testing.T) {
	var n *Network
	var seen []*Conn
	n = New(Options{OnConn: func(c *Conn) {
		seen = append(seen, c)
		if l := n.Conns(c.Dialer(), c.Acceptor()); len(l) != 1 || l[0] != c {
			t.Errorf("Conns in the hook of connection %d: %v", c.ID(), l)
		}
		if c.Dialer() == "a" {
			c.Partition()
		}
	}})
	lb := listen(t, n.Host("b"))
	ca, cb := connect(t, n.Host("a"), lb)
	cc, cbc := connect(t, n.Host("c"), lb)
	if len(seen) != 2 || seen[0].Dialer() != "a" || seen[0].Acceptor() != "b" || seen[1].Dialer() != "c" {
		t.Fatalf("hook saw %v", seen)
	}
	if c, ok := ConnOf(ca); !ok || c != seen[0] || seen[0].DialerAddr() != ca.LocalAddr() || seen[0].AcceptorAddr() != cb.LocalAddr() {
		t.Fatalf("ConnOf(a's end) = %v, %v; hook saw %v", c, ok, seen[0])
	}
	write(t, ca, []byte("held"))
	write(t, cc, []byte("passes"))
	expectRead(t, cbc, []byte("passes"))
	expectSilence(t, cb)
	seen[0].Heal()
	expectRead(t, cb, []byte("held"))
}

// TestOnConnReset: a connection the hook resets fails its Dial.
func TestOnConnReset(t *testing.T) {
	n := New(Options{OnConn: func(c *Conn) { c.Reset() }})
	listen(t, n.Host("b"))
	_, err := n.Host("a").Dial(context.Background(), "tcp", "b:7789")
	expectErr(t, "dial of a connection reset by the hook", err, syscall.ECONNRESET)
}

// TestHealAll ends partitions, delays and pauses at once.
func TestHealAll(t *testing.T) {
	n, ca, cb := pair(t, Options{})
	n.Partition("a", "b")
	n.Conns("a", "b")[0].Partition()
	n.Host("b").Pause()
	write(t, ca, []byte("held"))
	expectSilence(t, cb)
	n.HealAll()
	expectRead(t, cb, []byte("held"))
}
