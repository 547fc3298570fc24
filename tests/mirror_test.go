package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

func requirePair(t *testing.T) {
	harness.RequireRoot(t, "ip", "losetup", "fio")
	if !fioHasNBD() {
		t.Skip("fio has no nbd engine")
	}
}

// promoteA promotes node A of a new pair and waits for the first sync.
func promoteA(t *testing.T, p *harness.Pair) node.Status {
	t.Helper()
	p.A.CLI("promote")
	return harness.WaitInSync(t, p.A, 2*time.Minute)
}

// TestMirrorCopiesIdentical: after mirrored writes the data areas of the
// two nodes' disks are byte-identical.
func TestMirrorCopiesIdentical(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{})
	promoteA(t, p)
	harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=16", "--size=64M",
		"--number_ios=4000", "--verify=crc32c", "--do_verify=1").Wait(t, 5*time.Minute)
	harness.StartFio(t, p.A.URI("vol"), "--rw=write", "--bs=1M", "--iodepth=4", "--offset=100M", "--size=32M").Wait(t, 5*time.Minute)
	harness.WaitInSync(t, p.A, time.Minute)
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// TestMirrorSecondaryKilled: the secondary dies during a verifying
// workload on the primary; the workload sees no error; when the
// secondary returns, only about what was written meanwhile is resynced.
func TestMirrorSecondaryKilled(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{DiskSize: 256 << 20})
	st := promoteA(t, p)
	size := st.Size

	p.B.Kill()
	p.A.WaitStatus(30*time.Second, "the peer leg failed", func(s node.Status) bool {
		return s.Peer != nil && s.Peer.State != "connected"
	})
	// 48 MiB written sequentially while the secondary is down.
	const outage = 48 << 20
	harness.StartFio(t, p.A.URI("vol"), "--rw=write", "--bs=256k", "--iodepth=8", "--offset=64M",
		"--size=48M", "--verify=crc32c", "--do_verify=1").Wait(t, 5*time.Minute)
	before := p.A.WaitStatus(10*time.Second, "status", func(node.Status) bool { return true })
	dirty := before.OutOfSync
	t.Logf("out of sync while the secondary was down: %s of %s written, volume %s",
		humanize.IBytes(uint64(dirty)), humanize.IBytes(outage), humanize.IBytes(uint64(size)))

	// A verifying workload runs across the secondary's return.
	load := harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=16",
		"--offset=0", "--size=32M", "--number_ios=6000", "--verify=crc32c", "--do_verify=1")
	p.B.Start()
	load.Wait(t, 5*time.Minute)
	harness.WaitInSync(t, p.A, 2*time.Minute)
	if dirty < outage || dirty > outage+3*st.Region+32<<20 {
		t.Fatalf("%d bytes were out of sync after writing %d during the outage: want about what was written", dirty, outage)
	}
	if dirty > size/3 {
		t.Fatalf("%d of %d bytes resynced: want far less than the volume", dirty, size)
	}
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// TestMirrorLinkCut: the link goes down during writes and comes back;
// the primary fails the peer leg and keeps serving, and afterwards the
// copies are resynced and identical.
func TestMirrorLinkCut(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{})
	promoteA(t, p)
	load := harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=8",
		"--size=32M", "--number_ios=20000", "--verify=crc32c", "--do_verify=1", "--rate_iops=2000")
	p.A.WaitStatus(time.Minute, "writes under way", func(s node.Status) bool { return s.Export != nil && s.Export.BytesWritten > 1<<20 })
	p.MA.LinkDown(t)
	p.A.WaitStatus(30*time.Second, "the peer leg failed", func(s node.Status) bool {
		return s.Peer != nil && s.Peer.State != "connected"
	})
	written := p.A.WaitStatus(10*time.Second, "status", func(node.Status) bool { return true }).Export.BytesWritten
	p.A.WaitStatus(time.Minute, "writes continue with the link down", func(s node.Status) bool {
		return s.Export.BytesWritten > written+1<<20
	})
	p.MA.LinkUp(t)
	r := load.Wait(t, 5*time.Minute)
	harness.WaitInSync(t, p.A, 2*time.Minute)
	// That the primary failed the peer leg instead of hanging is shown
	// above (writes went on with the link down); the longest write is a
	// figure, for the reader, not a pass mark.
	t.Logf("longest write: %v (peer time-out 2s)", time.Duration(r.Jobs[0].Write.ClatNS.Max))
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// TestMirrorPrimaryKilled: the primary dies during writes; when it comes
// back and is promoted again, what its bitmap marked is resynced.
func TestMirrorPrimaryKilled(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{})
	promoteA(t, p)
	load := harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=64k", "--iodepth=16",
		"--size=64M", "--time_based", "--runtime=60s")
	p.A.WaitStatus(time.Minute, "writes under way", func(s node.Status) bool { return s.Export != nil && s.Export.BytesWritten > 8<<20 })
	p.A.Kill()
	for !load.Done() {
		time.Sleep(50 * time.Millisecond)
	}
	p.A.Start()
	st, err := p.A.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Role != "secondary" || st.Export != nil {
		t.Fatalf("a restarted primary must come back as secondary, not export: %+v", st)
	}
	if st.OutOfSync == 0 {
		t.Fatalf("the primary died with writes in flight but its bitmap marks nothing")
	}
	t.Logf("the restarted node's bitmap marks %s", humanize.IBytes(uint64(st.OutOfSync)))
	p.A.CLI("promote")
	harness.WaitInSync(t, p.A, 2*time.Minute)
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// writtenPair is a pair with A primary, the first 32 MiB of the volume
// written through A, and B in sync.
func writtenPair(t *testing.T) *harness.Pair {
	t.Helper()
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{})
	promoteA(t, p)
	harness.StartFio(t, p.A.URI("vol"), "--rw=write", "--bs=1M", "--iodepth=4", "--size=32M").Wait(t, 5*time.Minute)
	harness.WaitInSync(t, p.A, time.Minute)
	return p
}

