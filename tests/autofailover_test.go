package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// fencedPair is a mirrored pair whose failover is automatic through a
// witness of etcd members in namespaces of their own.
type fencedPair struct {
	*harness.Pair
	W *harness.Witness
}

// newFencedPair starts the witness, then both nodes with --etcd, and
// waits until one of them has promoted itself and synced the other.
func newFencedPair(t *testing.T, members int, args ...string) *fencedPair {
	t.Helper()
	requireWitness(t)
	p := harness.NewPair(t, harness.PairOptions{NoStart: true})
	w := harness.NewWitness(t, harness.WitnessOptions{Members: members}, p.MA, p.MB)
	p.A.Args = append(p.A.Args, append([]string{"--etcd", w.Endpoints(p.MA)}, args...)...)
	p.B.Args = append(p.B.Args, append([]string{"--etcd", w.Endpoints(p.MB)}, args...)...)
	p.Start()
	fp := &fencedPair{Pair: p, W: w}
	fp.waitInSync(t, 2*time.Minute)
	return fp
}

// primary returns the node that is primary now, or nil.
func (fp *fencedPair) primary() *harness.Node {
	for _, n := range []*harness.Node{fp.A, fp.B} {
		if st, err := n.Status(); err == nil && st.Role == "primary" {
			return n
		}
	}
	return nil
}

// other returns the node that is not n.
func (fp *fencedPair) other(n *harness.Node) *harness.Node {
	if n == fp.A {
		return fp.B
	}
	return fp.A
}

// waitInSync waits until a node is primary with its peer in sync, and
// returns the primary.
func (fp *fencedPair) waitInSync(t *testing.T, within time.Duration) *harness.Node {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if p := fp.primary(); p != nil {
			if st, err := p.Status(); err == nil && harness.InSync(st) {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	stA, _ := fp.A.Status()
	stB, _ := fp.B.Status()
	t.Fatalf("no primary in sync within %v\nA: %+v\nB: %+v", within, stA.Failover, stB.Failover)
	return nil
}

// TestAutoFailoverPrimaryKilled: the primary's daemon is killed with kill
// -9 and its link taken down: the secondary promotes itself, with
// nothing lost, and says when and how long it took.
func TestAutoFailoverPrimaryKilled(t *testing.T) {
	fp := newFencedPair(t, 3)
	prim := fp.waitInSync(t, time.Minute)
	sec := fp.other(prim)
	fio := harness.StartFio(t, prim.URI("vol"), "--rw=randwrite", "--bs=4k", "--size=32M", "--verify=crc32c", "--do_verify=0", "--verify_state_save=0")
	fio.Wait(t, 5*time.Minute)
	start := time.Now()
	prim.Kill()
	prim.Machine.LinkDown(t)
	st := sec.WaitStatus(time.Minute, "the secondary promoted itself", func(s node.Status) bool { return s.Role == "primary" })
	t.Logf("FAILOVER: the secondary was primary %.2fs after the primary was killed (the node says %.2fs after it found it gone)",
		time.Since(start).Seconds(), st.Failover.FailoverSeconds)
	if st.Failover == nil || st.Failover.Mode != "etcd" || st.Failover.LastFailover == "" || st.Failover.Token == 0 {
		t.Fatalf("the new primary's failover status: %+v", st.Failover)
	}
	harness.StartFio(t, sec.URI("vol"), "--rw=randread", "--bs=4k", "--size=32M", "--verify=crc32c", "--verify_only", "--verify_state_save=0").Wait(t, 5*time.Minute)
}

// TestAutoFailoverOutdatedPeerWaits: the link is cut while both nodes
// reach etcd: the primary records the secondary outdated and goes on;
// when the primary then dies, the secondary does not promote itself, and
// says why.
func TestAutoFailoverOutdatedPeerWaits(t *testing.T) {
	fp := newFencedPair(t, 3)
	prim := fp.waitInSync(t, time.Minute)
	sec := fp.other(prim)
	prim.Machine.LinkDown(t)
	// The primary writes alone: it records the secondary outdated first.
	harness.StartFio(t, prim.URI("vol"), "--rw=write", "--bs=1M", "--size=8M").Wait(t, 2*time.Minute)
	st := prim.WaitStatus(time.Minute, "the secondary recorded outdated", func(s node.Status) bool {
		return s.Failover != nil && len(s.Failover.Outdated) > 0
	})
	t.Logf("the primary's status: %+v", st.Failover.Outdated)
	prim.Kill()
	// Once the dead primary's lease has expired the election is free:
	// a secondary that could promote itself would win it at once.
	st = sec.WaitStatus(time.Minute, "the election free and the secondary saying why it waits", func(s node.Status) bool {
		return s.Failover != nil && s.Failover.Holder == "" && strings.Contains(s.Failover.Waiting, "outdated")
	})
	t.Logf("the secondary waits: %s", st.Failover.Waiting)
	// Two looks at the witness later, it still waits.
	checked := st.Failover.Checked
	for range 2 {
		st = sec.WaitStatus(time.Minute, "another look at the witness", func(s node.Status) bool {
			return s.Failover != nil && s.Failover.Checked != checked
		})
		checked = st.Failover.Checked
	}
	if st.Role != "secondary" || st.Failover.Holder != "" {
		t.Fatalf("the outdated secondary promoted itself: %s, holder %q", st.Role, st.Failover.Holder)
	}
}
