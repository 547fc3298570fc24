package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/resync"
)

var errDead = errors.New("test: leg died")

// durableStore is a bitmap store that keeps the image of what it held at
// its last flush: what would survive a crash.
type durableStore struct {
	*blockdev.Mem
	mu  sync.Mutex
	img []byte
}

func (s *durableStore) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.Mem.Flush(); err != nil {
		return err
	}
	s.img = s.Mem.Bytes()
	return nil
}

// dirtyOnDisk reports whether region r's dirty bit is durable.
func (s *durableStore) dirtyOnDisk(r int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.img != nil && s.img[r/8]&(1<<(r%8)) != 0
}

// orderLeg checks, on every write that reaches it, that the dirty bits of
// the regions written are durable on the store.
type orderLeg struct {
	blockdev.Device
	st         *durableStore
	mu         sync.Mutex
	checked    int
	violations []string
}

func (l *orderLeg) check(off, n int64) {
	first, last := resync.Regions(off, n, rs)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checked++
	for r := first; r <= last; r++ {
		if !l.st.dirtyOnDisk(r) {
			l.violations = append(l.violations, fmt.Sprintf("write off %d len %d: region %d not durably dirty", off, n, r))
		}
	}
}

func (l *orderLeg) WriteAt(p []byte, off int64) (int, error) {
	l.check(off, int64(len(p)))
	return l.Device.WriteAt(p, off)
}

func (l *orderLeg) WriteAtFUA(p []byte, off int64) (int, error) {
	l.check(off, int64(len(p)))
	return blockdev.WriteFUA(l.Device, p, off)
}

func (l *orderLeg) WriteZeroes(off, n int64, mayTrim bool) error {
	l.check(off, n)
	return blockdev.WriteZeroes(l.Device, off, n, mayTrim)
}

