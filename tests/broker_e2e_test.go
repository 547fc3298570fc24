package tests

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
)

const brokerQueue = "netraid.e2e"

// TestBrokerFailover is the whole story under load: an unmodified
// ActiveMQ keeps its KahaDB store on a netraid volume mounted on machine
// A. Producers send persistent messages without pause while a disk of A
// fails (the broker keeps acknowledging) and while machine A dies
// outright. B is promoted, mounts the volume and starts ActiveMQ on the
// same store: every message the broker acknowledged is consumed there
// (redeliveries allowed, losses not), nothing arrives that was never
// sent, and e2fsck finds the filesystem clean.
func TestBrokerFailover(t *testing.T) {
	requireFS(t)
	if err := broker.Available(); err != nil {
		t.Skipf("%v (run ./scripts/deps.sh --broker)", err)
	}
	p := harness.NewPair(t, harness.PairOptions{DiskSize: 192 << 20})
	promoteA(t, p)
	ma := harness.MountNBD(t, p.File("ma"), p.A.URI("vol"), true)
	ba := startBrokerOn(t, p.MA, ma, p.File("broker-a"))

	prod, err := broker.StartProducer(context.Background(), broker.ProducerOptions{
		Endpoint: ba.Endpoint(), Queue: brokerQueue, Count: 1_000_000, Duration: 2 * time.Minute, Size: 1024, Conns: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Stop() })
	waitAcked(t, prod, 500, "before the disk fails")

	// A disk of A fails while messages flow; the volume is served through
	// B and the broker keeps acknowledging.
	atFail := len(prod.Acked())
	t.Logf("%d acknowledged; failing %s on a", atFail, p.A.Disks[0])
	t.Logf("%s", p.A.CLI("disk", "fail", p.A.Disks[0]))
	p.A.WaitStatus(30*time.Second, "the local leg failed", func(s node.Status) bool { return legState(s, "local") == "failed" })
	waitAcked(t, prod, atFail+1000, "after the disk failed")

	// Machine A dies while messages flow: its netraid, its broker, its
	// nbdfuse, its link.
	atKill := len(prod.Acked())
	t.Logf("%d acknowledged; machine a dies", atKill)
	p.A.Kill()
	ba.Kill()
	ma.Crash()
	p.MA.LinkDown(t)
	rep := prod.Wait()
	if rep.Err == nil {
		t.Fatal("the producers saw no error although the broker's machine died")
	}
	t.Logf("sent and acknowledged: %d (%d after the disk failed, %d in flight as a died, unanswered): %v",
		len(rep.Acked), len(rep.Acked)-atFail, len(rep.Unknown), rep.Err)

	// B takes over.
	t.Logf("promote b: %s", p.B.CLI("promote"))
	mb := harness.MountNBD(t, p.File("mb"), p.B.URI("vol"), false)
	bb := startBrokerOn(t, p.MB, mb, p.File("broker-b"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := broker.DrainAll(ctx, bb.Endpoint(), brokerQueue, 5*time.Second)
	if err != nil {
		t.Fatalf("draining on b after %d messages: %v", len(got), err)
	}
	checkDelivery(t, rep, got)
	if err := bb.Stop(); err != nil {
		t.Fatal(err)
	}
	mb.UnmountAndCheck()
}

// startBrokerOn starts ActiveMQ inside machine m with its store on the
// mount and its configuration and logs in work (not on the mount).
func startBrokerOn(t *testing.T, m *harness.Machine, mnt *harness.Mount, work string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(t, broker.Options{DataDir: filepath.Join(mnt.Dir, "activemq"), WorkDir: work, Netns: m.Name})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("broker on %s (pid %d) ready in %v", b.Endpoint(), b.Pid(), b.StartupTime().Round(time.Millisecond))
	return b
}

// waitAcked waits until the producers have n messages acknowledged; they
// must not fail meanwhile.
func waitAcked(t *testing.T, p *broker.Producer, n int, when string) {
	t.Helper()
	harness.WaitFor(t, time.Minute, fmt.Sprintf("%d messages acknowledged %s", n, when), func() bool {
		select {
		case <-p.Done():
			r := p.Wait()
			t.Fatalf("the producers stopped %s with %d acknowledged: %v", when, len(r.Acked), r.Err)
		default:
		}
		return len(p.Acked()) >= n
	})
}

// checkDelivery fails the test if an acknowledged message was not
// received, or a message was received that was never sent.
func checkDelivery(t *testing.T, rep broker.Report, got map[int]int) {
	t.Helper()
	dups, fromFlight := 0, 0
	for seq, n := range got {
		dups += n - 1
		_, acked := slices.BinarySearch(rep.Acked, seq)
		_, unknown := slices.BinarySearch(rep.Unknown, seq)
		switch {
		case unknown:
			fromFlight++
		case !acked:
			t.Errorf("received message %d, which was never sent", seq)
		}
	}
	lost := broker.Lost(rep.Acked, got)
	t.Logf("received %d distinct messages (%d redelivered, %d of the %d unanswered); lost %d of %d acknowledged",
		len(got), dups, fromFlight, len(rep.Unknown), len(lost), len(rep.Acked))
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged messages lost, first %v", len(lost), lost[:min(len(lost), 20)])
	}
}
