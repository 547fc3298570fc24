package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
	"github.com/netraid/netraid/witness"
)

// The faults of a pair fenced through a witness: both nodes run with
// --etcd (three members, each machine's path to them cut on its own) and
// fail over by themselves; no trial types 'netraid promote'. Whichever
// node promoted itself first serves the workload.
var witnessFaults = []fault{
	{name: "partition", strike: partition, witness: true},
	{name: "etcd-cut-primary", strike: cutPrimaryFromEtcd, witness: true},
	{name: "etcd-cut-secondary", strike: cutSecondaryFromEtcd, witness: true},
	{name: "isolate-primary", strike: isolatePrimary, witness: true},
	{name: "sigstop-primary", strike: stopPrimary, witness: true},
}

const (
	witnessMembers = 3
	// failoverTimeout bounds a lease ending and what follows from it (a
	// promotion, a self-demotion, a record in the witness): the default
	// lease is 3 s, a lost link is found in a ping interval and time-out,
	// and a call to an unreachable witness times out.
	failoverTimeout = time.Minute
	statusTimeout   = 5 * time.Second // one status call
)

// setUpFenced makes the pair and its witness, starts both nodes with
// --etcd, and waits until one of them has promoted itself, holds the
// election and has synced the other.
func (tr *trial) setUpFenced() {
	s := tr.s
	tr.p = harness.NewPair(s, harness.PairOptions{DiskSize: tr.cfg.DiskSize, NoStart: true})
	tr.w = harness.NewWitness(s, harness.WitnessOptions{Members: witnessMembers}, tr.p.MA, tr.p.MB)
	tr.keepLogs() // after the witness: the nodes die first at cleanup
	tr.p.A.Args = append(tr.p.A.Args, "--etcd", tr.w.Endpoints(tr.p.MA))
	tr.p.B.Args = append(tr.p.B.Args, "--etcd", tr.w.Endpoints(tr.p.MB))
	tr.p.Start()
	tr.prim = tr.waitPrimaryInSync(syncTimeout)
	tr.sec = tr.other(tr.prim)
	st, _ := statusOf(tr.prim)
	tr.logf("%s promoted itself (fencing token %d) and synced %s", tr.prim.Name, st.Failover.Token, tr.sec.Name)
}

// statusOf asks a node for its status, within statusTimeout (a stopped
// daemon does not answer).
func statusOf(nd *harness.Node) (node.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	return node.NewClient(nd.Control).Status(ctx)
}

func (tr *trial) other(nd *harness.Node) *harness.Node {
	if nd == tr.p.A {
		return tr.p.B
	}
	return tr.p.A
}

