package mirror

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/resync"
)

// degrade writes base over the volume with both legs in sync, fails the
// peer, and writes to the given regions (part of each) with the peer
// down. It returns the volume's contents.
func (r *rig) degrade(rng *rand.Rand, regions []int64) []byte {
	r.t.Helper()
	base := randBytes(rng, volSize)
	r.write(0, base)
	r.flush()
	r.fault["peer"].FailAll(fault.Write, errDead)
	for _, reg := range regions {
		p := randBytes(rng, 1+rng.IntN(rs-100))
		off := reg*rs + rng.Int64N(rs-int64(len(p)))
		r.write(off, p)
		copy(base[off:], p)
	}
	r.flush()
	if r.leg["peer"].State() != Failed {
		r.t.Fatal("peer did not fail")
	}
	return base
}

// TestResyncCopiesOnlyDirtyRegions: after a leg was down, resync copies
// exactly the regions written meanwhile, and the legs end identical.
func TestResyncCopiesOnlyDirtyRegions(t *testing.T) {
	r := newRig(t)
	regions := []int64{0, 3, 4, 17, 40, 63}
	r.degrade(rand.New(rand.NewPCG(1, 1)), regions)
	if got := dirty(r.bm); !slices.Equal(got, regions) {
		t.Fatalf("dirty while the peer is down: %v, want %v", got, regions)
	}
	peer := r.readd("peer")
	if peer.State() != Resyncing {
		t.Fatal("re-added peer is not resyncing")
	}
	writesBefore := r.fault["peer"].Count(fault.Write)
	var last resync.Progress
	e := resync.NewEngine(resync.Options{Progress: func(p resync.Progress) { last = p }})
	if err := r.m.Resync(context.Background(), peer, e); err != nil {
		t.Fatal(err)
	}
	if peer.State() != InSync {
		t.Fatalf("peer is %s after its resync", peer.State())
	}
	want := int64(len(regions)) * rs
	if got := peer.Stats().SyncBytes; got != want {
		t.Fatalf("resync wrote %d bytes, want %d (%d regions)", got, want, len(regions))
	}
	if got := r.fault["peer"].Count(fault.Write) - writesBefore; got != len(regions) {
		t.Fatalf("peer saw %d writes, want %d", got, len(regions))
	}
	if last.Done != want || last.Total != want {
		t.Fatalf("last progress %+v", last)
	}
	r.same("local", "peer")
	if got := dirty(r.bm); len(got) != 0 {
		t.Fatalf("dirty after the resync: %v", got)
	}
	// Reads may go to the peer again.
	r.fault["local"].FailAll(fault.Read, errDead)
	if _, err := r.m.ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatalf("read from the resynced peer: %v", err)
	}
}

// TestWritesDuringResync: writers hammer the volume while a full resync
// runs; both legs end byte-identical.
func TestWritesDuringResync(t *testing.T) {
	for seed := range uint64(3) {
		r := newRig(t)
		rng := rand.New(rand.NewPCG(seed, 2))
		r.write(0, randBytes(rng, volSize))
		if err := r.m.RemoveLeg(r.leg["peer"]); err != nil {
			t.Fatal(err)
		}
		r.fault["peer"].Close()
		spare := r.add("spare", Resyncing, false)
		if err := r.bm.SetAll(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var writes atomic.Int64
		for g := range 3 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(g)))
				for i := 0; i < 2000 && (ctx.Err() == nil || i < 50); i++ {
					p := randBytes(rng, 1+rng.IntN(3*rs/2))
					off := rng.Int64N(volSize - int64(len(p)))
					var err error
					if i%17 == 0 {
						err = r.m.Flush()
					} else {
						_, err = r.m.WriteAt(p, off)
					}
					if err != nil {
						t.Error(err)
						return
					}
					writes.Add(1)
				}
			})
		}
		waitFor(t, "writers to start", func() bool { return writes.Load() >= 10 })
		err := r.m.Resync(ctx, spare, resync.NewEngine(resync.Options{BatchBytes: 4 * rs}))
		cancel()
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if spare.State() != InSync {
			t.Fatalf("spare is %s", spare.State())
		}
		r.flush()
		r.same("local", "spare")
		if got := dirty(r.bm); len(got) != 0 {
			t.Fatalf("dirty after resync and flush: %v", got)
		}
	}
}