// TestMirrorVerifyRepair: a block corrupted on the secondary is found by
// verify and fixed by verify --repair.
func TestMirrorVerifyRepair(t *testing.T) {
	p := writtenPair(t)
	if out := p.A.CLI("verify"); !strings.Contains(out, " 0 mismatched") {
		t.Fatalf("verify of identical copies: %s", out)
	}
	harness.CorruptData(t, p.B, 0, 5<<20+4096, 4096)
	out := p.A.CLI("verify")
	if strings.Contains(out, " 0 mismatched") || !strings.Contains(out, "mismatched") {
		t.Fatalf("verify did not find the corrupted block: %s", out)
	}
	t.Logf("verify: %s", strings.TrimSpace(out))
	p.A.CLI("verify", "--repair")
	harness.WaitInSync(t, p.A, time.Minute)
	if out := p.A.CLI("verify"); !strings.Contains(out, " 0 mismatched") {
		t.Fatalf("verify after repair: %s", out)
	}
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// TestMirrorVerifyAll: a byte planted on the secondary's disk, in a region
// the primary never wrote, is not compared by a plain verify, which looks
// only at the regions the primary's used bitmap names, but is found by
// verify --all; verify --all --repair makes the copies the same.
func TestMirrorVerifyAll(t *testing.T) {
	p := writtenPair(t)
	// A full verify first: the copies start out the same everywhere.
	if out := p.A.CLI("verify", "--all"); !strings.Contains(out, "verify of every region: 0 mismatched") {
		t.Fatalf("full verify of identical copies: %s", out)
	}
	// One byte 48 MiB into member 0's data area: chunk 768 of that
	// member, volume chunk 1536 (64 KiB chunks over two members), volume
	// offset 96 MiB, region 96 (1 MiB regions) — well past the 32 MiB
	// fio wrote and the regions its stream marked ahead.
	harness.CorruptData(t, p.B, 0, 48<<20, 1)
	if out := p.A.CLI("verify"); !strings.Contains(out, "verify of the used regions: 0 mismatched") {
		t.Fatalf("plain verify: %s (want it to compare only the written regions)", out)
	}
	out := p.A.CLI("verify", "--all")
	if !strings.Contains(out, "verify of every region: 1 mismatched region(s): [96]") {
		t.Fatalf("verify --all did not find the planted byte in region 96: %s", out)
	}
	t.Logf("verify --all: %s", strings.TrimSpace(out))
	st, err := p.A.Status()
	if err != nil {
		t.Fatal(err)
	}
	if v := st.Verify; v == nil || !v.Full || v.Running || v.LastFull != v.Finished || v.LastFull == "" {
		t.Fatalf("status after a full verify: %+v", st.Verify)
	}
	if out := p.A.CLI("verify", "--all", "--repair"); !strings.Contains(out, "[96]; repaired") {
		t.Fatalf("verify --all --repair: %s", out)
	}
	harness.WaitInSync(t, p.A, time.Minute)
	if out := p.A.CLI("verify", "--all"); !strings.Contains(out, "verify of every region: 0 mismatched") {
		t.Fatalf("full verify after the repair: %s", out)
	}
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// TestMirrorRefusesWrongPeer: a peer of another volume, or one whose
// disks are smaller, is refused with a clear message and nothing is
// written to it.
func TestMirrorRefusesWrongPeer(t *testing.T) {
	requirePair(t)
	for _, tc := range []struct {
		name string
		o    harness.PairOptions
		want string
	}{
		{"another volume", harness.PairOptions{NameB: "other"}, "another volume"},
		{"smaller peer", harness.PairOptions{DiskSizeB: 64 << 20}, "smaller"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := harness.NewPair(t, tc.o)
			before := harness.DiskHashes(t, p.B.Disks)
			p.A.CLI("promote")
			st := p.A.WaitStatus(time.Minute, "the peer refused", func(s node.Status) bool {
				return s.Peer != nil && s.Peer.State == "standalone"
			})
			if !strings.Contains(st.Peer.LastError, tc.want) || len(st.Problems) == 0 {
				t.Fatalf("refusal says %q (problems %q): want it to say %q", st.Peer.LastError, st.Problems, tc.want)
			}
			t.Logf("refused: %s", st.Peer.LastError)
			p.A.CLI("demote")
			p.B.Stop()
			if after := harness.DiskHashes(t, p.B.Disks); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Fatal("the refused peer's disks were written to")
			}
		})
	}
}

// TestSecondaryStartPokesPrimary: a primary that would not dial its
// secondary again for an hour connects as soon as the secondary starts,
// because the secondary tells it that it is up.
func TestSecondaryStartPokesPrimary(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{Args: []string{"--reconnect-interval", "1h"}})
	promoteA(t, p)
	p.B.Kill()
	p.A.WaitStatus(30*time.Second, "the peer leg failed", func(s node.Status) bool {
		return s.Peer != nil && s.Peer.State != "connected"
	})
	p.B.Start()
	harness.WaitInSync(t, p.A, time.Minute)
}
