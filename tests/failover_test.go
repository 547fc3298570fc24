package tests

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

func requireFS(t *testing.T) {
	requirePair(t)
	harness.RequireRoot(t, "nbdfuse", "mkfs.ext4", "e2fsck", "fusermount3")
}

// TestFailoverWithFilesystem: files fsync'ed on A survive A's death; B is
// promoted and has them all; A comes back as secondary, is resynced with
// about what changed, and the roles can be swapped back.
func TestFailoverWithFilesystem(t *testing.T) {
	requireFS(t)
	p := harness.NewPair(t, harness.PairOptions{DiskSize: 192 << 20})
	promoteA(t, p)
	m := harness.MountNBD(t, p.File("ma"), p.A.URI("vol"), true)
	sums := writeFiles(t, m.Dir, 60, 256<<10)

	// Machine A dies: its processes and its link.
	p.A.Kill()
	m.Crash()
	p.MA.LinkDown(t)

	out := p.B.CLI("promote")
	t.Logf("promote B: %s", strings.TrimSpace(out))
	mb := harness.MountNBD(t, p.File("mb"), p.B.URI("vol"), false)
	checkFiles(t, mb.Dir, sums)
	more := writeFiles(t, filepath.Join(mb.Dir), 10, 1<<20)
	for k, v := range more {
		sums[k] = v
	}
	mb.UnmountAndCheck()

	// A comes back: it must not export, and it rejoins as secondary.
	p.MA.LinkUp(t)
	p.A.Start()
	if st, _ := p.A.Status(); st.Role != "secondary" || st.Export != nil {
		t.Fatalf("the old primary came back exporting: %+v", st)
	}
	var resynced int64
	p.B.WaitStatus(2*time.Minute, "A resynced from B", func(s node.Status) bool {
		if s.Resync != nil {
			resynced = max(resynced, s.Resync.Total)
		}
		return harness.InSync(s)
	})
	st, _ := p.B.Status()
	t.Logf("A rejoined; resync copied about %s of a %s volume", humanize.IBytes(uint64(resynced)), humanize.IBytes(uint64(st.Size)))
	if resynced > st.Size/2 {
		t.Fatalf("the rejoin resynced %d of %d bytes: want only what changed", resynced, st.Size)
	}

	// Fail back to A.
	p.B.CLI("demote")
	harness.SameData(t, p.A, p.B)
	p.A.CLI("promote")
	harness.WaitInSync(t, p.A, 2*time.Minute)
	ma := harness.MountNBD(t, p.File("ma2"), p.A.URI("vol"), false)
	checkFiles(t, ma.Dir, sums)
	ma.UnmountAndCheck()
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// TestSplitBrain: with the link cut, both nodes are primary and take
// writes; when the link returns both refuse and say split brain; the
// operator discards A's changes, and B's data is what both then hold.
func TestSplitBrain(t *testing.T) {
	requirePair(t)
	harness.RequireRoot(t, "qemu-io")
	p := harness.NewPair(t, harness.PairOptions{})
	promoteA(t, p)
	qio := func(n *harness.Node, cmds ...string) string {
		args := []string{"-f", "raw", n.URI("vol")}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		out := harness.Run(t, "qemu-io", args...)
		if strings.Contains(out, "failed") {
			t.Fatalf("qemu-io on %s: %s", n.Name, out)
		}
		return out
	}
	qio(p.A, "write -P 0x11 0 4M", "flush")
	harness.WaitInSync(t, p.A, time.Minute)

	p.MA.LinkDown(t)
	p.A.WaitStatus(30*time.Second, "A lost its peer", func(s node.Status) bool { return s.Peer.State != "connected" })
	p.B.WaitStatus(30*time.Second, "B lost its primary", func(s node.Status) bool { return s.Peer.State != "connected" })
	p.B.CLI("promote")
	qio(p.A, "write -P 0xaa 1M 1M", "flush")
	qio(p.B, "write -P 0xbb 2M 1M", "flush")
	p.MA.LinkUp(t)

	for _, n := range []*harness.Node{p.A, p.B} {
		st := n.WaitStatus(time.Minute, "split brain reported, with the verdict", func(s node.Status) bool {
			return s.Peer.State == "standalone" && strings.Contains(s.Peer.LastError, "split-brain") &&
				s.Peer.Verdict == "split-brain"
		})
		if len(st.Problems) == 0 {
			t.Fatalf("%s reports split brain but no problem for the operator", n.Name)
		}
		t.Logf("%s: %s", n.Name, st.Problems[0])
	}
	// Nothing moved either way: each still holds its own writes.
	qio(p.A, "read -P 0xaa 1M 1M")
	qio(p.B, "read -P 0xbb 2M 1M", "read -P 0x11 1M 1M")

	p.A.CLI("demote")
	p.A.CLI("connect", "--discard-local")
	harness.WaitInSync(t, p.B, 2*time.Minute)
	qio(p.B, "read -P 0x11 0 1M", "read -P 0x11 1M 1M", "read -P 0xbb 2M 1M", "read -P 0x11 3M 1M")
	p.B.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// TestPromoteDemoteRefusals: promote refuses on a node in the middle of a
// resync, and on a secondary disconnected from its primary's link (the
// primary, asked, says it is primary); demote refuses while a client is
// connected unless forced.
func TestPromoteDemoteRefusals(t *testing.T) {
	requireFS(t)
	p := harness.NewPair(t, harness.PairOptions{})
	promoteA(t, p)
	p.B.Kill()
	harness.StartFio(t, p.A.URI("vol"), "--rw=write", "--bs=1M", "--iodepth=4", "--size=96M").Wait(t, 5*time.Minute)
	p.A.CLI("resync", "pause")
	p.B.Start()
	p.B.WaitStatus(time.Minute, "B inconsistent under resync", func(s node.Status) bool { return s.DiskState == "inconsistent" })
	out, err := p.B.Command("promote")
	if err == nil || !strings.Contains(out, "inconsistent") {
		t.Fatalf("promote of a node in the middle of a resync: err %v, output %q", err, out)
	}
	t.Logf("promote refused: %s", strings.TrimSpace(out))
	p.A.CLI("resync", "resume")
	harness.WaitInSync(t, p.A, 2*time.Minute)

	// Disconnected from A's link, B does not know A is primary from the
	// link: promote asks A over the authenticated replication port.
	p.B.CLI("disconnect")
	p.B.WaitStatus(time.Minute, "B's link from A ended", func(s node.Status) bool { return s.Peer.State != "connected" })
	out, err = p.B.Command("promote")
	if err == nil || !strings.Contains(out, "the peer is primary") {
		t.Fatalf("promote of a disconnected secondary whose peer is primary: err %v, output %q", err, out)
	}
	t.Logf("promote refused: %s", strings.TrimSpace(out))
	p.B.CLI("connect")
	harness.WaitInSync(t, p.A, 2*time.Minute)

	m := harness.MountNBD(t, p.File("m"), p.A.URI("vol"), true)
	out, err = p.A.Command("demote")
	if err == nil || !strings.Contains(out, "connected") {
		t.Fatalf("demote with a client connected: err %v, output %q", err, out)
	}
	t.Logf("demote refused: %s", strings.TrimSpace(out))
	m.Crash()
	p.A.CLI("demote", "--force")
	if st, _ := p.A.Status(); st.Role != "secondary" {
		t.Fatalf("after demote --force A is %s", st.Role)
	}
}
