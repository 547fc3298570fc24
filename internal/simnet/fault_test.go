package simnet

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestPartition: what arrived before stays readable; what is sent across
// the partition waits in the sender's buffer, which blocks when full;
// healing delivers it all, in order.
func TestPartition(t *testing.T) {
	n, ca, cb := pair(t, Options{BufferBytes: 10})
	write(t, ca, []byte("early"))
	n.Partition("a", "b")
	write(t, ca, []byte("late"))
	write(t, cb, []byte("reply"))
	expectRead(t, cb, []byte("early"))
	expectSilence(t, cb)
	expectSilence(t, ca)

	ca.SetWriteDeadline(time.Now().Add(quiet))
	k, err := ca.Write([]byte("0123456789"))
	if k != 6 || !isTimeout(err) {
		t.Fatalf("write across a partition into 6 bytes of room: %d, %v", k, err)
	}
	n.Heal("a", "b")
	expectRead(t, cb, []byte("late012345"))
	expectRead(t, ca, []byte("reply"))
}

// TestPartitionHoldsClose: a FIN waits behind a partition like bytes.
func TestPartitionHoldsClose(t *testing.T) {
	n, ca, cb := pair(t, Options{})
	n.Partition("b", "a")
	write(t, ca, []byte("bye"))
	ca.Close()
	expectSilence(t, cb)
	n.Heal("a", "b")
	expectRead(t, cb, []byte("bye"))
	expectReadErr(t, cb, io.EOF)
}

func TestPartitionOneWay(t *testing.T) {
	n, ca, cb := pair(t, Options{})
	n.PartitionOneWay("a", "b")
	write(t, ca, []byte("held"))
	write(t, cb, []byte("passes"))
	expectRead(t, ca, []byte("passes"))
	expectSilence(t, cb)
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	_, err := n.Host("b").Dial(ctx, "tcp", "a:1")
	expectErr(t, "dial across a one-way partition", err, context.DeadlineExceeded)
	n.Heal("b", "a")
	expectRead(t, cb, []byte("held"))
}

// TestConnPartition: a partitioned connection holds its bytes, the other
// connections between the same hosts carry theirs.
func TestConnPartition(t *testing.T) {
	n := New(Options{})
	l := listen(t, n.Host("b"))
	ca1, cb1 := connect(t, n.Host("a"), l)
	ca2, cb2 := connect(t, n.Host("a"), l)
	conns := n.Conns("a", "b")
	if len(conns) != 2 || conns[0].ID() != 1 || conns[1].ID() != 2 {
		t.Fatalf("Conns(a, b) = %v", conns)
	}
	conns[0].Partition()
	write(t, ca1, []byte("one"))
	write(t, ca2, []byte("two"))
	expectRead(t, cb2, []byte("two"))
	expectSilence(t, cb1)
	conns[0].Heal()
	expectRead(t, cb1, []byte("one"))
}

func TestDialAcrossPartition(t *testing.T) {
	n := New(Options{})
	listen(t, n.Host("b"))
	n.Partition("a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	_, err := n.Host("a").Dial(ctx, "tcp", "b:7789")
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial across a partition: %v, want the context's deadline, a time-out", err)
	}

	// A dial pending when the partition heals connects, as a SYN
	// retransmitted would.
	done := pendingDial(t, n.Host("a"), "b:7789")
	n.Heal("a", "b")
	if err := <-done; err != nil {
		t.Fatalf("dial pending when the partition healed: %v", err)
	}

	f := New(Options{FailDials: true})
	listen(t, f.Host("b"))
	f.Partition("a", "b")
	_, err = f.Host("a").Dial(context.Background(), "tcp", "b:7789")
	expectErr(t, "dial across a partition with FailDials", err, syscall.EHOSTUNREACH)
}

func TestReset(t *testing.T) {
	n := New(Options{})
	lb, lc := listen(t, n.Host("b")), listen(t, n.Host("c"))
	ca, cb := connect(t, n.Host("a"), lb)
	other, otherEnd := connect(t, n.Host("a"), lc)
	write(t, ca, []byte("lost"))
	errc := make(chan error, 1)
	go func() {
		_, err := ca.Read(make([]byte, 1))
		errc <- err
	}()
	n.Reset("a", "b")
	expectErr(t, "read blocked across a reset", <-errc, errReset)
	expectReadErr(t, cb, errReset)
	_, err := cb.Write([]byte("x"))
	expectErr(t, "write after a reset", err, errReset)
	if c := n.Conns("a", "b"); len(c) != 0 {
		t.Errorf("Conns(a, b) after a reset: %v", c)
	}
	write(t, other, []byte("still"))
	expectRead(t, otherEnd, []byte("still"))

	n.Conns("a", "c")[0].Reset()
	expectReadErr(t, otherEnd, errReset)
	// A new connection works.
	ca, cb = connect(t, n.Host("a"), lb)
	write(t, ca, []byte("new"))
	expectRead(t, cb, []byte("new"))
}

// TestDelay: deliveries come no earlier than the delay after their
// Write, in order; the dial takes a round trip.
func TestDelay(t *testing.T) {
	const d = 40 * time.Millisecond
	n := New(Options{})
	l := listen(t, n.Host("b"))
	n.Delay("a", "b", d)
	start := time.Now()
	ca, cb := connect(t, n.Host("a"), l)
	if e := time.Since(start); e < 2*d {
		t.Fatalf("dial took %v under a delay of %v each way", e, d)
	}
	start = time.Now()
	for _, m := range []string{"one ", "two ", "three"} {
		write(t, ca, []byte(m))
	}
	expectRead(t, cb, []byte("one two three"))
	if e := time.Since(start); e < d {
		t.Fatalf("bytes delivered after %v under a delay of %v", e, d)
	}
	start = time.Now()
	write(t, cb, []byte("back"))
	expectRead(t, ca, []byte("back"))
	if e := time.Since(start); e < d {
		t.Fatalf("bytes delivered back after %v under a delay of %v", e, d)
	}
}

// TestConnDelay: a connection's delay holds its bytes, and a FIFO is
// kept when the delay is lowered: later bytes wait behind earlier ones.
func TestConnDelay(t *testing.T) {
	n, ca, cb := pair(t, Options{})
	c := n.Conns("a", "b")[0]
	c.Delay(time.Hour)
	write(t, ca, []byte("slow"))
	c.Delay(0)
	write(t, ca, []byte("fast"))
	expectSilence(t, cb)
	write(t, cb, []byte("other way"))
	expectRead(t, ca, []byte("other way"))
}