// TestBitmapSurvivesCrash: every region written (and acknowledged) since
// the last flush is dirty after a crash of the machine, whatever the
// bitmap wrote in between; regions far from every write are not.
func TestBitmapSurvivesCrash(t *testing.T) {
	r := newRig(t)
	rng := rand.New(rand.NewPCG(5, 5))
	written := map[int64]bool{}
	sinceFlush := map[int64]bool{}
	for i := range 60 {
		switch {
		case i%7 == 6:
			r.flush()
			clear(sinceFlush)
		case i%11 == 10:
			if err := r.bm.Sync(); err != nil {
				t.Fatal(err)
			}
		default:
			n := 1 + rng.Int64N(rs)
			off := rng.Int64N(volSize/2 - n)
			r.write(off, randBytes(rng, int(n)))
			first, last := resync.Regions(off, n, rs)
			for reg := first; reg <= last; reg++ {
				written[reg], sinceFlush[reg] = true, true
			}
		}
	}
	if len(sinceFlush) == 0 {
		t.Fatal("nothing written since the last flush")
	}
	// The machine dies: nothing more reaches the store.
	r.st.FailAll(fault.Any, errDead)
	r.bm.Close()
	r.st.Crash()
	r.st.Heal()
	r.openBitmap()
	for reg := range sinceFlush {
		if !r.bm.Dirty(reg) {
			t.Errorf("region %d was written after the last flush and is clean after the crash", reg)
		}
	}
	// A dirty region was written, or marked ahead of a write that looked
	// sequential: at most markAhead regions after a written one.
	for _, reg := range dirty(r.bm) {
		near := false
		for w := max(reg-markAhead, 0); w <= reg && !near; w++ {
			near = written[w]
		}
		if !near {
			t.Errorf("region %d is dirty, and neither it nor the %d regions before it were written", reg, markAhead)
		}
	}
}

// TestResyncResumesFromCursor: a resync stopped midway reports a cursor;
// resuming there copies only the rest.
func TestResyncResumesFromCursor(t *testing.T) {
	r := newRig(t)
	var regions []int64
	for reg := int64(0); reg < 64; reg += 2 {
		regions = append(regions, reg)
	}
	r.degrade(rand.New(rand.NewPCG(7, 7)), regions)
	peer := r.readd("peer")
	ctx, cancel := context.WithCancel(context.Background())
	e := resync.NewEngine(resync.Options{BatchBytes: rs, Progress: func(p resync.Progress) {
		if p.Done >= 10*rs {
			cancel()
		}
	}})
	if err := r.m.Resync(ctx, peer, e); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	first := peer.Stats().SyncBytes
	cursor := e.Progress().Cursor
	if peer.State() != Resyncing || first < 10*rs || first >= int64(len(regions))*rs {
		t.Fatalf("after the first run: %s, %d bytes copied", peer.State(), first)
	}
	e2 := resync.NewEngine(resync.Options{StartAt: cursor})
	if err := r.m.Resync(context.Background(), peer, e2); err != nil {
		t.Fatal(err)
	}
	if total := peer.Stats().SyncBytes; total != int64(len(regions))*rs {
		t.Fatalf("copied %d + %d bytes for %d regions", first, total-first, len(regions))
	}
	if peer.State() != InSync {
		t.Fatalf("peer is %s", peer.State())
	}
	r.same("local", "peer")
}

func TestResyncTargetFailure(t *testing.T) {
	r := newRig(t)
	r.degrade(rand.New(rand.NewPCG(8, 8)), []int64{1, 2, 3})
	peer := r.readd("peer")
	r.fault["peer"].FailNth(fault.Write, 1, errDead)
	err := r.m.Resync(context.Background(), peer, resync.NewEngine(resync.Options{}))
	var le *LegError
	if !errors.As(err, &le) || le.Leg != "peer" || !errors.Is(err, errDead) {
		t.Fatalf("Resync with a failing target: %v", err)
	}
	if peer.State() != Failed || r.leg["local"].State() != InSync {
		t.Fatalf("states: peer %s local %s", peer.State(), r.leg["local"].State())
	}
	if got := dirty(r.bm); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("dirty after a failed resync: %v", got)
	}
}

func TestResyncSourceFailure(t *testing.T) {
	r := newRig(t)
	r.degrade(rand.New(rand.NewPCG(9, 9)), []int64{1, 2})
	peer := r.readd("peer")
	r.fault["local"].FailAll(fault.Read, errDead)
	var le *LegError
	err := r.m.Resync(context.Background(), peer, resync.NewEngine(resync.Options{}))
	if !errors.As(err, &le) || le.Leg != "local" {
		t.Fatalf("Resync with a failing source: %v", err)
	}
	if r.leg["local"].State() != Failed || peer.State() != Resyncing {
		t.Fatalf("states: local %s peer %s", r.leg["local"].State(), peer.State())
	}
}