// waitPrimaryInSync waits until one node is primary, holds the election
// and has its peer in sync, and returns it.
func (tr *trial) waitPrimaryInSync(within time.Duration) *harness.Node {
	deadline := time.Now().Add(within)
	for {
		for _, nd := range []*harness.Node{tr.p.A, tr.p.B} {
			st, err := statusOf(nd)
			if err == nil && synced(st) && holds(st, nd.Name) {
				return nd
			}
		}
		if time.Now().After(deadline) {
			a, _ := statusOf(tr.p.A)
			b, _ := statusOf(tr.p.B)
			tr.s.Fatalf("no node promoted itself and synced the other within %v\na: %s, failover %+v\nb: %s, failover %+v",
				within, progress(a), a.Failover, progress(b), b.Failover)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// oneLine joins the lines of a status's error, for a log line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// holds reports whether the status shows its node holding the election.
func holds(st node.Status, name string) bool {
	return st.Failover != nil && st.Failover.Token != 0 && st.Failover.Holder == name
}

// outdated returns the witness's record of name's copy as outdated, as
// the status shows it, or nil.
func outdated(st node.Status, name string) *node.OutdatedRecord {
	if st.Failover == nil {
		return nil
	}
	for i, r := range st.Failover.Outdated {
		if r.Node == name {
			return &st.Failover.Outdated[i]
		}
	}
	return nil
}

// sameRoles fails the trial unless the primary is still primary with its
// peer connected and the secondary still secondary: nothing failed over.
func (tr *trial) sameRoles(why string) {
	tr.s.Helper()
	p, err := statusOf(tr.prim)
	if err != nil || p.Role != "primary" || p.Peer == nil || p.Peer.State != "connected" {
		tr.s.Fatalf("%s: %s is no longer primary with its peer connected: %s (%v)", why, tr.prim.Name, progress(p), err)
	}
	if st, err := statusOf(tr.sec); err != nil || st.Role != "secondary" {
		tr.s.Fatalf("%s: %s is no longer secondary: role %q (%v), failover %+v", why, tr.sec.Name, st.Role, err, st.Failover)
	}
}

// partition: the link between the nodes goes down while both reach
// etcd. The primary records its peer outdated in the witness and serves
// alone; the secondary, recorded outdated, does not promote itself and
// says why. Healed, the nodes resync and the record is cleared.
func partition(tr *trial) func() {
	m, name := tr.p.MA, tr.p.A.Name
	if tr.rng.IntN(2) == 1 {
		m, name = tr.p.MB, tr.p.B.Name
	}
	tr.res.What = fmt.Sprintf("link of %s down, both reaching etcd: %s recorded outdated; then up", name, tr.sec.Name)
	tr.logf("ip link set %s down  (in %s; both machines reach etcd)", m.Veth, m.Name)
	m.LinkDown(tr.s)
	st := tr.prim.WaitStatus(failoverTimeout, "the peer recorded outdated in the witness", func(st node.Status) bool {
		return peerDown(st) && outdated(st, tr.sec.Name) != nil
	})
	tr.logf("%s recorded %s outdated: %+v", tr.prim.Name, tr.sec.Name, *outdated(st, tr.sec.Name))
	st = tr.sec.WaitStatus(failoverTimeout, "the outdated secondary saying why it does not promote itself", func(st node.Status) bool {
		return st.Role == "secondary" && st.Failover != nil && strings.Contains(st.Failover.Waiting, "outdated")
	})
	tr.logf("%s waits: %s", tr.sec.Name, st.Failover.Waiting)
	tr.moreAcks(tr.hold(), "the primary serves alone, its peer recorded outdated")
	if st, err := statusOf(tr.sec); err != nil || st.Role != "secondary" {
		tr.s.Fatalf("the outdated secondary %s: role %q (%v)", tr.sec.Name, st.Role, err)
	}
	return func() {
		tr.logf("ip link set %s up  (in %s)", m.Veth, m.Name)
		m.LinkUp(tr.s)
		tr.waitInSync()
		tr.prim.WaitStatus(failoverTimeout, "the peer's outdated record cleared", func(st node.Status) bool {
			return st.Failover != nil && st.Failover.Error == "" && outdated(st, tr.sec.Name) == nil
		})
	}
}

// cutPrimaryFromEtcd: the primary's path to etcd is cut for longer than
// its lease. Its peer is in sync, so it goes on serving (the peer cannot
// promote itself while connected); nobody fails over. Healed, it wins
// the election back.
func cutPrimaryFromEtcd(tr *trial) func() {
	a := tr.prim
	tr.res.What = fmt.Sprintf("%s (primary) cut from etcd past its lease, then back", a.Name)
	tr.logf("%s (primary) cut from etcd", a.Name)
	tr.w.CutNode(a.Machine)
	st := a.WaitStatus(failoverTimeout, "the primary's lease ended", func(st node.Status) bool {
		return st.Failover != nil && st.Failover.Token == 0
	})
	tr.logf("%s's lease ended (witness: %s); it serves on with its peer in sync", a.Name, oneLine(st.Failover.Error))
	tr.moreAcks(tr.hold(), "the primary serves without a lease, its peer in sync")
	tr.sameRoles("the primary cut from etcd")
	return func() {
		tr.logf("%s reaches etcd again", a.Name)
		tr.w.HealNode(a.Machine)
		a.WaitStatus(failoverTimeout, "the primary holding the election again", func(st node.Status) bool {
			return holds(st, a.Name) && st.Failover.Error == ""
		})
		tr.waitInSync()
	}
}

// cutSecondaryFromEtcd: the secondary's path to etcd is cut; the data
// path does not notice. Healed, the secondary reaches etcd again.
func cutSecondaryFromEtcd(tr *trial) func() {
	b := tr.sec
	tr.res.What = fmt.Sprintf("%s (secondary) cut from etcd, then back", b.Name)
	tr.logf("%s (secondary) cut from etcd", b.Name)
	tr.w.CutNode(b.Machine)
	st := b.WaitStatus(failoverTimeout, "the secondary finding etcd unreachable", func(st node.Status) bool {
		return st.Failover != nil && st.Failover.Error != ""
	})
	tr.logf("%s: witness error: %s", b.Name, oneLine(st.Failover.Error))
	tr.moreAcks(tr.hold(), "the pair serves, the secondary cut from etcd")
	tr.sameRoles("the secondary cut from etcd")
	return func() {
		tr.logf("%s reaches etcd again", b.Name)
		tr.w.HealNode(b.Machine)
		b.WaitStatus(failoverTimeout, "the secondary reaching etcd again", func(st node.Status) bool {
			return st.Failover != nil && st.Failover.Error == "" && st.Failover.Holder == tr.prim.Name
		})
		tr.waitInSync()
	}
}

// isolatePrimary: the primary is cut from etcd, then from its peer. It
// can neither reach its peer nor record it outdated, so it acknowledges
// nothing more; its lease ends, it demotes itself and fails the writes
// it held; the secondary promotes itself once the lease has expired. The
// workload, whose mount was on the old primary, stops on those errors,
// and moves to the new primary, which serves alone. Healed, the old
// primary discards what it alone holds and rejoins as secondary by
// itself; the check reads through the new primary.
func isolatePrimary(tr *trial) func() {
	a, b := tr.prim, tr.sec
	tr.logf("%s (primary) cut from etcd, then its link down: isolated", a.Name)
	tr.w.CutNode(a.Machine)
	a.Machine.LinkDown(tr.s)
	cut, atCut := time.Now(), tr.chk.Acked()
	st := b.WaitStatus(failoverTimeout, "the secondary promoting itself", func(st node.Status) bool { return st.Role == "primary" })
	tr.res.Failover = time.Since(cut)
	tr.logf("%s promoted itself %v after the cut (it says %.2fs after it found its primary gone), token %d",
		b.Name, tr.res.Failover.Round(time.Millisecond), st.Failover.FailoverSeconds, st.Failover.Token)
	tr.waitDemoted(a)
	after := tr.workloadEnds(a, atCut, "the cut")
	tr.prim, tr.sec = b, a
	tr.moveWorkload()
	tr.res.What = fmt.Sprintf("%s (primary) isolated; %s promoted itself; %s acknowledged %d after the cut; workload moved to %s; healed, %s rejoined",
		a.Name, b.Name, a.Name, after, b.Name, a.Name)
	return func() {
		tr.logf("%s reconnected: link up, etcd reachable", a.Name)
		a.Machine.LinkUp(tr.s)
		tr.w.HealNode(a.Machine)
		tr.discardAfterCrash(a)
		tr.waitInSync()
		tr.rejoined(a)
	}
}

// stopPrimary: the primary's daemon is stopped with SIGSTOP until the
// secondary has promoted itself (its lease expired), and a random while
// longer; then continued. Whatever it held when it stopped is never
// acknowledged as durable unless the new primary holds it: it finds its
// lease gone, demotes itself, fails the writes it held, and rejoins as
// secondary while the workload, moved, runs on the new primary.
func stopPrimary(tr *trial) func() {
	a, b := tr.prim, tr.sec
	tr.logf("kill -STOP %s's netraid (primary)", a.Name)
	a.Pause()
	stopped := time.Now()
	st := b.WaitStatus(failoverTimeout, "the secondary promoting itself", func(st node.Status) bool { return st.Role == "primary" })
	tr.res.Failover = time.Since(stopped)
	tr.logf("%s promoted itself %v after the SIGSTOP (it says %.2fs after it found its primary gone), token %d",
		b.Name, tr.res.Failover.Round(time.Millisecond), st.Failover.FailoverSeconds, st.Failover.Token)
	// How much longer the pause lasts is part of the fault's random shape
	// (resumed while the new primary settles, or well after).
	longer := time.Duration(tr.rng.Int64N(int64(2 * witness.DefaultTTL)))
	tr.logf("%s stays stopped %v longer", a.Name, longer.Round(time.Millisecond))
	time.Sleep(longer)
	before := tr.chk.Acked()
	tr.logf("kill -CONT %s's netraid (%d writes acknowledged)", a.Name, before)
	a.Resume()
	tr.waitDemoted(a)
	after := tr.workloadEnds(a, before, "SIGCONT")
	tr.prim, tr.sec = b, a
	tr.res.What = fmt.Sprintf("%s (primary) SIGSTOP; %s promoted itself; SIGCONT %v later: %s acknowledged %d after; workload moved to %s; %s rejoined",
		a.Name, b.Name, time.Since(stopped).Round(100*time.Millisecond), a.Name, after, b.Name, a.Name)
	tr.moveWorkload()
	return func() {
		tr.discardAfterCrash(a)
		tr.waitInSync()
		tr.rejoined(a)
	}
}

// waitDemoted waits until the old primary, fenced, says it is secondary.
// If its daemon exits instead, that is recorded as the trial's defect
// (its outcome is FAIL whatever the check finds) and the daemon is
// started again, as systemd would (Restart=on-failure): the trial goes
// on to show whether anything was lost and whether it rejoins.
func (tr *trial) waitDemoted(old *harness.Node) {
	tr.s.Helper()
	deadline := time.Now().Add(failoverTimeout)
	restarted := false
	for {
		if !old.Running() && !restarted {
			crash := crashOf(old)
			tr.res.Defect = fmt.Sprintf("%s's daemon exited instead of demoting itself; restarted, as systemd would:\n%s", old.Name, crash)
			tr.logf("DEFECT: %s", tr.res.Defect)
			old.Start()
			restarted = true
		}
		st, err := statusOf(old)
		if err == nil && st.Role == "secondary" {
			tr.logf("%s demoted itself", old.Name)
			return
		}
		if time.Now().After(deadline) {
			tr.s.Fatalf("%s did not demote itself within %v: %s (%v), failover %+v\nlog and goroutines:\n%s",
				old.Name, failoverTimeout, progress(st), err, st.Failover, old.Dump())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// discardAfterCrash is the operator's step that an old primary whose
// daemon crashed instead of demoting itself (waitDemoted) needs: it did
// not record in its superblock that it demoted for fencing, so it
// refuses the new primary as a split brain, rightly for a node that was
// not fenced, until told to discard its changes. It is taken at once,
// so that the trial still checks the data; the trial's outcome is FAIL
// anyway.
func (tr *trial) discardAfterCrash(old *harness.Node) {
	tr.s.Helper()
	if !strings.Contains(tr.res.Defect, "exited instead of demoting itself") {
		return
	}
	tr.logf("$ netraid connect --discard-local  (on %s: the operator's step after its crash)", old.Name)
	old.CLI("connect", "--discard-local")
	tr.res.Defect += fmt.Sprintf("\n%s then refused the new primary as a split brain: 'netraid connect --discard-local' was needed", old.Name)
}

// crashOf returns the end of a dead daemon's log from its last panic
// (its first lines and the stack of the goroutine that panicked), or
// its last lines.
func crashOf(nd *harness.Node) string {
	b, _ := os.ReadFile(nd.Log)
	log := string(b)
	if i := strings.LastIndex(log, "\npanic: "); i >= 0 {
		log = log[i+1:]
	} else if len(log) > 2000 {
		log = log[len(log)-2000:]
	}
	return firstLines(log, 20)
}

// workloadEnds waits for the workload on the old primary's mount to stop
// by itself: each of its writers stops at its first error, and the old
// primary, demoted, fails the writes it held. It fails the trial if more
// writes were acknowledged since `since` acknowledgements than could
// have been in flight then (one per writer), and returns how many were.
// The dead mount is torn down.
func (tr *trial) workloadEnds(old *harness.Node, since int64, what string) int64 {
	tr.s.Helper()
	select {
	case <-tr.chk.Done():
	case <-time.After(stopTimeout):
		tr.s.Fatalf("the workload on %s's mount did not stop within %v of its demotion: a write is still held there (%d acknowledged, %d since %s)",
			old.Name, stopTimeout, tr.chk.Acked(), tr.chk.Acked()-since, what)
	}
	tr.logf("the workload stopped by itself; tearing its mount on %s down", old.Name)
	tr.m.Crash()
	tr.m = nil
	tr.stopWorkload()
	after := tr.rep.Acked - since
	tr.logf("%d writes acknowledged after %s (at most %d could be in flight then)", after, what, checkerWorkers)
	if after > checkerWorkers {
		tr.s.Fatalf("%s acknowledged %d writes after %s, more than the %d that could be in flight: it answered writes it had no right to",
			old.Name, after, what, checkerWorkers)
	}
	return after
}

// moveWorkload does what a promoter does after a failover: it mounts the
// filesystem the old primary left on the new primary (the journal is
// replayed) and starts the workload there on a file of its own, and
// waits until it acknowledges some writes: the new primary serves. The
// check verifies both files.
func (tr *trial) moveWorkload() {
	tr.s.Helper()
	tr.logf("the workload moves to %s (mount, journal replayed)", tr.prim.Name)
	tr.startWorkload()
	tr.moreAcks(tr.hold()/2, "the new primary serves")
}

// rejoined fails the trial unless the old primary is a secondary in sync
// with the new one, with no operator's help.
func (tr *trial) rejoined(old *harness.Node) {
	tr.s.Helper()
	st, err := statusOf(old)
	if err != nil || st.Role != "secondary" || st.DiskState != "up-to-date" {
		tr.s.Fatalf("%s did not rejoin as an up-to-date secondary: role %q, disk %q (%v)", old.Name, st.Role, st.DiskState, err)
	}
	tr.logf("%s rejoined as secondary, in sync with %s", old.Name, tr.prim.Name)
}
