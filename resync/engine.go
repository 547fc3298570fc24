package resync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Job is what the engine drives: one resync (or repair) of one mirror,
// which implements it. The engine decides the order and the pace; the job
// does the I/O under the mirror's region locks.
type Job interface {
	// Bitmap is the bitmap whose dirty regions are copied.
	Bitmap() *Bitmap
	// Copy makes region r of the target the same as the source, with
	// writes to the range it copies held off meanwhile. With skipUnused,
	// a region whose used bit is clear (checked under the lock) is
	// zeroed on the target instead.
	Copy(r int64, skipUnused bool) error
	// Flush makes every copy so far durable on the source and the
	// target, and lets the mirror clean the bits it may.
	Flush() error
	// Synced tells the mirror that count regions from start on, in
	// circular order, hold the source's data on the target, except for
	// writes in flight (which the target receives as well).
	Synced(start, count int64)
	// Busy reports whether the application did I/O since the last call.
	Busy() bool
	// Finish is called once every region was visited and flushed: the
	// target becomes in sync.
	Finish() error
}

// Options tunes a resync.
type Options struct {
	// Rate limits the copy in bytes per second; 0 is unlimited.
	Rate int64
	// Adaptive drops the rate to FloorRate (DefaultFloorRate if zero)
	// while the application does I/O.
	Adaptive  bool
	FloorRate int64
	// Progress, if set, is called after each batch, when pausing, and at
	// the end.
	Progress func(Progress)
	// StartAt is the byte offset to start from (a Progress.Cursor). The
	// regions before it are visited last.
	StartAt int64
	// SkipUnused: dirty regions whose used bit is clear are not copied
	// but zeroed on the target (cheap: a discard or WRITE_ZEROES). For
	// the first full sync of a blank peer; regions never written then
	// read as zeroes on the target and as whatever the source's disk held
	// on the source — which nothing relies on, and which Verify with
	// UsedOnly does not compare.
	SkipUnused bool
	// BatchBytes is how much is copied between flushes of the target (and
	// progress reports); DefaultBatchBytes if zero. A batch also ends
	// after batchInterval.
	BatchBytes int64
}

// DefaultBatchBytes is the copy between two flushes, when Options does not
// say.
const DefaultBatchBytes = 64 << 20

// batchInterval ends a batch that is slow to fill (a low rate).
const batchInterval = 2 * time.Second

// Engine runs a resync: it copies the dirty regions of a Job, in order,
// rate-limited, and can be paused, resumed and re-rated from another
// goroutine while it runs.
type Engine struct {
	o Options
	p *pacer

	mu      sync.Mutex
	run     *run
	last    Progress
	running bool
}

// NewEngine returns an engine with the given options.
func NewEngine(o Options) *Engine {
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	return &Engine{o: o, p: newPacer(o.Rate, o.FloorRate, o.Adaptive)}
}

// Pause stops the copy before the next region; writes go on being
// mirrored and tracked.
func (e *Engine) Pause() { e.p.pause() }

// Resume goes on after Pause.
func (e *Engine) Resume() { e.p.unpause() }

// SetRate changes the rate limit (bytes per second, 0 = unlimited).
func (e *Engine) SetRate(rate int64) { e.p.setRate(rate) }

// Rate returns the rate limit.
func (e *Engine) Rate() int64 { return e.p.getRate() }

// Progress returns the progress of the run under way, or of the last one.
func (e *Engine) Progress() Progress {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.run != nil {
		return e.run.progressLocked(time.Now())
	}
	return e.last
}

// Run copies every dirty region of j, from Options.StartAt round to just
// before it, flushing after each batch, and calls j.Finish at the end. It
// returns the first error of the job, or ctx's error if cancelled (after
// a last flush, so that the progress reported is durable). One Run at a
// time.
func (e *Engine) Run(ctx context.Context, j Job) error {
	bm := j.Bitmap()
	r := &run{e: e, j: j, bm: bm, n: bm.Regions(), batchStart: time.Now()}
	r.start = min(max(e.o.StartAt, 0)/bm.RegionSize(), r.n-1)
	r.meter.start = r.batchStart
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return ErrRunning
	}
	e.running, e.run = true, r
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.last = r.progressLocked(time.Now())
		e.running, e.run = false, nil
		e.mu.Unlock()
	}()
	err := r.loop(ctx)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = errors.Join(err, r.flush())
	}
	return err
}

