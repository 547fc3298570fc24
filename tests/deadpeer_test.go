package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// TestDeadPeerDetection: with the default --ping-interval and
// --ping-timeout, a secondary whose primary goes silent without a FIN
// (its link cut, or its daemon paused) notices, and 'promote' on it is
// accepted right after; until then promote is refused with when the
// primary was last heard from. The detection time is printed, not
// asserted.
func TestDeadPeerDetection(t *testing.T) {
	requirePair(t)
	t.Run("link-cut", func(t *testing.T) {
		testDeadPeer(t, "the link cut (A's veth down, no FIN)", func(p *harness.Pair) { p.MA.LinkDown(t) })
	})
	t.Run("primary-paused", func(t *testing.T) {
		testDeadPeer(t, "A's daemon stopped with SIGSTOP", func(p *harness.Pair) { p.A.Pause() })
	})
}

func testDeadPeer(t *testing.T, what string, silence func(*harness.Pair)) {
	p := harness.NewPair(t, harness.PairOptions{})
	promoteA(t, p)
	p.B.WaitStatus(30*time.Second, "B sees its primary's link live", linkLive)
	out, err := p.B.Command("promote")
	refusal := checkLiveRefusal(t, out, err, "with the link up")
	t.Logf("promote on B with the link up is refused: %s", refusal)

	silence(p)
	cut := time.Now()
	var aFailed <-chan time.Duration
	if !p.A.Paused() {
		aFailed = watch(p.A, func(s node.Status) bool { return s.Peer != nil && s.Peer.State != "connected" })
	}
	refused, accepted := 0, time.Duration(-1)
	var noticed time.Duration
	var st node.Status
	for {
		st = statusWithin(t, p.B, 5*time.Second)
		if !linkLive(st) {
			noticed = time.Since(cut)
			break
		}
		if time.Since(cut) > time.Minute {
			t.Fatalf("B still shows a live link to its primary %v after %s (peer %+v)\nB's log and goroutines:\n%s",
				time.Since(cut), what, *st.Peer, p.B.Dump())
		}
		// One attempt right after the silence began, then one every
		// half second: each must be refused, saying when the primary
		// was last heard from — or accepted because B has just noticed.
		if refused == 0 || time.Since(cut) > time.Duration(refused)*500*time.Millisecond {
			out, err := p.B.Command("promote")
			if err == nil {
				accepted = time.Since(cut)
				st = statusWithin(t, p.B, 5*time.Second)
				if linkLive(st) {
					t.Fatalf("promote accepted %v after %s while B's status still shows the primary's link live: %s (peer %+v)",
						accepted, what, strings.TrimSpace(out), *st.Peer)
				}
				noticed = accepted
				break
			}
			refusal = checkLiveRefusal(t, out, err, "after "+what)
			refused++
		}
		time.Sleep(50 * time.Millisecond)
	}
	if accepted < 0 {
		out, err := p.B.Command("promote")
		if err != nil {
			t.Fatalf("B noticed its primary gone (%v after %s; peer %+v) but refuses promote: %s",
				noticed, what, *st.Peer, strings.TrimSpace(out))
		}
		accepted = time.Since(cut)
	}
	if refused == 0 {
		t.Logf("no promote attempt fell between %s and B noticing it: the refusal was checked with the link up only", what)
	} else {
		t.Logf("%d promote attempt(s) refused after %s, the last: %s", refused, what, refusal)
	}
	t.Logf("DEAD-PEER DETECTION (%s; defaults --ping-interval %v --ping-timeout %v): B noticed %.2fs after it (peer state %q, last error %q); promote accepted %.2fs after it (%.2fs after B noticed)",
		what, node.DefaultPingInterval, node.DefaultPingTimeout, noticed.Seconds(), st.Peer.State, st.Peer.LastError, accepted.Seconds(), (accepted - noticed).Seconds())
	if st := statusWithin(t, p.B, 5*time.Second); st.Role != "primary" {
		t.Fatalf("promote was accepted but B is %s", st.Role)
	}
	if aFailed == nil {
		return
	}
	d := <-aFailed
	if d < 0 {
		t.Fatalf("A, the primary, still shows its link connected a minute after %s", what)
	}
	st = statusWithin(t, p.A, 5*time.Second)
	t.Logf("A, the primary, showed its link failed %.2fs after %s (peer state %q, last error %q)",
		d.Seconds(), what, st.Peer.State, st.Peer.LastError)
}

// watch polls a node's status every 50ms, from now until cond holds, and
// then sends how long that took; -1 if it did not within a minute.
func watch(n *harness.Node, cond func(node.Status) bool) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		for time.Since(start) < time.Minute {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := node.NewClient(n.Control).Status(ctx)
			cancel()
			if err == nil && cond(st) {
				out <- time.Since(start)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		out <- -1
	}()
	return out
}

// linkLive reports whether a secondary's status shows its primary's
// link open.
func linkLive(st node.Status) bool {
	return st.Peer != nil && (st.Peer.State == "connected" || st.Peer.LastHeard > 0)
}

// checkLiveRefusal fails the test unless promote was refused with a
// message saying when the primary was last heard from; it returns that
// message.
func checkLiveRefusal(t *testing.T, out string, err error, when string) string {
	t.Helper()
	out = strings.TrimSpace(out)
	if err == nil {
		t.Fatalf("promote on the secondary %s was accepted: %s", when, out)
	}
	if !strings.Contains(out, "last heard") {
		t.Fatalf("promote on the secondary %s was refused without saying when the primary was last heard from: %s", when, out)
	}
	return out
}

// statusWithin asks a node for its status through the control API and
// fails the test if it does not answer within d.
func statusWithin(t *testing.T, n *harness.Node, d time.Duration) node.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	st, err := node.NewClient(n.Control).Status(ctx)
	if err != nil {
		t.Fatalf("%s: status did not answer within %v: %v\nlog and goroutines:\n%s", n.Name, d, err, n.Dump())
	}
	return st
}
