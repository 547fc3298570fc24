package tests

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
	"github.com/netraid/netraid/tests/promoter"
)

// TestBrokerAutoFailover is the failover nobody types: a fenced pair
// (three etcd members) whose promoter commands mount the volume and
// start ActiveMQ on whichever node becomes primary, and stop it and
// unmount before it stops being primary. Producers send persistent
// messages to the primary's broker; its machine dies (netraid, the
// off its link and the witness's network, then netraid, the broker and nbdfuse killed with kill -9). The secondary
// promotes itself, its promoter mounts the volume and starts ActiveMQ, a
// producer reconnecting to it gets a message acknowledged, and every
// message acknowledged before the death is consumed there. A clean stop
// of the survivor runs its on-demote commands: the broker stops, the
// volume is unmounted and detached.
func TestBrokerAutoFailover(t *testing.T) {
	requireFS(t)
	requireWitness(t)
	harness.RequireRoot(t, "nsenter", "start-stop-daemon", "findmnt", "flock", "blkid")
	if err := broker.Available(); err != nil {
		t.Skipf("%v (run ./scripts/deps.sh --broker)", err)
	}
	p := harness.NewPair(t, harness.PairOptions{NoStart: true, DiskSize: 192 << 20})
	w := harness.NewWitness(t, harness.WitnessOptions{Members: 3}, p.MA, p.MB)
	p.A.Args = append(p.A.Args, "--etcd", w.Endpoints(p.MA))
	p.B.Args = append(p.B.Args, "--etcd", w.Endpoints(p.MB))
	svc := map[*harness.Node]*promoter.Services{
		p.A: promoter.Setup(t, p.A, p.File("a-services")),
		p.B: promoter.Setup(t, p.B, p.File("b-services")),
	}
	p.Start()
	fp := &fencedPair{Pair: p, W: w}
	prim := fp.waitInSync(t, 3*time.Minute)
	sec := fp.other(prim)
	ps, ss := svc[prim], svc[sec]
	took := ps.WaitBroker(3 * time.Minute)
	t.Logf("%s promoted itself; its promoter mounted %s from %s and started ActiveMQ (answering %v later)", prim.Name, ps.Mount, ps.Mounted(), took.Round(time.Millisecond))

	prod, err := broker.StartProducer(context.Background(), broker.ProducerOptions{
		Endpoint: ps.Broker, Queue: brokerQueue, Count: 1_000_000, Duration: 3 * time.Minute, Size: 1024, Conns: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Stop() })
	waitAcked(t, prod, 1000, "before the primary dies")

	at := len(prod.Acked())
	start := ps.Die(w)
	t.Logf("%d acknowledged; machine %s died (off its link and the witness's network; netraid, broker and nbdfuse killed)", at, prim.Name)
	rep := prod.Wait()
	if rep.Err == nil {
		t.Fatal("the producers saw no error although the broker's machine died")
	}
	t.Logf("acknowledged: %d, unanswered: %d: %v", len(rep.Acked), len(rep.Unknown), rep.Err)

	// Nobody promotes: a producer comes back to the survivor's broker.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seq := 2_000_000 // beyond the producers' numbers
	ackedAt, err := promoter.FirstAck(ctx, ss.Broker, brokerQueue, seq, 1024)
	if err != nil {
		st, _ := sec.Status()
		t.Fatalf("%s: %v\nits failover status: %+v\nits log:\n%s", sec.Name, err, st.Failover, sec.Tail())
	}
	t.Logf("FAILOVER: kill → first message acknowledged on the survivor: %.1f s", ackedAt.Sub(start).Seconds())
	st := sec.WaitStatus(10*time.Second, "the survivor primary", func(s node.Status) bool { return s.Role == "primary" })
	if st.Failover == nil || st.Failover.Mode != "etcd" || st.Failover.LastFailover == "" {
		t.Fatalf("the survivor's failover status: %+v", st.Failover)
	}
	t.Logf("%s says it promoted itself at %s, %.1f s after it found its primary gone (on-promote commands included)",
		sec.Name, st.Failover.LastFailover, st.Failover.FailoverSeconds)
	if ss.Mounted() == "" {
		t.Fatalf("the survivor's broker answers but %s is not mounted", ss.Mount)
	}

	rep.Acked = append(rep.Acked, seq)
	slices.Sort(rep.Acked)
	dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer dcancel()
	got, err := broker.DrainAll(dctx, ss.Broker, brokerQueue, 5*time.Second)
	if err != nil {
		t.Fatalf("draining on %s after %d messages: %v", sec.Name, len(got), err)
	}
	checkDelivery(t, rep, got)

	// A clean stop (systemctl stop netraid) runs the on-demote commands.
	sec.Stop()
	if pid := ss.BrokerPid(); pid != 0 {
		t.Errorf("the broker (pid %d) still runs after %s stopped", pid, sec.Name)
	}
	if pid := ss.FusePid(); pid != 0 {
		t.Errorf("nbdfuse (pid %d) still runs after %s stopped", pid, sec.Name)
	}
	if dev := ss.Mounted(); dev != "" {
		t.Errorf("%s is still mounted from %s after %s stopped", ss.Mount, dev, sec.Name)
	}
}
