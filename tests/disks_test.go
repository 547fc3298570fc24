package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// TestDiskFailServedThroughPeer: a local disk of the primary fails while
// a verifying workload runs — marked failed by the operator, or failing
// every I/O (fault injection in the daemon) — and the workload sees no
// error: the volume is served through the peer.
func TestDiskFailServedThroughPeer(t *testing.T) {
	requirePair(t)
	t.Run("operator", func(t *testing.T) {
		testDiskFail(t, func(p *harness.Pair) { p.A.CLI("disk", "fail", p.A.Disks[1]) })
	})
	t.Run("io-errors", func(t *testing.T) {
		testDiskFail(t, func(p *harness.Pair) { p.A.CLI("disk", "inject-error", p.A.Disks[1]) })
	})
}

func testDiskFail(t *testing.T, fail func(*harness.Pair)) {
	p := harness.NewPair(t, harness.PairOptions{Args: []string{"--fault-injection"}})
	promoteA(t, p)
	load := harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=16",
		"--size=48M", "--number_ios=12000", "--verify=crc32c", "--do_verify=1", "--verify_backlog=512", "--rate_iops=3000")
	p.A.WaitStatus(time.Minute, "writes under way", func(s node.Status) bool { return s.Export.BytesWritten > 2<<20 })
	fail(p)
	st := p.A.WaitStatus(30*time.Second, "the local leg failed", func(s node.Status) bool {
		return legState(s, "local") == "failed" && len(s.Problems) > 0
	})
	t.Logf("after the disk failed: %s", st.Problems[0])
	load.Wait(t, 5*time.Minute)
	if st, _ := p.A.Status(); st.Export.Errors != 0 {
		t.Fatalf("the export answered %d requests with errors", st.Export.Errors)
	}
}

// TestDiskReplaceRebuild: a disk of the primary is replaced during a
// verifying workload; the rebuild copies about that disk's share from the
// peer, the workload sees no error, and the copies end identical.
func TestDiskReplaceRebuild(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{})
	st := promoteA(t, p)
	// Fill 64 MiB so there is a share to rebuild.
	harness.StartFio(t, p.A.URI("vol"), "--rw=write", "--bs=1M", "--iodepth=4", "--size=64M").Wait(t, 2*time.Minute)
	load := harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=16", "--offset=16M",
		"--size=32M", "--number_ios=12000", "--verify=crc32c", "--do_verify=1", "--verify_backlog=512", "--rate_iops=3000")
	p.A.WaitStatus(time.Minute, "writes under way", func(s node.Status) bool { return s.Export.BytesWritten > 66<<20 })
	fresh, _ := harness.LoopDevice(t, p.Dir, "a-new", 128<<20)
	old := p.A.Disks[1]
	t.Logf("%s", p.A.CLI("disk", "replace", old, fresh))
	p.A.Disks[1] = fresh
	done := p.A.WaitStatus(3*time.Minute, "the rebuild to finish", func(s node.Status) bool {
		return s.Rebuild == nil && s.DiskState == "up-to-date" && legState(s, "local") == "up-to-date"
	})
	load.Wait(t, 5*time.Minute)
	copied := leg(done, "local").Resynced
	share := int64(64<<20) / 2
	t.Logf("the rebuild copied %s; the replaced disk's share of the %s written is %s (volume %s)",
		humanize.IBytes(uint64(copied)), humanize.IBytes(64<<20), humanize.IBytes(uint64(share)), humanize.IBytes(uint64(st.Size)))
	if copied < share/2 || copied > share+32<<20 {
		t.Fatalf("the rebuild copied %d bytes: want about the disk's share, %d", copied, share)
	}
	if st, _ := p.A.Status(); st.Export.Errors != 0 {
		t.Fatalf("the export answered %d requests with errors", st.Export.Errors)
	}
	harness.WaitInSync(t, p.A, time.Minute)
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

func leg(s node.Status, name string) node.LegStatus {
	for _, l := range s.Legs {
		if l.Name == name {
			return l
		}
	}
	return node.LegStatus{}
}

func legState(s node.Status, name string) string { return leg(s, name).State }

