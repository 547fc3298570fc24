package nbd

import (
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// TestIdleTimeout: a connection that sends nothing for IdleTimeout is
// closed (a peer whose link died without a word), while one that keeps
// sending requests stays.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	ts := startServer(t, "unix", ServerOptions{IdleTimeout: idle}, Export{Name: "x", Dev: blockdev.NewMem(1 << 20)})
	quiet := ts.dial(t, ClientOptions{Export: "x"})
	busy := ts.dial(t, ClientOptions{Export: "x"})
	waitFor(t, "both clients attached", func() bool { return ts.Clients("x") == 2 })
	deadline := time.Now().Add(testWait)
	for ts.Clients("x") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the idle client was not dropped: %d clients", ts.Clients("x"))
		}
		if err := busy.Flush(); err != nil {
			t.Fatalf("the busy client was dropped: %v", err)
		}
		time.Sleep(idle / 4)
	}
	select {
	case <-quiet.Done():
	case <-time.After(testWait):
		t.Fatal("the idle client's connection did not end")
	}
	// The busy one outlives several idle periods.
	for range 8 {
		if err := busy.Flush(); err != nil {
			t.Fatalf("the busy client was dropped: %v", err)
		}
		time.Sleep(idle / 4)
	}
}