// run is the state of one Engine.Run. Fields read by Progress are guarded
// by e.mu.
type run struct {
	e  *Engine
	j  Job
	bm *Bitmap
	n  int64
	// start is the first region visited; covered counts the regions
	// visited since, in circular order.
	start, covered int64
	done           int64
	meter          meter
	batch          int64
	batchStart     time.Time
}

func (r *run) loop(ctx context.Context) error {
	r.j.Synced(r.start, 0)
	r.report()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		reg, ok := r.next()
		if !ok {
			break
		}
		if err := r.copy(ctx, reg); err != nil {
			return err
		}
		if r.batch >= r.e.o.BatchBytes || time.Since(r.batchStart) >= batchInterval {
			if err := r.flush(); err != nil {
				return err
			}
		}
	}
	if err := r.flush(); err != nil {
		return err
	}
	return r.j.Finish()
}

// position returns the next region to visit and the end of the segment
// it is in: [start, n) first, then [0, start).
func (r *run) position() (pos, end int64) {
	if r.covered < r.n-r.start {
		return r.start + r.covered, r.n
	}
	return r.covered - (r.n - r.start), r.start
}

// next skips clean regions and returns the next dirty one to copy.
func (r *run) next() (int64, bool) {
	for r.covered < r.n {
		pos, end := r.position()
		reg, ok := r.bm.NextDirty(pos)
		if ok && reg < end {
			r.advance(reg - pos)
			return reg, true
		}
		r.advance(end - pos)
	}
	return 0, false
}

// advance moves the cursor over k visited regions and tells the job.
func (r *run) advance(k int64) {
	r.e.mu.Lock()
	r.covered += k
	r.e.mu.Unlock()
	r.j.Synced(r.start, r.covered)
}

// copy paces, then copies region reg.
func (r *run) copy(ctx context.Context, reg int64) error {
	_, n := r.bm.Span(reg)
	cost := n
	if r.e.o.SkipUnused && !r.bm.Used(reg) {
		cost = 0 // zeroed, not copied; Copy checks again under the lock
	}
	if err := r.e.p.wait(ctx, cost, r.j.Busy(), r.onPause); err != nil {
		return err
	}
	if err := r.j.Copy(reg, r.e.o.SkipUnused); err != nil {
		return fmt.Errorf("resync: region %d: %w", reg, err)
	}
	r.e.mu.Lock()
	r.done += n
	r.e.mu.Unlock()
	r.batch += n
	r.advance(1)
	return nil
}

// flush ends a batch: the copies are made durable, their bits cleaned and
// written, and progress reported.
func (r *run) flush() error {
	if err := r.j.Flush(); err != nil {
		return fmt.Errorf("resync: flush: %w", err)
	}
	if err := r.bm.Sync(); err != nil {
		return err
	}
	r.batch, r.batchStart = 0, time.Now()
	r.report()
	return nil
}

func (r *run) onPause(paused bool) {
	r.e.mu.Lock()
	if paused {
		r.meter.pause(time.Now())
	} else {
		r.meter.unpause(time.Now())
	}
	r.e.mu.Unlock()
	if paused {
		r.report()
	}
}

// report calls Options.Progress.
func (r *run) report() {
	r.e.mu.Lock()
	p := r.progressLocked(time.Now())
	r.e.mu.Unlock()
	if r.e.o.Progress != nil {
		r.e.o.Progress(p)
	}
}

// progressLocked computes the progress; Total counts the dirty regions not
// yet visited.
func (r *run) progressLocked(now time.Time) Progress {
	var left int64
	if r.covered < r.n {
		pos, end := r.position()
		_, left = r.bm.CountDirty(pos, end-1)
		if end == r.n {
			_, rest := r.bm.CountDirty(0, r.start-1)
			left += rest
		}
	}
	pos, _ := r.position()
	if r.covered >= r.n {
		pos = r.start
	}
	return r.meter.progress(now, r.done, r.done+left, pos*r.bm.RegionSize())
}
