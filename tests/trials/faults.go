package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// fault is one kind of trouble. strike injects it into a running trial
// (the workload runs where it can), sets the trial's What, and returns
// the recovery the fault demands; the trial times that.
type fault struct {
	name   string
	strike func(tr *trial) (heal func())
	// witness: the trial's pair runs with a witness (etcd) and fails
	// over by itself (fenced.go); otherwise failover is manual.
	witness bool
}

// faults are every kind a trial picks from: those of a pair whose
// failover is manual ('netraid promote'), then those of a pair fenced
// through a witness.
var faults = slices.Concat(manualFaults, witnessFaults)

var manualFaults = []fault{
	{name: "kill-primary", strike: killPrimary},
	{name: "kill-secondary", strike: killSecondary},
	{name: "link-cut", strike: cutLink},
	{name: "disk-fail", strike: failDisk},
	{name: "slow-link", strike: slowLink},
	{name: "rebuild-kill", strike: killMidRebuild},
}

func faultNames() []string { return names(faults) }

const peerGone = 30 * time.Second // a lost peer noticed (peer time-out 2s)

func peerDown(st node.Status) bool { return st.Peer != nil && st.Peer.State != "connected" }

// killPrimary: the primary's daemon dies with SIGKILL; the mount that used
// it is dead too. Recovery is a failover to the other node (the dead one
// rejoins as secondary) or a restart of the dead one, promoted again.
func killPrimary(tr *trial) func() {
	a, b := tr.prim, tr.sec
	tr.logf("kill -9 %s's netraid (primary)", a.Name)
	a.Kill()
	tr.m.Crash()
	tr.m = nil
	tr.stopWorkload()
	if tr.rng.IntN(2) == 0 {
		tr.res.What = fmt.Sprintf("kill -9 %s (primary); failover to %s", a.Name, b.Name)
		return func() {
			tr.logf("$ netraid promote  (on %s)", b.Name)
			b.CLI("promote")
			tr.prim, tr.sec = b, a
			a.Start()
			tr.waitInSync()
		}
	}
	tr.res.What = fmt.Sprintf("kill -9 %s (primary); restart it", a.Name)
	return func() {
		a.Start()
		tr.logf("$ netraid promote  (on %s)", a.Name)
		a.CLI("promote")
		tr.waitInSync()
	}
}

// killSecondary: the secondary's daemon dies with SIGKILL; the primary
// serves alone, then the secondary restarts and is resynced.
func killSecondary(tr *trial) func() {
	b := tr.sec
	tr.res.What = fmt.Sprintf("kill -9 %s (secondary); restart it", b.Name)
	tr.logf("kill -9 %s's netraid (secondary)", b.Name)
	b.Kill()
	tr.prim.WaitStatus(peerGone, "the peer gone", peerDown)
	tr.moreAcks(tr.hold(), "the primary serves alone")
	return func() {
		b.Start()
		tr.waitInSync()
	}
}

// cutLink: one machine's link goes down; the primary serves alone after
// the peer time-out; the link comes back and the nodes reconnect and
// resync by themselves.
func cutLink(tr *trial) func() {
	m, name := tr.p.MA, tr.p.A.Name
	if tr.rng.IntN(2) == 1 {
		m, name = tr.p.MB, tr.p.B.Name
	}
	tr.res.What = fmt.Sprintf("link of %s down, then up", name)
	tr.logf("ip link set %s down  (in %s)", m.Veth, m.Name)
	m.LinkDown(tr.s)
	tr.prim.WaitStatus(peerGone, "the peer gone", peerDown)
	tr.moreAcks(tr.hold(), "the primary serves with the link down")
	return func() {
		tr.logf("ip link set %s up  (in %s)", m.Veth, m.Name)
		m.LinkUp(tr.s)
		tr.waitInSync()
	}
}

// failDisk: a member disk of the primary or of the secondary fails,
// marked failed by the operator (netraid disk fail) or failing every
// I/O (the daemon's fault injector). The volume keeps serving;
// the disk is replaced by a new one and rebuilt.
func failDisk(tr *trial) func() {
	nd := tr.prim
	role := "primary"
	if tr.rng.IntN(2) == 1 {
		nd, role = tr.sec, "secondary"
	}
	i := tr.rng.IntN(len(nd.Disks))
	old := nd.Disks[i]
	how := "netraid disk fail"
	if tr.rng.IntN(2) == 1 {
		how = "I/O errors"
	}
	tr.res.What = fmt.Sprintf("%s: disk %d of %s (%s); replace it", how, i, nd.Name, role)
	if how == "I/O errors" {
		// The daemon's fault injector fails every I/O on the disk at
		// once. (Shrinking the loop device under it would not do: between
		// truncating the backing file and the loop device noticing, the
		// disk reads zeroes without an error, a silent corruption that no
		// mirror can tell from data.)
		tr.logf("$ netraid disk inject-error %s  (on %s: every I/O on it fails)", old, nd.Name)
		nd.CLI("disk", "inject-error", old)
	} else {
		tr.logf("$ netraid disk fail %s  (on %s)", old, nd.Name)
		nd.CLI("disk", "fail", old)
	}
	if nd == tr.prim {
		tr.prim.WaitStatus(peerGone, "the local leg failed", func(st node.Status) bool { return legState(st, "local") == "failed" })
	} else {
		// A secondary's failed disk shows when the primary next writes to it.
		tr.prim.WaitStatus(peerGone, "the peer leg failed", func(st node.Status) bool { return legState(st, "peer") != "up-to-date" })
	}
	tr.moreAcks(tr.hold(), "the volume serves with a failed disk")
	return func() {
		fresh, _ := harness.LoopDevice(tr.s, tr.p.Dir, fmt.Sprintf("%s-new%d", nd.Name, i), tr.cfg.DiskSize)
		tr.logf("$ netraid disk replace %s %s  (on %s)", old, fresh, nd.Name)
		nd.CLI("disk", "replace", old, fresh)
		nd.Disks[i] = fresh
		tr.waitInSync()
	}
}

