package resync

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
)

const (
	testRegion = 64 << 10
	// testVol has 100 regions, the last one short.
	testVol = 99*testRegion + 4096
)

// openTest opens a bitmap on st and closes it at cleanup unless closed.
func openTest(t *testing.T, st blockdev.Device, o BitmapOptions) *Bitmap {
	t.Helper()
	b, err := OpenBitmap(st, testVol, testRegion, o)
	if err != nil {
		t.Fatalf("OpenBitmap: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

var errCrashed = errors.New("test: machine crashed")

// reopen simulates a crash of the machine: unflushed store writes are
// dropped, and the bitmap is loaded again from what survived.
func reopen(t *testing.T, b *Bitmap, st *testStore) *Bitmap {
	t.Helper()
	st.FailAll(fault.Any, errCrashed) // nothing more reaches the store
	b.Close()
	st.Crash()
	st.Heal()
	return openTest(t, st, BitmapOptions{})
}

func dirtyList(b *Bitmap) []int64 {
	var out []int64
	for r, ok := b.NextDirty(0); ok; r, ok = b.NextDirty(r + 1) {
		out = append(out, r)
	}
	return out
}

func TestOpenBitmapChecksGeometry(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion) - 1)
	if _, err := OpenBitmap(st, testVol, testRegion, BitmapOptions{}); !errors.Is(err, ErrGeometry) {
		t.Fatalf("store too small: %v, want ErrGeometry", err)
	}
	st = newTestStore(StoreSize(testVol, testRegion))
	if _, err := OpenBitmap(st, testVol, 3000, BitmapOptions{}); !errors.Is(err, ErrGeometry) {
		t.Fatalf("region 3000: %v, want ErrGeometry", err)
	}
}

func TestMarkIsDurableBeforeItReturns(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{})
	if err := b.Mark(testRegion-1, 2); err != nil { // regions 0 and 1
		t.Fatal(err)
	}
	if err := b.Mark(99*testRegion, 10); err != nil { // the short last region
		t.Fatal(err)
	}
	if err := b.Mark(5, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Mark(testVol-1, 2); !errors.Is(err, blockdev.ErrOutOfRange) {
		t.Fatalf("Mark past the end: %v, want ErrOutOfRange", err)
	}
	b = reopen(t, b, st)
	if got, want := dirtyList(b), []int64{0, 1, 99}; !slices.Equal(got, want) {
		t.Fatalf("dirty after crash = %v, want %v", got, want)
	}
	for r := range b.Regions() {
		if b.Used(r) != slices.Contains([]int64{0, 1, 99}, r) {
			t.Fatalf("Used(%d) = %v after crash", r, b.Used(r))
		}
	}
	if got, want := b.DirtyBytes(), int64(2*testRegion+4096); got != want {
		t.Fatalf("DirtyBytes = %d, want %d", got, want)
	}
	if n, bytes := b.CountDirty(1, 98); n != 1 || bytes != testRegion {
		t.Fatalf("CountDirty(1, 98) = %d, %d", n, bytes)
	}
}

func TestMarkOfDurableBitsDoesNoIO(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{})
	if err := b.Mark(0, 3*testRegion); err != nil {
		t.Fatal(err)
	}
	w, f := st.counts()
	for i := range 10 {
		if err := b.Mark(int64(i)*100, 4096); err != nil {
			t.Fatal(err)
		}
	}
	if w2, f2 := st.counts(); w2 != w || f2 != f {
		t.Fatalf("Marks of durable bits did I/O: writes %d->%d flushes %d->%d", w, w2, f, f2)
	}
	if s := b.Stats(); s.FastMarks != 10 || s.Marks != 1 {
		t.Fatalf("stats %+v, want 10 fast marks and 1 slow", s)
	}
}

