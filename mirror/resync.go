package mirror

import (
	"context"
	"fmt"
	"sync"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/resync"
)

// copyChunk is the most a copy or compare locks and moves at once: writes
// to the chunk wait that long, writes elsewhere in the region go on.
const copyChunk = 1 << 20

// Resync copies to target, a Resyncing leg, every dirty region from the
// first in-sync leg (local first), paced by e, while the volume is in use.
// When every region has been visited and flushed, target becomes InSync.
// A failure of either leg fails it and ends the resync with its
// *LegError; cancelling ctx stops it, and the leg stays Resyncing (a later
// Resync, from e's Progress().Cursor if wished, goes on).
func (m *Mirror) Resync(ctx context.Context, target *Leg, e *resync.Engine) error {
	j, err := m.startResync(ctx, target)
	if err != nil {
		return err
	}
	defer j.release()
	return e.Run(ctx, j)
}

// startResync checks target, picks the source, claims target for one
// resync, and waits for the writes that began before target joined (they
// do not reach it, and may not have set their bits yet).
func (m *Mirror) startResync(ctx context.Context, target *Leg) (*copyJob, error) {
	o, err := m.beginLegs(target)
	if err != nil {
		return nil, err
	}
	m.end(o)
	if s := target.State(); s != Resyncing {
		return nil, fmt.Errorf("%w: %s is %s, not resyncing", ErrLeg, target.name, s)
	}
	src := m.source()
	if src == nil {
		return nil, fmt.Errorf("%w: nothing to resync %s from", ErrNoLeg, target.name)
	}
	target.mu.Lock()
	busy := target.resyncing
	target.resyncing = true
	target.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("%w: %s", ErrBusy, target.name)
	}
	j := newCopyJob(m, src, []*Leg{target}, true)
	if err := m.gate.drain(ctx); err != nil {
		j.release()
		return nil, err
	}
	m.log.Info("mirror: resync", "leg", target.name, "from", src.name, "dirty", m.bm.DirtyBytes())
	return j, nil
}

// source returns the leg reads go to: the first in-sync local leg, else
// the first in-sync remote one, or nil.
func (m *Mirror) source() *Leg {
	var remote *Leg
	for _, l := range m.Legs() {
		if l.State() != InSync {
			continue
		}
		if l.local {
			return l
		}
		if remote == nil {
			remote = l
		}
	}
	return remote
}

// copyJob is a resync.Job: it copies regions from src to dsts under the
// range locks. promote: dsts[0] is a Resyncing leg that becomes InSync at
// the end (a resync); otherwise dsts are in-sync legs (a repair).
//
// Copies run asynchronously, copyDepth regions at a time, so that the
// source's reads and the target's writes (a network round trip for a
// remote leg) overlap. Flush waits for every copy started before it, and
// only then records the coverage the engine reported: a region counts as
// holding the source's data (so that its dirty bit may be cleaned) only
// once its copy is done.
type copyJob struct {
	m       *Mirror
	src     *Leg
	dsts    []*Leg
	promote bool

	slots chan struct{} // one per copy in flight
	wg    sync.WaitGroup

	mu                 sync.Mutex // guards what follows
	err                error      // the first failed copy
	covStart, covCount int64      // coverage reported by the engine
	covSet             bool
}

// copyDepth is how many regions a copyJob copies at once.
const copyDepth = 4

var _ resync.Job = (*copyJob)(nil)

func newCopyJob(m *Mirror, src *Leg, dsts []*Leg, promote bool) *copyJob {
	return &copyJob{m: m, src: src, dsts: dsts, promote: promote, slots: make(chan struct{}, copyDepth)}
}

func (j *copyJob) release() {
	j.wait()
	if j.promote {
		t := j.dsts[0]
		t.mu.Lock()
		t.resyncing = false
		t.mu.Unlock()
	}
}

// async runs f as one of at most copyDepth copies in flight; its error
// fails the job.
func (j *copyJob) async(f func() error) {
	j.slots <- struct{}{}
	j.wg.Add(1)
	go func() {
		defer func() {
			<-j.slots
			j.wg.Done()
		}()
		if err := f(); err != nil {
			j.mu.Lock()
			if j.err == nil {
				j.err = err
			}
			j.mu.Unlock()
		}
	}()
}

// wait waits for the copies in flight and returns the first error.
func (j *copyJob) wait() error {
	j.wg.Wait()
	return j.firstErr()
}

func (j *copyJob) firstErr() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

func (j *copyJob) Bitmap() *resync.Bitmap { return j.m.bm }
func (j *copyJob) Busy() bool             { return j.m.busy() }

// Synced notes the engine's coverage; Flush applies it once the copies
// it counts are done.
func (j *copyJob) Synced(start, count int64) {
	if !j.promote {
		return
	}
	j.mu.Lock()
	j.covStart, j.covCount, j.covSet = start, count, true
	j.mu.Unlock()
}

