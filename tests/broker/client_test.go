package broker

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func dial(t *testing.T, addr string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSendWaitsForReceipt(t *testing.T) {
	gotSend, release := make(chan frame, 1), make(chan struct{})
	addr := scripted(t, func(p *peer) {
		if !p.accept() {
			return
		}
		f, ok := p.expect("SEND")
		if !ok {
			return
		}
		gotSend <- f
		<-release
		p.receipt(f)
	})
	c := dial(t, addr)
	if c.Server() != "fake/1" {
		t.Errorf("Server() = %q", c.Server())
	}
	sent := make(chan error, 1)
	go func() { sent <- c.Send("q", []byte("body\x00with NUL")) }()
	f := <-gotSend
	for name, want := range map[string]string{
		"destination": "/queue/q", "persistent": "true", "content-length": "13",
	} {
		if got := f.value(name); got != want {
			t.Errorf("SEND %s = %q, want %q", name, got, want)
		}
	}
	if string(f.body) != "body\x00with NUL" {
		t.Errorf("SEND body %q", f.body)
	}
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v before the receipt", err)
	default:
	}
	close(release)
	if err := <-sent; err != nil {
		t.Fatalf("Send: %v", err)
	}
}

// TestSendAsyncPipelines: several SENDs go out before any receipt comes,
// and each AwaitReceipt returns only once its own receipt arrived.
func TestSendAsyncPipelines(t *testing.T) {
	const n = 3
	release := make(chan struct{})
	addr := scripted(t, func(p *peer) {
		if !p.accept() {
			return
		}
		var sends []frame
		for range n {
			f, ok := p.expect("SEND")
			if !ok {
				return
			}
			sends = append(sends, f)
		}
		p.receipt(sends[0])
		<-release
		for _, f := range sends[1:] {
			p.receipt(f)
		}
	})
	c := dial(t, addr)
	var ids []string
	for i := range n {
		id, err := c.SendAsync("q", Body(i, 0))
		if err != nil {
			t.Fatalf("SendAsync %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	if err := c.AwaitReceipt(ids[0]); err != nil {
		t.Fatalf("AwaitReceipt(%s): %v", ids[0], err)
	}
	got := make(chan error, 1)
	go func() { got <- c.AwaitReceipt(ids[1]) }()
	select {
	case err := <-got:
		t.Fatalf("AwaitReceipt(%s) returned %v before its receipt was sent", ids[1], err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-got; err != nil {
		t.Fatalf("AwaitReceipt(%s): %v", ids[1], err)
	}
	if err := c.AwaitReceipt(ids[2]); err != nil {
		t.Fatalf("AwaitReceipt(%s): %v", ids[2], err)
	}
}

// TestAwaitReceiptOutOfOrder: waiting for a later receipt first fails the
// connection with a protocol error, as receipts come in order.
func TestAwaitReceiptOutOfOrder(t *testing.T) {
	addr := scripted(t, func(p *peer) {
		if !p.accept() {
			return
		}
		// Both sends, then the first one's receipt only: the client,
		// awaiting the second's, gives up on the connection, so that a
		// second receipt would race its close.
		first, ok := p.expect("SEND")
		if !ok {
			return
		}
		if _, ok := p.expect("SEND"); !ok {
			return
		}
		p.receipt(first)
	})
	c := dial(t, addr)
	if _, err := c.SendAsync("q", Body(0, 0)); err != nil {
		t.Fatal(err)
	}
	second, err := c.SendAsync("q", Body(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AwaitReceipt(second); !errors.Is(err, ErrProtocol) {
		t.Fatalf("AwaitReceipt out of order = %v, want ErrProtocol", err)
	}
}

func TestMessagesArrivingBeforeReceiptAreKept(t *testing.T) {
	addr := scripted(t, func(p *peer) {
		if !p.accept() {
			return
		}
		f, ok := p.expect("SEND")
		if !ok {
			return
		}
		p.message("a1", []byte("one"))
		p.message("a2", []byte("two"))
		p.receipt(f)
		if f, ok := p.expect("ACK"); ok && f.value("id") != "a1" {
			t.Errorf("ACK id %q, want a1", f.value("id"))
		}
	})
	c := dial(t, addr)
	if err := c.Send("q", nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two"} {
		m, err := c.Receive(time.Millisecond)
		if err != nil || string(m.Body) != want {
			t.Fatalf("Receive = %q, %v; want %q", m.Body, err, want)
		}
		if want == "one" {
			if m.Ack != "a1" || m.ID != "m-a1" || m.Destination != "/queue/q" || m.Subscription != "sub-1" {
				t.Errorf("message fields %+v", m)
			}
			if err := c.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestReceiveTimeoutKeepsConnection(t *testing.T) {
	timedOut := make(chan struct{})
	addr := scripted(t, func(p *peer) {
		if !p.accept() {
			return
		}
		<-timedOut
		p.send("MESSAGE", "ack", "x", "content-length", "0")
	})
	c := dial(t, addr)
	if _, err := c.Receive(20 * time.Millisecond); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("Receive on an idle connection: %v, want ErrNoMessage", err)
	}
	close(timedOut)
	m, err := c.Receive(10 * time.Second)
	if err != nil || m.Ack != "x" {
		t.Fatalf("Receive after a time-out: %+v, %v", m, err)
	}
}

func TestHeartBeatsBeforeMessage(t *testing.T) {
	addr := scripted(t, func(p *peer) {
		if p.accept() {
			p.conn.Write([]byte("\n\r\n\n"))
			p.message("h", []byte("after heart-beats"))
		}
	})
	c := dial(t, addr)
	m, err := c.Receive(10 * time.Second)
	if err != nil || string(m.Body) != "after heart-beats" {
		t.Fatalf("Receive: %q, %v", m.Body, err)
	}
}

func TestServerErrorIsSticky(t *testing.T) {
	addr := scripted(t, func(p *peer) {
		if !p.accept() {
			return
		}
		if f, ok := p.expect("SEND"); ok {
			p.send("ERROR", "message", "no such queue", "receipt-id", f.value("receipt"))
		}
	})
	c := dial(t, addr)
	err := c.Send("q", []byte("x"))
	var se *ServerError
	if !errors.As(err, &se) || se.Message != "no such queue" || se.ReceiptID == "" {
		t.Fatalf("Send: %v, want a ServerError with its receipt", err)
	}
	if err2 := c.Send("q", []byte("y")); !errors.As(err2, &se) {
		t.Fatalf("second Send: %v, want the same ServerError", err2)
	}
	if _, err := c.Receive(time.Second); !errors.As(err, &se) {
		t.Fatalf("Receive after an ERROR: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close of a failed client: %v", err)
	}
}

func TestReceiptMismatchIsProtocolError(t *testing.T) {
	addr := scripted(t, func(p *peer) {
		if !p.accept() {
			return
		}
		if _, ok := p.expect("SEND"); ok {
			p.send("RECEIPT", "receipt-id", "someone-else")
		}
	})
	c := dial(t, addr)
	if err := c.Send("q", nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Send: %v, want ErrProtocol", err)
	}
}

func TestConnectionLostBeforeReceipt(t *testing.T) {
	addr := scripted(t, func(p *peer) {
		if !p.accept() {
			return
		}
		p.expect("SEND")
		p.conn.Close()
	})
	c := dial(t, addr)
	err := c.Send("q", []byte("x"))
	if err == nil {
		t.Fatal("Send returned nil although no receipt came")
	}
	if err2 := c.Send("q", []byte("y")); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second Send: %v, want the first failure %v", err2, err)
	}
}

func TestSubscribeAckClose(t *testing.T) {
	acked := make(chan string, 1)
	addr := scripted(t, func(p *peer) {
		if !p.accept() {
			return
		}
		f, ok := p.expect("SUBSCRIBE")
		if !ok {
			return
		}
		if f.value("ack") != "client-individual" || f.value("destination") != "/queue/jobs" || f.value("id") == "" {
			t.Errorf("SUBSCRIBE headers %q", f.headers)
		}
		p.receipt(f)
		p.message("ack-7", []byte("m"))
		if f, ok := p.expect("ACK"); ok {
			acked <- f.value("id")
		}
		if f, ok := p.expect("DISCONNECT"); ok {
			p.receipt(f)
		}
	})
	c := dial(t, addr)
	if err := c.Subscribe("jobs"); err != nil {
		t.Fatal(err)
	}
	m, err := c.Receive(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(m); err != nil {
		t.Fatal(err)
	}
	if id := <-acked; id != "ack-7" {
		t.Fatalf("ACK id %q, want ack-7", id)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.Send("jobs", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if err := c.Ack(Message{ID: "z"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v, want ErrClosed", err)
	}
}

func TestAckNeedsAckHeader(t *testing.T) {
	addr := scripted(t, func(p *peer) { p.accept() })
	c := dial(t, addr)
	if err := c.Ack(Message{ID: "m"}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Ack without an ack header: %v, want ErrProtocol", err)
	}
}

func TestDialRefusesOldStomp(t *testing.T) {
	addr := scripted(t, func(p *peer) {
		if _, ok := p.expect("CONNECT"); ok {
			p.send("CONNECTED", "version", "1.0")
		}
	})
	if _, err := Dial(context.Background(), addr); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Dial: %v, want ErrProtocol", err)
	}
}

func TestDialHonoursContext(t *testing.T) {
	addr := scripted(t, func(p *peer) {
		if _, ok := p.expect("CONNECT"); ok {
			p.r.ReadByte() // never answers; waits for the client to hang up
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, addr); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial: %v, want context.DeadlineExceeded", err)
	}
}

func TestDialRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := Dial(context.Background(), addr); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
}

func TestEndpointNetnsNeedsIP(t *testing.T) {
	_, err := Endpoint{Addr: "localhost:1", Netns: "x"}.Dial(context.Background())
	if err == nil {
		t.Fatal("dialling a host name from a namespace was accepted")
	}
}
