package nbd

import (
	"bytes"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

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