// TestMarksShareCommits: Marks that arrive while a metadata write is in
// progress are carried by one next write, not one each.
func TestMarksShareCommits(t *testing.T) {
	const n = 32
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{})
	st.Hang(fault.Flush)
	t.Cleanup(st.Release) // a failing test must not leave Close waiting
	var wg sync.WaitGroup
	errs := make(chan error, n)
	mark := func(r int64) {
		defer wg.Done()
		errs <- b.Mark(r*testRegion, 1)
	}
	wg.Add(1)
	go mark(0)
	waitFor(t, "the first commit to reach the store flush", func() bool { return st.Blocked() == 1 })
	for r := int64(1); r < n; r++ {
		wg.Add(1)
		go mark(r)
	}
	waitFor(t, "every Mark to wait", func() bool { return b.Stats().Waiting == n })
	st.Release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, flushes := st.counts()
	if flushes >= n || flushes != 2 {
		t.Fatalf("%d Marks took %d store flushes, want 2", n, flushes)
	}
	if b.DirtyCount() != n {
		t.Fatalf("DirtyCount = %d, want %d", b.DirtyCount(), n)
	}
	b = reopen(t, b, st)
	if b.DirtyCount() != n {
		t.Fatalf("after crash DirtyCount = %d, want %d", b.DirtyCount(), n)
	}
}

func TestCleanIsLazyAndSafe(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{FlushInterval: time.Hour})
	if err := b.Mark(0, 4*testRegion); err != nil {
		t.Fatal(err)
	}
	w, f := st.counts()
	b.Clean(1, 2)
	if b.Dirty(1) || b.Dirty(2) || !b.Dirty(0) || !b.Dirty(3) {
		t.Fatalf("after Clean(1, 2): dirty %v", dirtyList(b))
	}
	if w2, f2 := st.counts(); w2 != w || f2 != f {
		t.Fatal("Clean wrote to the store at once")
	}
	// A crash before the cleared bits are written leaves them set: safe.
	b = reopen(t, b, st)
	if got := dirtyList(b); !slices.Equal(got, []int64{0, 1, 2, 3}) {
		t.Fatalf("after crash before Sync: dirty %v, want 0-3", got)
	}
	b.Clean(1, 2)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, st)
	if got := dirtyList(b); !slices.Equal(got, []int64{0, 3}) {
		t.Fatalf("after Sync and crash: dirty %v, want [0 3]", got)
	}
	// Used bits survive Clean.
	if !b.Used(1) || !b.Used(2) {
		t.Fatal("Clean cleared used bits")
	}
}

func TestCleanedBitsAreWrittenByTheFlusher(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{FlushInterval: 5 * time.Millisecond})
	if err := b.Mark(0, testRegion); err != nil {
		t.Fatal(err)
	}
	_, f := st.counts()
	b.Clean(0, 0)
	waitFor(t, "the flusher to write the cleared bit", func() bool {
		_, f2 := st.counts()
		return f2 > f
	})
	b = reopen(t, b, st)
	if b.DirtyCount() != 0 {
		t.Fatalf("dirty %v after the flusher ran", dirtyList(b))
	}
}

func TestMarkAfterCleanIsFastUntilWritten(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{FlushInterval: time.Hour})
	if err := b.Mark(0, testRegion); err != nil {
		t.Fatal(err)
	}
	b.Clean(0, 0)
	w, _ := st.counts()
	if err := b.Mark(0, 1); err != nil {
		t.Fatal(err)
	}
	if w2, _ := st.counts(); w2 != w {
		t.Fatal("Mark of a cleaned but still durable bit wrote")
	}
	// The pending write of the block now carries the set bit.
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, st)
	if !b.Dirty(0) {
		t.Fatal("bit lost: Mark after Clean, then Sync, then crash")
	}
}