// TestNoWriteBeforeItsBitIsDurable: every write reaching a leg finds its
// regions' dirty bits on the store, also when bits are being cleaned and
// written back clear all the time.
func TestNoWriteBeforeItsBitIsDurable(t *testing.T) {
	st := &durableStore{Mem: blockdev.NewMem(resync.StoreSize(volSize, rs))}
	bm, err := resync.OpenBitmap(st, volSize, rs, resync.BitmapOptions{FlushInterval: 100 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	defer bm.Close()
	m, err := New(volSize, bm, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	legs := []*orderLeg{{Device: blockdev.NewMem(volSize), st: st}, {Device: blockdev.NewMem(volSize), st: st}}
	for i, l := range legs {
		if _, err := m.AddLeg(fmt.Sprint(i), l, InSync, i == 0); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 150 {
				off := rng.Int64N(volSize - 3*rs)
				p := randBytes(rng, 1+rng.IntN(2*rs))
				var err error
				switch i % 5 {
				case 0:
					err = m.Flush()
				case 1:
					_, err = m.WriteAtFUA(p, off)
				case 2:
					err = m.WriteZeroes(off, int64(len(p)), false)
				default:
					_, err = m.WriteAt(p, off)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for i, l := range legs {
		if l.checked < 400 {
			t.Fatalf("leg %d saw only %d writes", i, l.checked)
		}
		if len(l.violations) > 0 {
			t.Fatalf("leg %d: %d writes before their bit was durable, first: %s", i, len(l.violations), l.violations[0])
		}
	}
	if s := bm.Stats(); s.Commits < 10 {
		t.Fatalf("only %d bitmap commits: the test did not clean and re-mark bits", s.Commits)
	}
}

// TestConcurrentWritesShareBitmapWrites: N writes to distinct clean
// regions while a bitmap write is in progress cost one more bitmap write,
// not N.
func TestConcurrentWritesShareBitmapWrites(t *testing.T) {
	const n = 16
	r := newRig(t)
	r.st.Hang(fault.Flush)
	t.Cleanup(r.st.Release) // a failing test must not leave Close waiting
	before := r.st.Count(fault.Flush)
	var wg sync.WaitGroup
	write := func(reg int64) {
		defer wg.Done()
		if _, err := r.m.WriteAt([]byte{byte(reg)}, reg*rs); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go write(0)
	waitFor(t, "the first bitmap write", func() bool { return r.st.Blocked() == 1 })
	for reg := int64(1); reg < n; reg++ {
		wg.Add(1)
		go write(reg)
	}
	waitFor(t, "all writes to wait for their bits", func() bool { return r.bm.Stats().Waiting == n })
	if got := r.fault["peer"].Count(fault.Write); got != 0 {
		t.Fatalf("%d writes reached a leg before their bits were durable", got)
	}
	r.st.Release()
	wg.Wait()
	if got := r.st.Count(fault.Flush) - before; got >= n || got != 2 {
		t.Fatalf("%d writes cost %d bitmap flushes, want 2", n, got)
	}
	if got := r.fault["peer"].Count(fault.Write); got != n {
		t.Fatalf("peer saw %d writes, want %d", got, n)
	}
}

func TestWriteIntentFailureStopsTheWrite(t *testing.T) {
	r := newRig(t)
	r.st.FailAll(fault.Any, errDead)
	if _, err := r.m.WriteAt([]byte{1}, 0); !errors.Is(err, errDead) {
		t.Fatalf("WriteAt with a dead bitmap store: %v", err)
	}
	if r.fault["local"].Count(fault.Write)+r.fault["peer"].Count(fault.Write) != 0 {
		t.Fatal("the data went out although its bit was not durable")
	}
	for _, l := range r.m.Legs() {
		if l.State() != InSync {
			t.Fatalf("leg %s %s after a bitmap failure", l.Name(), l.State())
		}
	}
}

// jitterLeg yields a varying number of times before each write, so that
// concurrent writes reach the legs in different orders.
type jitterLeg struct {
	blockdev.Device
	n atomic.Uint32
}

func (l *jitterLeg) WriteAt(p []byte, off int64) (int, error) {
	for range l.n.Add(7) % 13 {
		runtime.Gosched()
	}
	return l.Device.WriteAt(p, off)
}

// TestOverlappingWritesLeaveLegsIdentical: writers racing on the same
// ranges end with both legs holding the same bytes.
func TestOverlappingWritesLeaveLegsIdentical(t *testing.T) {
	st := blockdev.NewMem(resync.StoreSize(volSize, rs))
	bm, err := resync.OpenBitmap(st, volSize, rs, resync.BitmapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bm.Close()
	m, err := New(volSize, bm, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mems := []*blockdev.Mem{blockdev.NewMem(volSize), blockdev.NewMem(volSize)}
	for i, mem := range mems {
		if _, err := m.AddLeg(fmt.Sprint(i), &jitterLeg{Device: mem}, InSync, i == 0); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 11))
			for range 300 {
				off := rng.Int64N(2 * rs)
				p := randBytes(rng, 1+rng.IntN(rs/4))
				if _, err := m.WriteAt(p, off); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if i := devtest.FirstDiff(mems[0].Bytes(), mems[1].Bytes()); i >= 0 {
		t.Fatalf("legs differ at byte %d", i)
	}
}

// TestOverlappingWriteWaits: a write overlapping one in flight reaches no
// leg until the first has completed on every leg.
func TestOverlappingWriteWaits(t *testing.T) {
	r := newRig(t)
	r.fault["peer"].Hang(fault.Write)
	t.Cleanup(r.fault["peer"].Release) // a failing test must not leave Close waiting
	first := make(chan error, 1)
	go func() {
		_, err := r.m.WriteAt(bytes.Repeat([]byte{1}, 100), 1000)
		first <- err
	}()
	waitFor(t, "the first write to hang on the peer", func() bool { return r.fault["peer"].Blocked() == 1 })
	second := make(chan error, 1)
	go func() {
		_, err := r.m.WriteAt(bytes.Repeat([]byte{2}, 100), 1050)
		second <- err
	}()
	waitFor(t, "the second write to wait for its range", func() bool {
		r.m.locks.mu.Lock()
		defer r.m.locks.mu.Unlock()
		return r.m.locks.waiters == 1
	})
	if n := r.fault["local"].Count(fault.Write); n != 1 {
		t.Fatalf("local saw %d writes while the first was in flight, want 1", n)
	}
	r.fault["peer"].Release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	r.same("local", "peer")
	if got := r.mem["peer"].Bytes()[1049:1051]; got[0] != 1 || got[1] != 2 {
		t.Fatalf("bytes 1049-1050 = %v, want [1 2]", got)
	}
}

func TestTrimAndZeroesMarkRegionsUnused(t *testing.T) {
	r := newRig(t)
	r.write(0, make([]byte, 8*rs))
	if err := r.m.Trim(rs/2, 2*rs); err != nil { // whole: region 1
		t.Fatal(err)
	}
	if err := r.m.WriteZeroes(4*rs, 2*rs, false); err != nil { // whole: 4, 5
		t.Fatal(err)
	}
	for reg, want := range []bool{true, false, true, true, false, false, true, true} {
		if r.bm.Used(int64(reg)) != want {
			t.Fatalf("Used(%d) = %v, want %v", reg, !want, want)
		}
	}
	// With a leg failed, a trim leaves the used bits alone.
	r.fault["peer"].FailAll(fault.Write, errDead)
	r.write(6*rs, []byte{1})
	if err := r.m.Trim(6*rs, rs); err != nil {
		t.Fatal(err)
	}
	if !r.bm.Used(6) {
		t.Fatal("a trim with a leg failed cleared a used bit")
	}
}

func TestAddLegChecks(t *testing.T) {
	r := newRig(t)
	if _, err := r.m.AddLeg("peer", blockdev.NewMem(volSize), Resyncing, false); !errors.Is(err, ErrLeg) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := r.m.AddLeg("small", blockdev.NewMem(volSize-1), Resyncing, false); !errors.Is(err, ErrLeg) {
		t.Fatalf("small device: %v", err)
	}
	if _, err := r.m.AddLeg("odd", blockdev.NewMem(volSize), LegState(7), false); !errors.Is(err, ErrLeg) {
		t.Fatalf("joining in state 7: %v", err)
	}
	if r.m.BlockSize() != 512 {
		t.Fatalf("BlockSize = %d", r.m.BlockSize())
	}
	if err := r.m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Close(); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.m.AddLeg("late", blockdev.NewMem(volSize), Resyncing, false); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("AddLeg after Close: %v", err)
	}
	if _, err := New(volSize+1, r.bm, Options{}); !errors.Is(err, resync.ErrGeometry) {
		t.Fatalf("New with a bitmap of another size: %v", err)
	}
}

// TestSequentialStreamMarksAhead: a journal-like stream (16 KiB appends,
// a flush at every region's end) pays a bitmap write per markAhead+1
// regions, not one per region; the regions marked ahead are cleaned like
// written ones, and both legs end identical.
func TestSequentialStreamMarksAhead(t *testing.T) {
	r := newRig(t)
	rng := rand.New(rand.NewPCG(7, 7))
	const piece = 16 << 10
	for off := int64(0); off < volSize; off += piece {
		r.write(off, randBytes(rng, piece))
		if (off+piece)%rs == 0 {
			r.flush()
		}
	}
	st := r.bm.Stats()
	regions := int64(volSize / rs)
	// Region 0 is a plain mark; after it, one mark per markAhead+1 regions.
	want := 1 + (regions-1+markAhead)/(markAhead+1)
	t.Logf("%d regions written in sequence: %d bitmap writes, %d regions marked ahead", regions, st.Commits, st.MarkedAhead)
	if st.Commits > want || st.MarkedAhead == 0 {
		t.Fatalf("%d bitmap writes (%d regions marked ahead) for a stream over %d regions; want at most %d", st.Commits, st.MarkedAhead, regions, want)
	}
	if d := dirty(r.bm); len(d) != 0 {
		t.Fatalf("regions still dirty after the last flush: %v", d)
	}
	r.same("local", "peer")
}

// TestRandomWritesDoNotMarkAhead: writes that do not start a region mark
// only their own regions.
func TestRandomWritesDoNotMarkAhead(t *testing.T) {
	r := newRig(t)
	rng := rand.New(rand.NewPCG(8, 8))
	for range 200 {
		off := rng.Int64N(volSize/4096)*4096 | 4096 // never a region's first block
		if off+4096 > volSize {
			continue
		}
		r.write(off, randBytes(rng, 4096))
	}
	if st := r.bm.Stats(); st.MarkedAhead != 0 {
		t.Fatalf("random writes marked %d regions ahead", st.MarkedAhead)
	}
}

// TestUnflushed: a write answered makes the mirror unflushed until a
// flush begun after it succeeds.
func TestUnflushed(t *testing.T) {
	r := newRig(t)
	if r.m.Unflushed() {
		t.Fatal("a new mirror is unflushed")
	}
	if _, err := r.m.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if !r.m.Unflushed() {
		t.Fatal("a write answered left the mirror flushed")
	}
	if err := r.m.Flush(); err != nil {
		t.Fatal(err)
	}
	if r.m.Unflushed() {
		t.Fatal("a flush after the write left the mirror unflushed")
	}
}

// failsItsLeg fails its own leg (as a member disk's failure found by
// another operation does) during a write that then succeeds on it.
type failsItsLeg struct {
	blockdev.Device
	fail func()
}

func (d *failsItsLeg) WriteAt(p []byte, off int64) (int, error) {
	d.fail()
	return d.Device.WriteAt(p, off)
}

// TestWriteOnLegFailedMeanwhileNotAnswered is fenced explorer seed 2368:
// a write began with both legs in sync; while it ran, the local leg was
// failed (its bitmap write had timed out on one member disk), though the
// write itself succeeded on that leg's other member; the peer leg failed
// too. The write reached no leg that was still in sync when it ended: it
// must fail, not be answered on the strength of a leg already out.
func TestWriteOnLegFailedMeanwhileNotAnswered(t *testing.T) {
	r := newRig(t)
	if err := r.m.RemoveLeg(r.leg["local"]); err != nil {
		t.Fatal(err)
	}
	var local *Leg
	dev := &failsItsLeg{Device: blockdev.NewMem(volSize), fail: func() { r.m.FailLeg(local, "member disk metadata", errDead) }}
	local, err := r.m.AddLeg("local", dev, InSync, true)
	if err != nil {
		t.Fatal(err)
	}
	r.fault["peer"].FailAll(fault.Write, errDead)
	if _, err := r.m.WriteAt([]byte{1}, 0); err == nil {
		t.Fatalf("a write answered although every leg it reached had failed (legs failed: %v)", r.failedLegs())
	}
}
