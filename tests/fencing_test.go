package tests

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// The fenced failover's faults, each on a pair whose failover runs
// through a witness of three etcd members: a workload of acknowledged
// writes (diskchecker records on ext4, each followed by fdatasync) runs
// on the primary's mount; after the fault, every write it acknowledged
// must be on the copy that serves then, and the pair must end in sync
// with no operator.

// fencedWorkload mounts a new ext4 on the primary's export and starts
// the diskchecker on it; it waits for some acknowledged writes.
func fencedWorkload(t *testing.T, fp *fencedPair, prim *harness.Node) (*harness.Mount, *harness.DiskChecker) {
	t.Helper()
	m := harness.MountNBD(t, fp.File("m-work"), prim.URI("vol"), true)
	chk := harness.StartDiskChecker(t, harness.DiskCheckerOptions{
		Path: filepath.Join(m.Dir, "diskcheck"), Blocks: 1024, Workers: 4, Duration: 5 * time.Minute,
	})
	chk.WaitAcked(t, 300, time.Minute)
	return m, chk
}

// verifyOn stops the workload (its mount died with its primary's role),
// then checks through a fresh mount of serving that no acknowledged
// write is missing, and that the filesystem is clean.
func verifyOn(t *testing.T, fp *fencedPair, m *harness.Mount, chk *harness.DiskChecker, serving *harness.Node) harness.DiskCheckReport {
	t.Helper()
	m.Crash()
	rep, err := chk.Stop(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("workload: %d writes, %d acknowledged, %d in flight, errors %v", rep.Writes, rep.Acked, rep.Unknown, rep.Errors)
	vm := harness.MountNBD(t, fp.File("m-verify"), serving.URI("vol"), false)
	got, err := chk.Verify(filepath.Join(vm.Dir, "diskcheck"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("through %s: %v", serving.Name, got)
	if !got.OK() {
		t.Fatalf("acknowledged writes lost: %v", got)
	}
	vm.UnmountAndCheck()
	return rep
}

// rejoined waits until the old primary, fenced, has rejoined the new
// one as its secondary, with no operator: the new primary is in sync,
// the old one says it is secondary and up to date, and a verify of every
// region finds the copies identical.
func rejoined(t *testing.T, newPrim, old *harness.Node) {
	t.Helper()
	harness.WaitInSync(t, newPrim, 3*time.Minute)
	st, err := old.Status()
	if err != nil || st.Role != "secondary" || st.DiskState != "up-to-date" {
		t.Fatalf("the old primary after rejoining: %v %s %s", err, st.Role, st.DiskState)
	}
	if st.Failover == nil || st.Failover.Fenced {
		t.Fatalf("the old primary still says it is fenced after it resynced: %+v", st.Failover)
	}
	if out := newPrim.CLI("verify", "--all"); !strings.Contains(out, " 0 mismatched") {
		t.Fatalf("the copies differ after the old primary rejoined:\n%s", out)
	}
}

// fencedItself waits until the old primary n has demoted itself for
// fencing, and says so in its status.
func fencedItself(t *testing.T, n *harness.Node) {
	t.Helper()
	st := n.WaitStatus(time.Minute, "the old primary demoted itself for fencing", func(s node.Status) bool {
		return s.Role == "secondary" && s.Failover != nil && s.Failover.Fenced
	})
	said := false
	for _, p := range st.Problems {
		said = said || strings.Contains(p, "demoted itself for fencing")
	}
	if !said {
		t.Fatalf("the fenced node's status does not say so: %q", st.Problems)
	}
}

// promotedItself waits until n is primary by its own doing (a failover
// recorded in its status), and returns its status.
func promotedItself(t *testing.T, n *harness.Node) node.Status {
	t.Helper()
	st := n.WaitStatus(2*time.Minute, "the secondary promoted itself", func(s node.Status) bool {
		return s.Role == "primary" && s.Failover != nil && s.Failover.LastFailover != ""
	})
	t.Logf("%s promoted itself %.2fs after it found its primary gone (token %d)", n.Name, st.Failover.FailoverSeconds, st.Failover.Token)
	return st
}

// TestFencedPrimaryIsolated: the primary is cut off from its peer and
// from the witness at once. It acknowledges nothing after that: the
// writes it took are held, since it can neither reach its peer nor
// record it outdated. The secondary promotes itself once the primary's
// lease has expired; the old primary, its lease gone and no peer in
// sync, demotes itself and fails the writes it held. Healed, it rejoins
// the new primary as its secondary, discarding what it alone holds:
// no split brain, no operator.
func TestFencedPrimaryIsolated(t *testing.T) {
	fp := newFencedPair(t, 3)
	prim := fp.waitInSync(t, time.Minute)
	sec := fp.other(prim)
	m, chk := fencedWorkload(t, fp, prim)

	atCut := chk.Acked()
	prim.Machine.LinkDown(t)
	fp.W.CutNode(prim.Machine)
	t.Logf("%s cut off from %s and from the witness at %d acknowledged writes", prim.Name, sec.Name, atCut)

	promotedItself(t, sec)
	atPromotion := chk.Acked()
	fencedItself(t, prim)
	rep := verifyOn(t, fp, m, chk, sec)
	if rep.Acked != atPromotion {
		t.Fatalf("the isolated primary acknowledged %d writes after the secondary promoted itself", rep.Acked-atPromotion)
	}
	t.Logf("acknowledged after the cut: %d (writes the peer had before it)", rep.Acked-atCut)

	prim.Machine.LinkUp(t)
	fp.W.HealNode(prim.Machine)
	rejoined(t, sec, prim)
}

// TestFencedPrimaryPaused: the primary's daemon is stopped (SIGSTOP) for
// longer than its lease, as a long pause would, and continued after the
// secondary promoted itself. The writes it held are never acknowledged
// as durable (each acknowledged write is on the new primary), and it
// rejoins as the new primary's secondary.
func TestFencedPrimaryPaused(t *testing.T) {
	fp := newFencedPair(t, 3)
	prim := fp.waitInSync(t, time.Minute)
	sec := fp.other(prim)
	m, chk := fencedWorkload(t, fp, prim)

	prim.Pause()
	t.Logf("%s stopped at %d acknowledged writes", prim.Name, chk.Acked())
	promotedItself(t, sec)
	atPromotion := chk.Acked()
	prim.Resume()
	fencedItself(t, prim)
	rep := verifyOn(t, fp, m, chk, sec)
	t.Logf("acknowledged after the new primary took over: %d (the paused primary's writes its peer had before the pause)", rep.Acked-atPromotion)
	rejoined(t, sec, prim)
}

// TestFencedWitnessDown: with one etcd member of three lost nothing
// changes; with the witness entirely down the connected pair keeps
// serving (the secondary cannot be promoted while connected), nobody
// promotes or demotes, and status says the witness does not answer. When
// it is back, the primary holds the election again.
func TestFencedWitnessDown(t *testing.T) {
	fp := newFencedPair(t, 3)
	prim := fp.waitInSync(t, time.Minute)
	sec := fp.other(prim)
	// The witness is asked about the lease once it was won.
	before := prim.WaitStatus(time.Minute, "the primary's lease left known", func(s node.Status) bool {
		return s.Failover != nil && s.Failover.LeaseLeft > 0
	})
	fio := func(what string) {
		t.Helper()
		harness.StartFio(t, prim.URI("vol"), "--rw=randwrite", "--bs=4k", "--size=16M", "--io_size=8M",
			"--verify=crc32c", "--verify_state_save=0").Wait(t, 3*time.Minute)
		t.Logf("fio wrote and verified 8 MiB %s", what)
	}

	if f := before.Failover; f.LeaseLeft > f.LeaseTTL || f.Token == 0 {
		t.Fatalf("the primary's lease left: %.1fs of %.1fs (token %d)", f.LeaseLeft, f.LeaseTTL, f.Token)
	}
	leader := fp.W.Leader()
	fp.W.StopMember(leader)
	t.Logf("etcd member %d (the leader) stopped", leader)
	fio("with one etcd member of three down")
	st := prim.WaitStatus(time.Minute, "the witness looked at again", func(s node.Status) bool {
		return s.Failover != nil && s.Failover.Checked != before.Failover.Checked
	})
	if st.Role != "primary" || st.Failover.Token != before.Failover.Token || st.Failover.Error != "" || !harness.InSync(st) {
		t.Fatalf("with one member of three down something changed: role %s, failover %+v (was %+v)", st.Role, st.Failover, before.Failover)
	}

	fp.W.StopAll()
	t.Log("every etcd member stopped")
	// The primary's lease runs out; with its peer in sync it goes on.
	st = prim.WaitStatus(time.Minute, "the primary's lease gone, the witness reported down", func(s node.Status) bool {
		return s.Failover != nil && s.Failover.Token == 0 && s.Failover.Error != ""
	})
	warned := false
	for _, p := range st.Problems {
		warned = warned || strings.Contains(p, "witness")
	}
	if !warned {
		t.Fatalf("status does not warn that the witness is down: %q", st.Problems)
	}
	fio("with the witness down, past the primary's lease")
	for _, n := range []*harness.Node{prim, sec} {
		st, err := n.Status()
		if err != nil {
			t.Fatal(err)
		}
		if want := map[*harness.Node]string{prim: "primary", sec: "secondary"}[n]; st.Role != want {
			t.Fatalf("%s is %s with the witness down, was %s", n.Name, st.Role, want)
		}
	}
	if st, _ := prim.Status(); !harness.InSync(st) {
		t.Fatalf("the pair is not in sync with the witness down: %+v", st.Peer)
	}

	fp.W.StartAll()
	st = prim.WaitStatus(2*time.Minute, "the primary holding the election again", func(s node.Status) bool {
		return s.Failover != nil && s.Failover.Token > before.Failover.Token && s.Failover.Error == ""
	})
	t.Logf("the primary won the election again: token %d (was %d)", st.Failover.Token, before.Failover.Token)
	fio("with the witness back")
}