// rebuildRate slows a rebuild in killMidRebuild down so that the kill
// finds it under way.
const rebuildRate = "4MiB"

// killMidRebuild: a member disk of the primary or of the secondary is
// replaced under the workload, with the rebuild slowed down, and that
// node's daemon dies with SIGKILL once the rebuild has recorded progress
// (or, on a volume with little to copy, after it ended). It restarts and
// the rebuild resumes from its recorded cursor: the primary, whose mount
// died with it, is promoted again and rebuilt from its peer; the
// secondary is rebuilt by the primary, which served alone meanwhile.
func killMidRebuild(tr *trial) func() {
	nd, role := tr.prim, "primary"
	if tr.rng.IntN(2) == 1 {
		nd, role = tr.sec, "secondary"
	}
	i := tr.rng.IntN(len(nd.Disks))
	old := nd.Disks[i]
	fresh, _ := harness.LoopDevice(tr.s, tr.p.Dir, fmt.Sprintf("%s-new%d", nd.Name, i), tr.cfg.DiskSize)
	tr.logf("$ netraid resync rate %s  (on %s, the rebuild's source or its runner)", rebuildRate, tr.prim.Name)
	tr.prim.CLI("resync", "rate", rebuildRate)
	tr.logf("$ netraid disk replace %s %s  (on %s)", old, fresh, nd.Name)
	nd.CLI("disk", "replace", old, fresh)
	nd.Disks[i] = fresh
	st := nd.WaitStatus(syncTimeout, "the rebuild's first recorded progress", func(st node.Status) bool {
		return st.RebuildPoint == nil || st.RebuildPoint.Cursor > 0
	})
	when := "after its rebuild ended"
	if rp := st.RebuildPoint; rp != nil {
		when = fmt.Sprintf("mid-rebuild, member %d recorded up to %s", rp.Member, humanize.IBytes(uint64(rp.Cursor)))
	}
	tr.res.What = fmt.Sprintf("disk %d of %s (%s) replaced; kill -9 %s %s; restart it", i, nd.Name, role, nd.Name, when)
	tr.logf("kill -9 %s's netraid (%s), %s", nd.Name, role, when)
	nd.Kill()
	if nd == tr.prim {
		tr.m.Crash()
		tr.m = nil
		tr.stopWorkload()
		return func() {
			nd.Start()
			tr.logf("$ netraid promote  (on %s)", nd.Name)
			nd.CLI("promote")
			tr.waitInSync()
		}
	}
	tr.prim.WaitStatus(peerGone, "the peer gone", peerDown)
	tr.moreAcks(tr.hold(), "the primary serves alone")
	return func() {
		nd.Start()
		tr.logf("$ netraid resync rate 0  (on %s)", tr.prim.Name)
		tr.prim.CLI("resync", "rate", "0")
		tr.waitInSync()
	}
}

// slowLink: both machines' links slow down (netem delay, or a rate
// limit where the kernel has no netem); writes go on, slower; the links
// are restored.
func slowLink(tr *trial) func() {
	before := float64(tr.chk.Acked()) / time.Since(tr.from).Seconds()
	how := tr.p.MA.SlowLink(tr.s, 50*time.Millisecond, "2mbit")
	tr.p.MB.SlowLink(tr.s, 50*time.Millisecond, "2mbit")
	tr.logf("both links slowed: %s", how)
	begin, n := time.Now(), tr.hold()/2
	tr.moreAcks(n, "writes go on over the slow link")
	during := float64(n) / time.Since(begin).Seconds()
	tr.res.What = fmt.Sprintf("slow link, %s: %.0f writes/s, %.0f before", how, during, before)
	return func() {
		tr.p.MA.FastLink(tr.s)
		tr.p.MB.FastLink(tr.s)
		tr.waitInSync()
	}
}

func legState(st node.Status, name string) string {
	for _, l := range st.Legs {
		if l.Name == name {
			return l.State
		}
	}
	return ""
}