// TestMarkWaitsForAClearingWrite: while a write that clears a bit is in
// progress, the bit is not durable, so a Mark of it must wait for a write
// that sets it again.
func TestMarkWaitsForAClearingWrite(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{FlushInterval: time.Hour})
	if err := b.Mark(0, testRegion); err != nil {
		t.Fatal(err)
	}
	b.Clean(0, 0)
	st.Hang(fault.Flush)
	t.Cleanup(st.Release) // a failing test must not leave Close waiting
	syncDone := make(chan error, 1)
	go func() { syncDone <- b.Sync() }()
	waitFor(t, "the clearing write to reach the flush", func() bool { return st.Blocked() == 1 })
	markDone := make(chan error, 1)
	go func() { markDone <- b.Mark(0, 1) }()
	waitFor(t, "Mark to wait", func() bool { return b.Stats().Waiting == 2 })
	select {
	case err := <-markDone:
		t.Fatalf("Mark returned (%v) while the bit was being cleared on the store", err)
	default:
	}
	st.Release()
	if err := <-syncDone; err != nil {
		t.Fatal(err)
	}
	if err := <-markDone; err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, st)
	if !b.Dirty(0) {
		t.Fatal("bit lost after Mark returned")
	}
}

func TestStoreErrorFailsMarkAndIsRetried(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{FlushInterval: time.Hour})
	boom := errors.New("disk on fire")
	st.FailAll(fault.Write, boom)
	if err := b.Mark(0, 1); !errors.Is(err, boom) {
		t.Fatalf("Mark with a failing store: %v, want %v", err, boom)
	}
	if !b.Dirty(0) {
		t.Fatal("a failed Mark must leave the bit set in memory")
	}
	if err := b.Mark(0, 1); !errors.Is(err, boom) {
		t.Fatalf("second Mark: %v, want %v (the bit is not durable)", err, boom)
	}
	st.Heal()
	if err := b.Mark(0, 1); err != nil {
		t.Fatalf("Mark after the store healed: %v", err)
	}
	if s := b.Stats(); s.Errors != 2 || s.Commits != 1 {
		t.Fatalf("stats %+v, want 2 errors and 1 commit", s)
	}
	b = reopen(t, b, st)
	if !b.Dirty(0) {
		t.Fatal("bit not durable after a successful retry")
	}
}

func TestTrimmedClearsWholeRegionsOnly(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{FlushInterval: time.Hour})
	if err := b.Mark(0, testVol); err != nil {
		t.Fatal(err)
	}
	b.Trimmed(testRegion/2, 3*testRegion) // whole: 1, 2
	b.Trimmed(98*testRegion, testVol-98*testRegion)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, st)
	for r := range b.Regions() {
		want := !slices.Contains([]int64{1, 2, 98, 99}, r)
		if b.Used(r) != want {
			t.Fatalf("Used(%d) = %v, want %v", r, b.Used(r), want)
		}
	}
	if b.DirtyCount() != b.Regions() {
		t.Fatal("Trimmed changed dirty bits")
	}
	if got, want := b.UsedBytes(), int64(96*testRegion); got != want {
		t.Fatalf("UsedBytes = %d, want %d", got, want)
	}
}

func TestClearAll(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{FlushInterval: time.Hour})
	if err := b.Mark(0, testVol); err != nil {
		t.Fatal(err)
	}
	if err := b.ClearAll(); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, st)
	if b.DirtyCount() != 0 || b.UsedBytes() != testVol {
		t.Fatalf("after ClearAll and a crash: %d dirty, %d bytes used", b.DirtyCount(), b.UsedBytes())
	}
}

func TestMarkDiscardLeavesUsedAlone(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{})
	if err := b.MarkDiscard(0, testRegion); err != nil {
		t.Fatal(err)
	}
	if !b.Dirty(0) || b.Used(0) {
		t.Fatalf("after MarkDiscard: dirty %v used %v", b.Dirty(0), b.Used(0))
	}
}

