package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// TestMaxConnectionsDisplacesHandshakes: when every connection is taken
// by clients that never finish their handshake, a new client displaces
// the oldest of them and is served.
func TestMaxConnectionsDisplacesHandshakes(t *testing.T) {
	const max = 4
	ts := startServer(t, "unix", ServerOptions{MaxConnections: max}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	var stalled []*raw
	for range max {
		r := ts.raw(t)
		r.read(18) // the greeting, then nothing
		stalled = append(stalled, r)
	}
	waitFor(t, "the stalled connections", func() bool { return ts.Stats().Connections == max })
	for i := range 3 {
		c := ts.dial(t, ClientOptions{Export: "x"})
		if _, err := c.WriteAt(pattern(byte(i), 4096), 0); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		// The oldest stalled connection made room for it.
		stalled[i].expectClosed()
	}
	// A displaced connection is counted until its goroutine has ended,
	// which may be after its client saw it close.
	waitFor(t, "the displaced connections to end", func() bool { return ts.Stats().Connections == max })
	if st := ts.Stats(); st.Refused != 3 {
		t.Fatalf("stats %+v: want 3 displaced", st)
	}
	// The newest stalled one is still there.
	stalled[max-1].write(binary.BigEndian.AppendUint32(nil, clientFixedNewstyle))
	stalled[max-1].option(OptList, nil)
	stalled[max-1].expectReply(OptList, RepServer)
}

// TestMaxConnectionsSparesNegotiating: a connection that keeps
// negotiating is not displaced, though it came first: the newcomer
// displaces the one the server heard from least recently.
func TestMaxConnectionsSparesNegotiating(t *testing.T) {
	const max = 4
	ts := startServer(t, "unix", ServerOptions{MaxConnections: max}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	slow := ts.raw(t) // first in, and slow to negotiate
	slow.read(18)
	var stalled []*raw
	for range max - 1 {
		r := ts.raw(t)
		r.read(18) // the greeting, then nothing
		stalled = append(stalled, r)
	}
	waitFor(t, "the connections", func() bool { return ts.Stats().Connections == max })
	slow.write(binary.BigEndian.AppendUint32(nil, clientFixedNewstyle))
	slow.option(OptList, nil)
	slow.expectReply(OptList, RepServer)
	slow.expectReply(OptList, RepAck)
	c := ts.dial(t, ClientOptions{Export: "x"})
	if _, err := c.WriteAt(pattern(1, 4096), 0); err != nil {
		t.Fatalf("newcomer: %v", err)
	}
	stalled[0].expectClosed()
	slow.option(OptList, nil)
	slow.expectReply(OptList, RepServer)
}

// TestMaxConnectionsFull: with every connection in transmission, a new
// one is closed at once and the others go on.
func TestMaxConnectionsFull(t *testing.T) {
	ts := startServer(t, "unix", ServerOptions{MaxConnections: 2}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	a := ts.dial(t, ClientOptions{Export: "x"})
	b := ts.dial(t, ClientOptions{Export: "x"})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if c, err := Dial(ctx, ts.network, ts.addr, ClientOptions{Export: "x"}); err == nil {
		c.Close()
		t.Fatal("a third client got in")
	}
	if st := ts.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v: want 1 refused", st)
	}
	for _, c := range []*Client{a, b} {
		if err := c.Flush(); err != nil {
			t.Fatalf("a served client after the refusal: %v", err)
		}
	}
	b.Close()
	waitFor(t, "room", func() bool { return ts.Stats().Connections == 1 })
	c := ts.dial(t, ClientOptions{Export: "x"})
	if err := c.Flush(); err != nil {
		t.Fatalf("a client once there is room: %v", err)
	}
}

// TestPayloadTimeout: a client that stops in the middle of a write's
// payload is disconnected, and the partial write is not applied; idle
// time between requests is not limited by it.
func TestPayloadTimeout(t *testing.T) {
	const limit = 200 * time.Millisecond
	mem := blockdev.NewMem(expSize)
	ts := startServer(t, "unix", ServerOptions{PayloadTimeout: limit}, Export{Name: "x", Dev: mem})
	idle := ts.dial(t, ClientOptions{Export: "x"})
	r := ts.raw(t)
	r.open("x", false, false)
	start := time.Now()
	r.request(CmdWrite, 0, 1, 0, 4096, bytes.Repeat([]byte{0xAA}, 100))
	r.expectClosed()
	if waited := time.Since(start); waited < limit {
		t.Fatalf("closed after %v, before the payload time-out", waited)
	}
	if got := make([]byte, 100); func() bool { mem.ReadAt(got, 0); return !bytes.Equal(got, make([]byte, 100)) }() {
		t.Fatal("a partial write was applied")
	}
	// The client that sat idle for longer than the payload time-out is
	// still served.
	if err := idle.Flush(); err != nil {
		t.Fatalf("idle client: %v", err)
	}
}