// TestSecondaryDiskFails: a disk of the secondary fails under the
// primary's writes; the primary goes on alone (the workload sees no
// error), the secondary marks the disk failed and takes no more writes;
// after 'disk replace' there, the primary rebuilds that member's share
// (and what it wrote meanwhile) on the secondary and the copies end
// identical.
func TestSecondaryDiskFails(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{Args: []string{"--fault-injection"}})
	promoteA(t, p)
	load := harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=16",
		"--size=48M", "--number_ios=12000", "--verify=crc32c", "--do_verify=1", "--verify_backlog=512", "--rate_iops=3000")
	p.A.WaitStatus(time.Minute, "writes under way", func(s node.Status) bool { return s.Export.BytesWritten > 2<<20 })
	p.B.CLI("disk", "inject-error", p.B.Disks[0])
	p.B.WaitStatus(30*time.Second, "B marks its disk failed", func(s node.Status) bool {
		return s.DiskState == "failed" && len(s.Members) == 2 && s.Members[0].State == "failed"
	})
	p.A.WaitStatus(30*time.Second, "A goes on alone", func(s node.Status) bool { return legState(s, "peer") == "failed" })
	load.Wait(t, 5*time.Minute)

	fresh, _ := harness.LoopDevice(t, p.Dir, "b-new", 128<<20)
	t.Logf("%s", p.B.CLI("disk", "replace", p.B.Disks[0], fresh))
	p.B.Disks[0] = fresh
	st := harness.WaitInSync(t, p.A, 2*time.Minute)
	t.Logf("B resynced: %s copied to the peer leg in all", humanize.IBytes(uint64(leg(st, "peer").Resynced)))
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// The resume tests fill resumeFill bytes with fio's verifiable pattern,
// replace a disk with the rebuild slowed to resumeRate, kill the
// rebuilding daemon once it has recorded a cursor past resumeCursor,
// restart it, and check that the rest of the rebuild copies about the
// member's share past that cursor — not the whole copy — and that the
// pattern reads back.
const (
	resumeFill   = 96 << 20
	resumeCursor = 24 << 20
	resumeRate   = "8MiB"
	// resumeSlack is what may be copied beyond the share past the
	// cursor: the share of the regions the fill's sequential writes
	// marked used ahead of the data (16), and regions dirty at the kill,
	// copied whole. A rebuild from the start copies about 55 MiB, a full
	// sync at least 96 MiB: both fail the bound.
	resumeSlack = 12 << 20
)

var resumeFio = []string{"--rw=write", "--bs=1M", "--iodepth=4", "--size=96M", "--verify=crc32c"}

// resumePair makes a pair with a slow rebuild, promotes A and fills the
// volume.
func resumePair(t *testing.T) *harness.Pair {
	p := harness.NewPair(t, harness.PairOptions{Args: []string{"--resync-rate", resumeRate}})
	promoteA(t, p)
	harness.StartFio(t, p.A.URI("vol"), append(resumeFio, "--do_verify=0")...).Wait(t, 2*time.Minute)
	harness.WaitInSync(t, p.A, time.Minute)
	return p
}

// waitCursor waits until nd's superblock records a rebuild cursor past
// resumeCursor, while the rebuild still runs, and returns the cursor
// seen: the one recorded at a kill right after is at least that.
func waitCursor(t *testing.T, nd *harness.Node) int64 {
	t.Helper()
	st := nd.WaitStatus(2*time.Minute, "a rebuild cursor recorded past "+humanize.IBytes(resumeCursor), func(s node.Status) bool {
		return s.RebuildPoint == nil || s.RebuildPoint.Cursor >= resumeCursor
	})
	if st.RebuildPoint == nil {
		t.Fatalf("the rebuild ended before its cursor was seen past %s: slow it down (--resync-rate)", humanize.IBytes(resumeCursor))
	}
	if st.RebuildPoint.Cursor >= resumeFill {
		t.Fatalf("the rebuild's cursor %d is past the data (%d): nothing would be left to resume", st.RebuildPoint.Cursor, int64(resumeFill))
	}
	return st.RebuildPoint.Cursor
}

// checkResumedCopy fails unless copied is about the member's share (of
// two) of the filled data past cursor, and clearly less than a full sync.
func checkResumedCopy(t *testing.T, copied, cursor int64) {
	t.Helper()
	share := (int64(resumeFill) - cursor) / 2
	t.Logf("the resumed rebuild copied %s; the member's share past the cursor (%s) is %s; a full sync would copy at least %s",
		humanize.IBytes(uint64(copied)), humanize.IBytes(uint64(cursor)), humanize.IBytes(uint64(share)), humanize.IBytes(resumeFill))
	if copied < share/2 || copied > share+resumeSlack {
		t.Fatalf("the resumed rebuild copied %d bytes: want about %d (the share past the cursor), at most %d", copied, share, share+resumeSlack)
	}
}