func TestSnapshotMerge(t *testing.T) {
	a := openTest(t, newTestStore(StoreSize(testVol, testRegion)), BitmapOptions{})
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{})
	for _, r := range []int64{3, 64, 99} {
		if err := a.Mark(r*testRegion, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Mark(5*testRegion, 1); err != nil {
		t.Fatal(err)
	}
	snap := a.Snapshot()
	if len(snap) != 13 {
		t.Fatalf("snapshot of 100 regions is %d bytes, want 13", len(snap))
	}
	if err := b.Merge(snap); err != nil {
		t.Fatal(err)
	}
	if err := b.Merge(snap[:12]); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("Merge of a short snapshot: %v, want ErrSnapshot", err)
	}
	b = reopen(t, b, st)
	if got, want := dirtyList(b), []int64{3, 5, 64, 99}; !slices.Equal(got, want) {
		t.Fatalf("after Merge and crash: dirty %v, want %v", got, want)
	}
	if !b.Used(64) {
		t.Fatal("merged regions must be used")
	}
}

func TestSetAll(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{})
	if err := b.Mark(7*testRegion, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.SetAll(); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, st)
	if b.DirtyCount() != 100 || b.DirtyBytes() != testVol {
		t.Fatalf("after SetAll: %d dirty, %d bytes", b.DirtyCount(), b.DirtyBytes())
	}
	if !b.Used(7) || b.Used(8) {
		t.Fatal("SetAll changed used bits")
	}
}

// TestSetAllUsed: every region becomes used, durably, and no dirty bit
// changes.
func TestSetAllUsed(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{})
	if err := b.Mark(7*testRegion, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.SetAllUsed(); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, st)
	if b.UsedBytes() != testVol {
		t.Fatalf("after SetAllUsed and a reopen: %d of %d bytes used", b.UsedBytes(), int64(testVol))
	}
	if b.DirtyCount() != 1 || !b.Dirty(7) {
		t.Fatalf("SetAllUsed changed dirty bits: %d dirty", b.DirtyCount())
	}
}

func TestLoadIgnoresBitsPastTheEnd(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	ones := make([]byte, st.Size())
	for i := range ones {
		ones[i] = 0xff
	}
	if _, err := st.mem.WriteAt(ones, 0); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, st, BitmapOptions{})
	if b.DirtyCount() != 100 {
		t.Fatalf("DirtyCount = %d, want 100", b.DirtyCount())
	}
	if _, ok := b.NextDirty(100); ok {
		t.Fatal("NextDirty found a region past the end")
	}
}

func TestCloseWritesPendingAndRefusesMore(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b, err := OpenBitmap(st, testVol, testRegion, BitmapOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Mark(0, 1); err != nil {
		t.Fatal(err)
	}
	b.Clean(0, 0)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Mark(0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Mark after Close: %v", err)
	}
	if err := b.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: %v", err)
	}
	st.Crash()
	b2 := openTest(t, st, BitmapOptions{})
	if b2.DirtyCount() != 0 {
		t.Fatal("Close did not write the cleared bit")
	}
}

