package tests

import (
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
// after 'disk replace' there, the secondary is resynced in full and the
// copies end identical.
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