// Copy starts copying region r chunk by chunk, or zeroes it on the
// targets if skipUnused and it was never written. It returns the error
// of an earlier copy, if one failed.
func (j *copyJob) Copy(r int64, skipUnused bool) error {
	if err := j.firstErr(); err != nil {
		return err
	}
	off, n := j.m.bm.Span(r)
	if skipUnused {
		if zeroed, err := j.zeroUnused(r, off, n); zeroed || err != nil {
			return err
		}
	}
	j.async(func() error { return j.copyRange(off, n) })
	return nil
}

// copyRange copies [off, off+n) chunk by chunk.
func (j *copyJob) copyRange(off, n int64) error {
	for pos := off; pos < off+n; pos += copyChunk {
		if err := j.copyChunk(pos, min(copyChunk, off+n-pos)); err != nil {
			return err
		}
	}
	return nil
}

// lock starts an operation on the job's legs and locks [off, off+n)
// exclusively, after checking that the legs are still fit.
func (j *copyJob) lock(off, n int64) (*op, *span, error) {
	o, err := j.m.beginLegs(append([]*Leg{j.src}, j.dsts...)...)
	if err != nil {
		return nil, nil, err
	}
	s := j.m.locks.lock(off, n, true)
	if err := j.check(); err != nil {
		j.unlock(o, s, false)
		return nil, nil, err
	}
	return o, s, nil
}

// unlock undoes lock; wrote: the targets were written, so the range
// counts as completed for the cleaning of its bits.
func (j *copyJob) unlock(o *op, s *span, wrote bool) {
	j.m.locks.unlock(s, wrote)
	j.m.end(o)
}

// check returns an error if a leg of the job failed or is in the wrong
// state.
func (j *copyJob) check() error {
	want := InSync
	if j.promote {
		want = Resyncing
	}
	for i, l := range append([]*Leg{j.src}, j.dsts...) {
		s := l.State()
		if s == Failed {
			return l.Err()
		}
		if i == 0 && s != InSync || i > 0 && s != want {
			return fmt.Errorf("%w: %s became %s", ErrLeg, l.name, s)
		}
	}
	return nil
}

func (j *copyJob) copyChunk(off, n int64) error {
	o, s, err := j.lock(off, n)
	if err != nil {
		return err
	}
	defer j.unlock(o, s, true)
	buf := blockdev.GetBuffer(int(n), max(j.m.BlockSize(), 4096))
	defer blockdev.PutBuffer(buf)
	if _, err := j.src.dev.ReadAt(buf, off); err != nil {
		return j.src.fail("resync read", off, n, err)
	}
	j.src.count(kindRead, n)
	for _, d := range j.dsts {
		if _, err := d.dev.WriteAt(buf, off); err != nil {
			return d.fail("resync write", off, n, err)
		}
		d.syncBytes.Add(n)
	}
	return nil
}

// zeroUnused zeroes region r on the targets if its used bit is clear,
// checked under the lock so that no write slips in between.
func (j *copyJob) zeroUnused(r, off, n int64) (bool, error) {
	o, s, err := j.lock(off, n)
	if err != nil {
		return false, err
	}
	zeroed := false
	defer func() { j.unlock(o, s, zeroed) }()
	if j.m.bm.Used(r) {
		return false, nil
	}
	for _, d := range j.dsts {
		if err := blockdev.WriteZeroes(d.dev, off, n, true); err != nil {
			return false, d.fail("resync zero", off, n, err)
		}
		d.syncBytes.Add(n)
	}
	zeroed = true
	return true, nil
}

// Flush waits for the copies in flight, records the coverage they make
// true, flushes every leg (cleaning what it may), then reports a failure
// of the job's legs.
func (j *copyJob) Flush() error {
	if err := j.wait(); err != nil {
		return err
	}
	j.mu.Lock()
	start, count, set := j.covStart, j.covCount, j.covSet
	j.mu.Unlock()
	if set {
		j.dsts[0].setCoverage(start, count)
	}
	gen := j.m.gen.Load()
	o, err := j.m.begin(false)
	if err != nil {
		return err
	}
	err = j.m.flush(o, gen)
	j.m.end(o)
	if cerr := j.check(); cerr != nil {
		return cerr
	}
	return err
}

// Finish makes the target InSync, for a resync.
func (j *copyJob) Finish() error {
	if !j.promote {
		return nil
	}
	t := j.dsts[0]
	o, err := j.m.beginLegs(t) // still attached?
	if err != nil {
		return err
	}
	j.m.end(o)
	if !t.state.CompareAndSwap(int32(Resyncing), int32(InSync)) {
		if err := j.check(); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s is %s at the end of its resync", ErrLeg, t.name, t.State())
	}
	t.mu.Lock()
	t.covOK = false
	t.mu.Unlock()
	j.m.gen.Add(1)
	j.m.log.Info("mirror: leg in sync", "leg", t.name)
	return nil
}