// readBack checks fio's pattern through the primary's export, then that
// the two copies are identical.
func readBack(t *testing.T, p *harness.Pair) {
	t.Helper()
	harness.StartFio(t, p.A.URI("vol"), append(resumeFio, "--verify_only=1")...).Wait(t, 2*time.Minute)
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// replaceMidRebuild replaces disk 1 of nd (a node of p) with a fresh one
// and waits until its rebuild has recorded a cursor past resumeCursor,
// which it returns (waitCursor).
func replaceMidRebuild(t *testing.T, p *harness.Pair, nd *harness.Node, name string) int64 {
	t.Helper()
	fresh, _ := harness.LoopDevice(t, p.Dir, name, 128<<20)
	t.Logf("%s", nd.CLI("disk", "replace", nd.Disks[1], fresh))
	nd.Disks[1] = fresh
	return waitCursor(t, nd)
}

// waitOwnRebuildResumed waits until primary nd's own rebuild goes on
// again (or has ended), checks that it did not go back before cursor,
// then waits until it has finished and nd is in sync.
func waitOwnRebuildResumed(t *testing.T, nd *harness.Node, cursor int64) node.Status {
	t.Helper()
	resumed := nd.WaitStatus(time.Minute, "the resumed rebuild", func(s node.Status) bool {
		return s.Rebuild != nil && strings.HasPrefix(s.Rebuild.Kind, "rebuild (resumed at ") || s.RebuildPoint == nil
	})
	if resumed.Rebuild != nil {
		t.Logf("status: %s", resumed.Rebuild.Kind)
		if resumed.RebuildPoint != nil && resumed.RebuildPoint.Cursor < cursor {
			t.Fatalf("the rebuild went on from %d, before the cursor %d recorded earlier", resumed.RebuildPoint.Cursor, cursor)
		}
	}
	return nd.WaitStatus(3*time.Minute, "the rebuild to finish", func(s node.Status) bool {
		return s.Rebuild == nil && s.RebuildPoint == nil && s.DiskState == "up-to-date" && harness.InSync(s)
	})
}

// TestDiskReplaceRebuildResumes: the primary's disk is replaced and the
// daemon is killed mid-rebuild; restarted and promoted again, it resumes
// the rebuild of that member from the recorded cursor instead of a full
// sync, and serves nothing from its local copy until the peer is there.
func TestDiskReplaceRebuildResumes(t *testing.T) {
	requirePair(t)
	p := resumePair(t)
	cursor := replaceMidRebuild(t, p, p.A, "a-new")
	p.A.Kill()

	p.A.Start()
	if st, err := p.A.Status(); err != nil || st.RebuildPoint == nil || st.RebuildPoint.Member != 1 || st.RebuildPoint.Cursor < cursor {
		t.Fatalf("after the restart: rebuild point %+v (err %v), want member 1 from at least %d", st.RebuildPoint, err, cursor)
	}
	t.Logf("%s", p.A.CLI("promote"))
	done := waitOwnRebuildResumed(t, p.A, cursor)
	if done.Peer.Verdict != "no-sync" {
		t.Fatalf("the nodes met with verdict %s, want no-sync", done.Peer.Verdict)
	}
	checkResumedCopy(t, leg(done, "local").Resynced, cursor)
	if r := leg(done, "peer").Resynced; r != 0 {
		t.Fatalf("%d bytes were copied to the peer, the rebuild's source", r)
	}
	readBack(t, p)
}

// TestRebuildResumesAfterLinkCut: the link to the peer, the source of the
// primary's rebuild, is cut mid-rebuild; the primary serves nothing from
// its half-rebuilt copy meanwhile, and when the link returns the rebuild
// goes on from its recorded cursor, finishes, and the data reads back.
func TestRebuildResumesAfterLinkCut(t *testing.T) {
	requirePair(t)
	p := resumePair(t)
	cursor := replaceMidRebuild(t, p, p.A, "a-new")
	p.MA.LinkDown(t)
	cut := p.A.WaitStatus(time.Minute, "the link down", func(s node.Status) bool {
		return s.Peer == nil || s.Peer.State != "connected"
	})
	if cut.RebuildPoint == nil || cut.RebuildPoint.Cursor < cursor {
		t.Fatalf("with the link down: rebuild point %+v, want one from at least %d", cut.RebuildPoint, cursor)
	}
	if cut.DiskState == "up-to-date" || legState(cut, "local") == "up-to-date" {
		t.Fatalf("with the link down mid-rebuild the local copy is %s, its leg %s", cut.DiskState, legState(cut, "local"))
	}
	p.MA.LinkUp(t)
	waitOwnRebuildResumed(t, p.A, cursor)
	readBack(t, p)
}

// TestSecondaryDiskReplaceRebuildResumes: a disk of the secondary is
// replaced; the primary rebuilds that member only (no full sync); the
// secondary is killed mid-rebuild and restarted, and the primary resumes
// from the cursor the secondary recorded.
func TestSecondaryDiskReplaceRebuildResumes(t *testing.T) {
	requirePair(t)
	p := resumePair(t)
	fresh, _ := harness.LoopDevice(t, p.Dir, "b-new", 128<<20)
	t.Logf("%s", p.B.CLI("disk", "replace", p.B.Disks[1], fresh))
	p.B.Disks[1] = fresh
	first := p.A.WaitStatus(time.Minute, "a rebuild of the peer's member", func(s node.Status) bool {
		return s.Resync != nil && strings.HasPrefix(s.Resync.Kind, "rebuild of the peer's member 1")
	})
	t.Logf("primary: %s of %s", first.Resync.Kind, humanize.IBytes(uint64(first.Resync.Total)))
	cursor := waitCursor(t, p.B)
	p.B.Kill()

	p.B.Start()
	resumed := p.A.WaitStatus(time.Minute, "the resumed rebuild", func(s node.Status) bool {
		return s.Resync != nil && strings.HasPrefix(s.Resync.Kind, "rebuild of the peer's member 1 (resumed at ") || harness.InSync(s)
	})
	if resumed.Resync != nil {
		t.Logf("primary: %s", resumed.Resync.Kind)
	}
	done := harness.WaitInSync(t, p.A, 3*time.Minute)
	checkResumedCopy(t, leg(done, "peer").Resynced, cursor)
	if st, err := p.B.Status(); err != nil || st.RebuildPoint != nil || st.DiskState != "up-to-date" {
		t.Fatalf("the secondary after the rebuild: %s, rebuild point %+v (err %v)", st.DiskState, st.RebuildPoint, err)
	}
	readBack(t, p)
}

// TestRebuildOnFormerSecondary: what a node took as its peer's secondary
// counts when it is the source. After the roles swap, a disk of the new
// primary (B) is replaced; B's used bitmap never recorded the writes it
// took from A, yet its rebuild must copy that member's share of them
// (B marks every region used when it is promoted after being secondary).
func TestRebuildOnFormerSecondary(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{})
	promoteA(t, p)
	const written = 64 << 20
	fill := []string{"--rw=write", "--bs=1M", "--iodepth=4", "--size=64M", "--verify=crc32c"}
	harness.StartFio(t, p.A.URI("vol"), append(fill, "--do_verify=0")...).Wait(t, 2*time.Minute)
	harness.WaitInSync(t, p.A, time.Minute)
	p.A.CLI("demote")
	p.B.CLI("promote")
	harness.WaitInSync(t, p.B, 2*time.Minute)

	fresh, _ := harness.LoopDevice(t, p.Dir, "b-new", 128<<20)
	t.Logf("%s", p.B.CLI("disk", "replace", p.B.Disks[1], fresh))
	p.B.Disks[1] = fresh
	done := p.B.WaitStatus(3*time.Minute, "the rebuild to finish", func(s node.Status) bool {
		return s.Rebuild == nil && s.DiskState == "up-to-date" && legState(s, "local") == "up-to-date"
	})
	copied, share := leg(done, "local").Resynced, int64(written/2)
	t.Logf("the rebuild copied %s; the member's share of what A wrote is %s", humanize.IBytes(uint64(copied)), humanize.IBytes(uint64(share)))
	if copied < share {
		t.Fatalf("the rebuild copied %d bytes, less than the member's share of the data A wrote (%d)", copied, share)
	}
	harness.StartFio(t, p.B.URI("vol"), append(fill, "--verify_only=1")...).Wait(t, 2*time.Minute)
	harness.WaitInSync(t, p.B, time.Minute)
	p.B.CLI("demote")
	harness.SameData(t, p.A, p.B)
}
