package resync

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

// fakeJob copies nothing; it records what the engine asks, and cleans the
// bits of copied regions at Flush as the mirror would.
type fakeJob struct {
	bm *Bitmap

	mu         sync.Mutex
	copied     []int64
	unflushed  []int64
	skipFlags  []bool
	flushes    int
	start, cov int64
	finished   bool
	busy       bool
	fail       map[int64]error
	onCopy     func(r int64)
}

func newFakeJob(t *testing.T, dirty ...int64) *fakeJob {
	t.Helper()
	b := openTest(t, newTestStore(StoreSize(testVol, testRegion)), BitmapOptions{})
	for _, r := range dirty {
		if err := b.Mark(r*testRegion, 1); err != nil {
			t.Fatal(err)
		}
	}
	return &fakeJob{bm: b}
}

func (j *fakeJob) Bitmap() *Bitmap { return j.bm }

func (j *fakeJob) Copy(r int64, skipUnused bool) error {
	j.mu.Lock()
	err := j.fail[r]
	hook := j.onCopy
	if err == nil {
		j.copied = append(j.copied, r)
		j.unflushed = append(j.unflushed, r)
		j.skipFlags = append(j.skipFlags, skipUnused)
	}
	j.mu.Unlock()
	if hook != nil {
		hook(r)
	}
	return err
}

func (j *fakeJob) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.flushes++
	for _, r := range j.unflushed {
		j.bm.Clean(r, r)
	}
	j.unflushed = nil
	return nil
}

func (j *fakeJob) Synced(start, count int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if count < j.cov && start == j.start {
		panic("coverage went backwards")
	}
	j.start, j.cov = start, count
}

func (j *fakeJob) Busy() bool { return j.busy }

func (j *fakeJob) Finish() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.finished = true
	return nil
}

func (j *fakeJob) copiedList() []int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.copied)
}

func TestEngineCopiesDirtyRegionsInOrder(t *testing.T) {
	j := newFakeJob(t, 2, 5, 6, 40, 99)
	var reports []Progress
	e := NewEngine(Options{BatchBytes: 2 * testRegion, Progress: func(p Progress) { reports = append(reports, p) }})
	if err := e.Run(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if got, want := j.copiedList(), []int64{2, 5, 6, 40, 99}; !slices.Equal(got, want) {
		t.Fatalf("copied %v, want %v", got, want)
	}
	if !j.finished || j.cov != 100 || j.start != 0 {
		t.Fatalf("finished %v, coverage %d from %d", j.finished, j.cov, j.start)
	}
	if j.bm.DirtyCount() != 0 {
		t.Fatalf("dirty after the run: %v", dirtyList(j.bm))
	}
	// Batches of two regions: flushes after 5+6... and at the end.
	if j.flushes < 3 {
		t.Fatalf("%d flushes for 5 regions in batches of 2", j.flushes)
	}
	last := reports[len(reports)-1]
	want := int64(4*testRegion + 4096)
	if last.Done != want || last.Total != want {
		t.Fatalf("last progress %+v, want Done = Total = %d", last, want)
	}
	if first := reports[0]; first.Done != 0 || first.Total != want {
		t.Fatalf("first progress %+v, want Total %d", first, want)
	}
	if p := e.Progress(); p.Done != want {
		t.Fatalf("Engine.Progress after the run: %+v", p)
	}
}

func TestEngineStartAtWrapsAround(t *testing.T) {
	j := newFakeJob(t, 2, 5, 40, 90)
	e := NewEngine(Options{StartAt: 40*testRegion + 100})
	if err := e.Run(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if got, want := j.copiedList(), []int64{40, 90, 2, 5}; !slices.Equal(got, want) {
		t.Fatalf("copied %v, want %v", got, want)
	}
	if j.start != 40 || j.cov != 100 {
		t.Fatalf("coverage %d from %d, want 100 from 40", j.cov, j.start)
	}
}

// TestEngineResumeFromCursor: a run cancelled midway reports a cursor; a
// run started there copies only the rest.
func TestEngineResumeFromCursor(t *testing.T) {
	j := newFakeJob(t, 1, 3, 10, 20, 30, 50, 70)
	ctx, cancel := context.WithCancel(context.Background())
	j.onCopy = func(r int64) {
		if r == 20 {
			cancel()
		}
	}
	var last Progress
	e := NewEngine(Options{BatchBytes: testRegion, Progress: func(p Progress) { last = p }})
	if err := e.Run(ctx, j); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	if j.finished {
		t.Fatal("a cancelled run finished the job")
	}
	if last.Cursor != 21*testRegion {
		t.Fatalf("cursor %d, want region 21", last.Cursor)
	}
	first := j.copiedList()
	j2 := &fakeJob{bm: j.bm}
	e2 := NewEngine(Options{StartAt: last.Cursor})
	if err := e2.Run(context.Background(), j2); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first, []int64{1, 3, 10, 20}) {
		t.Fatalf("first run copied %v", first)
	}
	if got, want := j2.copiedList(), []int64{30, 50, 70}; !slices.Equal(got, want) {
		t.Fatalf("resumed run copied %v, want %v", got, want)
	}
}

func TestEnginePauseResume(t *testing.T) {
	j := newFakeJob(t, 1, 2, 3)
	pausedAt := make(chan int, 1)
	var e *Engine
	j.onCopy = func(r int64) {
		if r == 1 {
			e.Pause()
		}
	}
	e = NewEngine(Options{Progress: func(p Progress) {
		if p.Paused {
			pausedAt <- len(j.copiedList())
		}
	}})
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background(), j) }()
	if n := <-pausedAt; n != 1 {
		t.Fatalf("paused after %d copies, want 1", n)
	}
	if !e.Progress().Paused {
		t.Fatal("Progress does not say paused")
	}
	if err := e.Run(context.Background(), j); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v, want ErrRunning", err)
	}
	e.Resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := j.copiedList(); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("copied %v", got)
	}
}

func TestEngineCancelWhilePaused(t *testing.T) {
	j := newFakeJob(t, 1, 2)
	e := NewEngine(Options{})
	e.Pause()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, j) }()
	waitFor(t, "the run to pause", func() bool { return e.Progress().Paused })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if len(j.copiedList()) != 0 {
		t.Fatal("copied while paused")
	}
}

func TestEngineStopsAtACopyError(t *testing.T) {
	j := newFakeJob(t, 1, 2, 3)
	boom := errors.New("leg down")
	j.fail = map[int64]error{2: boom}
	err := NewEngine(Options{}).Run(context.Background(), j)
	if !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want %v", err, boom)
	}
	if j.finished {
		t.Fatal("finished after an error")
	}
	if !j.bm.Dirty(2) || !j.bm.Dirty(3) {
		t.Fatal("bits of regions not copied were cleaned")
	}
}

func TestEngineAdaptiveAndSkipUnused(t *testing.T) {
	j := newFakeJob(t, 1)
	j.busy = true
	e := NewEngine(Options{Adaptive: true, FloorRate: 1 << 40, SkipUnused: true})
	if err := e.Run(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if got := e.p.lim.Rate(); got != 1<<40 {
		t.Fatalf("busy application: limiter at %d, want the floor", got)
	}
	if !slices.Equal(j.skipFlags, []bool{true}) {
		t.Fatalf("skipUnused passed as %v", j.skipFlags)
	}
	e.SetRate(5 << 20)
	if e.Rate() != 5<<20 {
		t.Fatalf("Rate = %d", e.Rate())
	}
}