// TestConcurrentMarkCleanSync runs Marks, Cleans and Syncs together under
// the race detector, then checks that every region whose last operation
// was a Mark is dirty after a crash.
func TestConcurrentMarkCleanSync(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{FlushInterval: time.Millisecond})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			// Each goroutine owns regions g, g+4, ...
			for i := range 200 {
				r := int64(g + 4*(i%25))
				if i%3 == 2 {
					b.Clean(r, r)
					continue
				}
				if err := b.Mark(r*testRegion, 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := b.Sync(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	// The last operation on each region: i = 175..199 covers all 25
	// regions of a goroutine once; i%3 == 2 means Clean.
	want := map[int64]bool{}
	for g := range 4 {
		for i := 175; i < 200; i++ {
			want[int64(g+4*(i%25))] = i%3 != 2
		}
	}
	b = reopen(t, b, st)
	for r, dirty := range want {
		if dirty && !b.Dirty(r) {
			t.Errorf("region %d: last op was Mark, not dirty after crash", r)
		}
	}
}

// TestMarkAhead: the marked range and the regions ahead get dirty and used
// bits, all in one durable commit, clipped at the end of the volume; a
// range whose bits are durable already marks nothing ahead.
func TestMarkAhead(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{FlushInterval: time.Hour})
	first, last, err := b.MarkAhead(testRegion, 4096, 4)
	if err != nil || first != 2 || last != 5 {
		t.Fatalf("MarkAhead = [%d, %d], %v; want [2, 5]", first, last, err)
	}
	if got := dirtyList(b); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("dirty after MarkAhead: %v, want 1..5", got)
	}
	if !b.Used(1) || !b.Used(2) || !b.Used(5) || b.Used(6) {
		t.Fatalf("used bits: regions 1 %v, 2 %v, 5 %v, 6 %v; want 1..5", b.Used(1), b.Used(2), b.Used(5), b.Used(6))
	}
	if s := b.Stats(); s.Commits != 1 || s.MarkedAhead != 4 {
		t.Fatalf("stats %+v: want one commit and 4 regions marked ahead", s)
	}
	// Already durable: nothing ahead, no I/O.
	if first, last, err := b.MarkAhead(testRegion+4096, 4096, 4); err != nil || last >= first {
		t.Fatalf("MarkAhead of durable bits = [%d, %d], %v; want none", first, last, err)
	}
	if s := b.Stats(); s.Commits != 1 {
		t.Fatalf("a durable range committed again: %+v", s)
	}
	// At the end of the volume the look-ahead stops at the last region.
	if first, last, err := b.MarkAhead(97*testRegion, 4096, 4); err != nil || first != 98 || last != 99 {
		t.Fatalf("MarkAhead near the end = [%d, %d], %v; want [98, 99]", first, last, err)
	}
	b = reopen(t, b, st)
	if got := dirtyList(b); !slices.Equal(got, []int64{1, 2, 3, 4, 5, 97, 98, 99}) {
		t.Fatalf("dirty after a crash: %v; the regions marked ahead were not durable", got)
	}
}

// TestMarkRegions: a list of regions is marked dirty and used, durably,
// in one metadata write; a region out of range marks nothing.
func TestMarkRegions(t *testing.T) {
	st := newTestStore(StoreSize(testVol, testRegion))
	b := openTest(t, st, BitmapOptions{})
	regions := []int64{2, 3, 4, 50, 99}
	if err := b.MarkRegions(regions); err != nil {
		t.Fatal(err)
	}
	if s := b.Stats(); s.Commits != 1 {
		t.Fatalf("%d metadata writes for one MarkRegions", s.Commits)
	}
	if err := b.MarkRegions([]int64{7, 100}); !errors.Is(err, ErrGeometry) {
		t.Fatalf("MarkRegions past the end: %v, want ErrGeometry", err)
	}
	if err := b.MarkRegions(nil); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, st)
	if got := dirtyList(b); !slices.Equal(got, regions) {
		t.Fatalf("dirty after crash = %v, want %v", got, regions)
	}
	for r := range b.Regions() {
		if b.Used(r) != slices.Contains(regions, r) {
			t.Fatalf("Used(%d) = %v after crash", r, b.Used(r))
		}
	}
}

// TestNewRegionSet: a set in memory holds exactly the regions given.
func TestNewRegionSet(t *testing.T) {
	set, err := NewRegionSet(testVol, testRegion, []int64{0, 1, 42, 99})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if got := dirtyList(set); !slices.Equal(got, []int64{0, 1, 42, 99}) || set.VolumeSize() != testVol || set.RegionSize() != testRegion {
		t.Fatalf("set holds %v (volume %d, region %d)", got, set.VolumeSize(), set.RegionSize())
	}
	if _, err := NewRegionSet(testVol, testRegion, []int64{100}); !errors.Is(err, ErrGeometry) {
		t.Fatalf("a region past the end: %v, want ErrGeometry", err)
	}
}