// TestResyncSkipUnused: a full sync of a blank leg copies the used regions
// and zeroes the others, ending identical to a source whose unused
// regions read as zeroes.
func TestResyncSkipUnused(t *testing.T) {
	r := newRig(t)
	rng := rand.New(rand.NewPCG(10, 10))
	for _, reg := range []int64{3, 9, 10} {
		r.write(reg*rs+7, randBytes(rng, 300))
	}
	if err := r.m.RemoveLeg(r.leg["peer"]); err != nil {
		t.Fatal(err)
	}
	r.fault["peer"].Close()
	spare := r.add("spare", Resyncing, false)
	garbage := randBytes(rng, volSize)
	if _, err := r.mem["spare"].WriteAt(garbage, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.bm.SetAll(); err != nil {
		t.Fatal(err)
	}
	e := resync.NewEngine(resync.Options{SkipUnused: true})
	if err := r.m.Resync(context.Background(), spare, e); err != nil {
		t.Fatal(err)
	}
	r.same("local", "spare")
	if n := r.fault["local"].Count(fault.Read); n != 3 {
		t.Fatalf("read %d regions from the source, want the 3 used ones", n)
	}
}

func TestResyncChecks(t *testing.T) {
	r := newRig(t)
	e := resync.NewEngine(resync.Options{})
	if err := r.m.Resync(context.Background(), r.leg["peer"], e); !errors.Is(err, ErrLeg) {
		t.Fatalf("Resync of an in-sync leg: %v", err)
	}
	spare := r.add("spare", Resyncing, false)
	if err := r.bm.SetAll(); err != nil {
		t.Fatal(err)
	}
	e.Pause()
	done := make(chan error, 1)
	go func() { done <- r.m.Resync(context.Background(), spare, e) }()
	waitFor(t, "the resync to pause", func() bool { return e.Progress().Paused })
	if err := r.m.Resync(context.Background(), spare, resync.NewEngine(resync.Options{})); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Resync of a leg: %v", err)
	}
	e.Resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if spare.State() != InSync {
		t.Fatalf("spare is %s", spare.State())
	}
}

// TestRemovedTargetEndsResync: removing the target while it resyncs ends
// the resync with an error, and the leg never becomes in sync.
func TestRemovedTargetEndsResync(t *testing.T) {
	r := newRig(t)
	r.degrade(rand.New(rand.NewPCG(11, 11)), []int64{1, 2, 3})
	peer := r.readd("peer")
	e := resync.NewEngine(resync.Options{})
	e.Pause()
	done := make(chan error, 1)
	go func() { done <- r.m.Resync(context.Background(), peer, e) }()
	waitFor(t, "the resync to pause", func() bool { return e.Progress().Paused })
	if err := r.m.RemoveLeg(peer); err != nil {
		t.Fatal(err)
	}
	e.Resume()
	if err := <-done; !errors.Is(err, ErrLeg) {
		t.Fatalf("Resync of a removed leg: %v", err)
	}
	if peer.State() == InSync {
		t.Fatal("a removed leg became in sync")
	}
	r.fault["peer"].Close()
}

// TestAbsentPeerPlaceholder: a primary that starts without its peer
// attaches a failed placeholder, so every write is kept dirty; when the
// peer connects it joins resyncing beside the placeholder, which then
// goes, and the resync copies everything written meanwhile.
func TestAbsentPeerPlaceholder(t *testing.T) {
	r := newRig(t)
	if err := r.m.RemoveLeg(r.leg["peer"]); err != nil {
		t.Fatal(err)
	}
	placeholder, err := r.m.AddLeg("peer", blockdev.NewMem(volSize), Failed, false)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 13))
	for _, reg := range []int64{2, 9, 33} {
		r.write(reg*rs, randBytes(rng, 500))
	}
	r.flush()
	if got := dirty(r.bm); !slices.Equal(got, []int64{2, 9, 33}) {
		t.Fatalf("dirty with the peer absent: %v", got)
	}
	if placeholder.Stats().Writes != 0 {
		t.Fatal("the placeholder got writes")
	}
	// The peer (still holding what it had before) connects.
	peer := r.attach("peer", r.fault["peer"], r.mem["peer"], Resyncing, false)
	if err := r.m.RemoveLeg(placeholder); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Resync(context.Background(), peer, resync.NewEngine(resync.Options{})); err != nil {
		t.Fatal(err)
	}
	if got := peer.Stats().SyncBytes; got != 3*rs {
		t.Fatalf("copied %d bytes, want 3 regions", got)
	}
	r.same("local", "peer")
	if got := dirty(r.bm); len(got) != 0 {
		t.Fatalf("dirty after the resync: %v", got)
	}
}

// TestLoneLegNeverCleans: with fewer legs than Copies, the bits are the
// record of what the missing copy lacks, and flushes leave them.
func TestLoneLegNeverCleans(t *testing.T) {
	r := newRig(t)
	if err := r.m.RemoveLeg(r.leg["peer"]); err != nil {
		t.Fatal(err)
	}
	r.fault["peer"].Close()
	r.write(7*rs, []byte{7})
	r.flush()
	if !r.bm.Dirty(7) {
		t.Fatal("a flush with one leg of two cleaned a bit")
	}
}
