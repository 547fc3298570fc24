package mirror

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/resync"
	"github.com/netraid/netraid/stripe"
)

// TestRebuildOneDisk: the local leg is a stripe of two disks; one disk is
// lost and replaced by a blank one. The rebuild copies that disk's share
// of the used regions, plus the regions written while the leg was failed,
// and nothing more; then the legs are identical.
func TestRebuildOneDisk(t *testing.T) {
	const chunk = 64 << 10
	st := newStore()
	bm, err := resync.OpenBitmap(st, volSize, rs, resync.BitmapOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer bm.Close()
	m, err := New(volSize, bm, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	disks := []*blockdev.Mem{blockdev.NewMem(volSize / 2), blockdev.NewMem(volSize / 2)}
	set, err := stripe.New([]blockdev.Device{disks[0], disks[1]}, chunk)
	if err != nil {
		t.Fatal(err)
	}
	local, err := m.AddLeg("local", set, InSync, true)
	if err != nil {
		t.Fatal(err)
	}
	peer := blockdev.NewMem(volSize)
	if _, err := m.AddLeg("peer", peer, InSync, false); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	used := int64(volSize / 2) // the first half of the volume is written
	if _, err := m.WriteAt(randBytes(rng, int(used)), 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}

	// Disk 1 dies; the volume goes on through the peer.
	m.FailLeg(local, "test", errors.New("disk 1: I/O error"))
	late := randBytes(rng, rs)
	if _, err := m.WriteAt(late, used+rs); err != nil { // an unused region, written while failed
		t.Fatal(err)
	}
	if _, err := set.Replace(1, blockdev.NewMem(volSize/2)); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveLeg(local); err != nil {
		t.Fatal(err)
	}
	local, err = m.AddLeg("local", set, Resyncing, true)
	if err != nil {
		t.Fatal(err)
	}

	visitStore := blockdev.NewMem(resync.StoreSize(volSize, rs))
	visit, err := resync.OpenBitmap(visitStore, volSize, rs, resync.BitmapOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer visit.Close()
	if err := visit.SetAll(); err != nil {
		t.Fatal(err)
	}
	for r := range visit.Regions() {
		if !bm.Used(r) && !bm.Dirty(r) {
			visit.Clean(r, r)
		}
	}
	pieces := func(off, n int64) [][2]int64 {
		var out [][2]int64
		for _, e := range stripe.Map(off, n, chunk, 2) {
			if e.Disk == 1 {
				out = append(out, [2]int64{off + e.BufOff, e.Len})
			}
		}
		return out
	}
	err = m.Rebuild(context.Background(), local, resync.NewEngine(resync.Options{}), RebuildOptions{Visit: visit, Pieces: pieces})
	if err != nil {
		t.Fatal(err)
	}
	if local.State() != InSync {
		t.Fatalf("local leg after rebuild: %v", local.State())
	}
	copied := local.Stats().SyncBytes
	want := used/2 + int64(rs) // disk 1's share of the used half, and the region written while failed
	if copied != want {
		t.Fatalf("rebuild copied %d bytes, want %d (one disk's share %d plus %d missed)", copied, want, used/2, rs)
	}
	a, b := make([]byte, volSize), peer.Bytes()
	if _, err := set.ReadAt(a, 0); err != nil {
		t.Fatal(err)
	}
	if i := devtest.FirstDiff(a[:used+2*rs], b[:used+2*rs]); i >= 0 {
		t.Fatalf("after the rebuild the legs differ at %d", i)
	}
	if !bytes.Equal(a[used+rs:used+2*rs], late) {
		t.Fatal("the write made while the leg was failed is not on the rebuilt leg")
	}
}
