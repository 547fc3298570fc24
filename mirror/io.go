package mirror

import (
	"errors"
	"fmt"
	"sync"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/internal/lat"
	"github.com/netraid/netraid/resync"
)

// kind says which counters an operation on a leg adds to.
type kind int

const (
	kindRead kind = iota
	kindWrite
	kindFlush
	kindMeta // map, checksum: no byte counters
)

// count adds a successful operation of n bytes to l's counters.
func (l *Leg) count(k kind, n int64) {
	switch k {
	case kindRead:
		l.reads.Add(1)
		l.readBytes.Add(n)
	case kindWrite:
		l.writes.Add(1)
		l.writeBytes.Add(n)
	case kindFlush:
		l.flushes.Add(1)
	}
}

// fanout runs do on every leg of o in parallel and applies the failure
// policy: a leg that errs is failed, and the operation succeeds if a leg
// that was in sync when it began succeeded. all reports that no leg erred.
func (m *Mirror) fanout(o *op, name string, k kind, off, n int64, do func(*Leg) error) (all bool, err error) {
	res := make([]legResult, len(o.legs))
	t0 := lat.Start()
	inline := o.inlineLeg()
	var wg sync.WaitGroup
	for i := range o.legs {
		if i != inline {
			wg.Go(func() {
				res[i].err = do(o.legs[i].leg)
				res[i].end = measureLeg(o.legs[i].leg, k, t0)
			})
		}
	}
	if inline >= 0 {
		res[inline].err = do(o.legs[inline].leg)
		res[inline].end = measureLeg(o.legs[inline].leg, k, t0)
	}
	wg.Wait()
	measureSkew(res)
	ok := false
	var failed []error
	for i, t := range o.legs {
		if res[i].err != nil {
			failed = append(failed, t.leg.fail(name, off, n, res[i].err))
			continue
		}
		t.leg.count(k, n)
		// A leg counts if it was in sync when o began and still is: one
		// failed meanwhile (by another operation, or by a member disk's
		// failure found while this one marked its bits) holds the data
		// on a copy that is out.
		ok = ok || t.inSync && t.leg.State() == InSync
	}
	switch {
	case ok:
		if err := m.failBarrier(); err != nil {
			return false, err
		}
		if o.app {
			if err := m.ackBarrier(); err != nil {
				return false, err
			}
		}
		return len(failed) == 0, nil
	case len(failed) == 1:
		return false, failed[0]
	case len(failed) > 1:
		return false, errors.Join(failed...)
	}
	return false, fmt.Errorf("%w: %s off %d len %d", ErrNoLeg, name, off, n)
}

// inlineLeg is the leg fanout runs on the caller's goroutine, the others
// each on one of their own: the first remote leg, else the first (-1 if
// o has none). The remote leg's round trip is the longer, and the
// caller starts it first: with one P (setProcs), a goroutine started
// meanwhile runs only once the caller waits, so the local disk's
// request goes out after the peer's, not the peer's after the disk's.
func (o *op) inlineLeg() int {
	for i, t := range o.legs {
		if !t.leg.local {
			return i
		}
	}
	if len(o.legs) == 0 {
		return -1
	}
	return 0
}

// fromReadLeg runs do on the first leg of o's read order that succeeds,
// failing the ones that err.
func (m *Mirror) fromReadLeg(o *op, name string, k kind, off, n int64, do func(*Leg) error) error {
	var failed []error
	for _, l := range o.readOrder() {
		if l.State() != InSync {
			continue // failed since o began
		}
		if err := do(l); err != nil {
			failed = append(failed, l.fail(name, off, n, err))
			continue
		}
		l.count(k, n)
		return nil
	}
	if len(failed) == 0 {
		return fmt.Errorf("%w: %s off %d len %d", ErrNoLeg, name, off, n)
	}
	return errors.Join(failed...)
}

// ReadAt reads from the first in-sync local leg, else the first in-sync
// remote one; a leg that fails is failed and the next one tried.
func (m *Mirror) ReadAt(p []byte, off int64) (int, error) {
	err := m.read(off, int64(len(p)), func(l *Leg) error {
		got, err := l.dev.ReadAt(p, off)
		return blockdev.WholeRead(got, len(p), err)
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadBuffer reads as ReadAt does, into a buffer the leg's device hands
// over (blockdev.ReadBuffer): the local leg's time-out wrapper gives its
// own rather than copying it.
func (m *Mirror) ReadBuffer(n int, off int64) ([]byte, error) {
	var buf []byte
	err := m.read(off, int64(n), func(l *Leg) (err error) {
		buf, err = blockdev.ReadBuffer(l.dev, n, off)
		return err
	})
	if err != nil {
		return nil, err
	}
	if buf == nil { // n == 0: no leg was asked
		buf = blockdev.GetBuffer(0, 512)
	}
	return buf, nil
}

// read runs one read of [off, off+n) by do on the legs in read order.
func (m *Mirror) read(off, n int64, do func(*Leg) error) error {
	if err := blockdev.CheckRange(m.size, off, n); err != nil {
		return fmt.Errorf("mirror: read: %w", err)
	}
	o, err := m.begin(true)
	if err != nil {
		return err
	}
	defer m.end(o)
	if n == 0 {
		return nil
	}
	return m.fromReadLeg(o, "read", kindRead, off, n, do)
}

// WriteAt writes p to every leg that has not failed, after its regions are
// marked dirty durably.
func (m *Mirror) WriteAt(p []byte, off int64) (int, error) {
	err := m.write("write", off, int64(len(p)), m.markWrite, func(l *Leg) error {
		_, err := l.dev.WriteAt(p, off)
		return err
	}, nil)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteAtFUA is WriteAt with every leg writing durably (blockdev.WriteFUA).
func (m *Mirror) WriteAtFUA(p []byte, off int64) (int, error) {
	err := m.write("fua", off, int64(len(p)), m.markWrite, func(l *Leg) error {
		_, err := blockdev.WriteFUA(l.dev, p, off)
		return err
	}, nil)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Trim discards the range on every leg. When it succeeded on every leg
// with all in sync, the regions it covers whole count as unused again.
func (m *Mirror) Trim(off, n int64) error {
	return m.write("trim", off, n, m.bm.MarkDiscard, func(l *Leg) error {
		return blockdev.Trim(l.dev, off, n)
	}, m.bm.Trimmed)
}

// WriteZeroes zeroes the range on every leg. Like Trim, the regions it
// covers whole count as unused afterwards: a resync that skips unused
// regions zeroes them on the target, which is what they hold.
func (m *Mirror) WriteZeroes(off, n int64, mayTrim bool) error {
	return m.write("zero", off, n, m.bm.MarkDiscard, func(l *Leg) error {
		return blockdev.WriteZeroes(l.dev, off, n, mayTrim)
	}, m.bm.Trimmed)
}

// write is the mirrored write path: lock the range, mark it dirty, run do
// on every leg, and, if it succeeded everywhere with every leg in sync,
// call unused on the range before unlocking.
func (m *Mirror) write(name string, off, n int64, mark func(off, n int64) error, do func(*Leg) error, unused func(off, n int64)) error {
	if err := blockdev.CheckRange(m.size, off, n); err != nil {
		return fmt.Errorf("mirror: %s: %w", name, err)
	}
	o, err := m.begin(true)
	if err != nil {
		return err
	}
	defer m.end(o)
	if n == 0 {
		return nil
	}
	if !o.anyInSync() {
		return fmt.Errorf("%w: %s off %d len %d", ErrNoLeg, name, off, n)
	}
	s := m.locks.lock(off, n, false)
	defer m.locks.unlock(s, true)
	t := lat.Start()
	if err := mark(off, n); err != nil {
		return fmt.Errorf("mirror: %s off %d len %d: write intent: %w", name, off, n, err)
	}
	lat.Since(lat.MirrorMark, t)
	if err := m.sendBarrier(); err != nil {
		return err // the mirror's freeze, or the reason the writes fail (FailWrites)
	}
	all, err := m.fanout(o, name, kindWrite, off, n, do)
	if err == nil && all && unused != nil && o.allInSync() {
		unused(off, n)
	}
	if err == nil {
		m.answered.Add(1)
	}
	return err
}

// Map returns the allocation map of the read leg.
func (m *Mirror) Map(off, n int64) ([]blockdev.Extent, error) {
	if err := blockdev.CheckRange(m.size, off, n); err != nil {
		return nil, fmt.Errorf("mirror: map: %w", err)
	}
	o, err := m.begin(true)
	if err != nil {
		return nil, err
	}
	defer m.end(o)
	if n == 0 {
		return nil, nil
	}
	var ext []blockdev.Extent
	err = m.fromReadLeg(o, "map", kindMeta, off, n, func(l *Leg) error {
		var err error
		ext, err = blockdev.Map(l.dev, off, n)
		return err
	})
	return ext, err
}

// Checksum returns the checksum of the range as the read leg computes it.
func (m *Mirror) Checksum(off, n int64) (blockdev.Sum, error) {
	if err := blockdev.CheckRange(m.size, off, n); err != nil {
		return blockdev.Sum{}, fmt.Errorf("mirror: checksum: %w", err)
	}
	o, err := m.begin(true)
	if err != nil {
		return blockdev.Sum{}, err
	}
	defer m.end(o)
	var sum blockdev.Sum
	err = m.fromReadLeg(o, "checksum", kindMeta, off, n, func(l *Leg) error {
		var err error
		sum, err = blockdev.Checksum(l.dev, off, n)
		return err
	})
	return sum, err
}

// markAhead is how many regions a write that looks sequential marks dirty
// beyond its own: with the default 1 MiB regions, a stream pays one
// metadata write per 17 MiB instead of one per MiB.
const markAhead = 16

// markWrite marks a write's regions dirty before it proceeds. A write
// that enters its last region from that region's start, with the region
// before it written (used or dirty), is taken for part of a sequential
// stream (a journal being appended): if a metadata write is needed
// anyway, the regions after it are marked in the same write
// (resync.Bitmap.MarkAhead), and the stream crosses them with the bits
// already durable. No write of this mirror's will complete there for
// them, so they are recorded as completed at once: the next flush that
// succeeds on every leg cleans them in memory, as if they had been
// written, and their durable bits stay set until the bitmap's lazy writer
// or a later metadata write stores the clean state. A random write meets
// the test only at a region's first byte; then the cost is dirty bits
// that the next flush clears.
func (m *Mirror) markWrite(off, n int64) error {
	rs := m.bm.RegionSize()
	_, last := resync.Regions(off, n, rs)
	if last < 1 || off > last*rs || !(m.bm.Used(last-1) || m.bm.Dirty(last-1)) {
		return m.bm.Mark(off, n)
	}
	first, end, err := m.bm.MarkAhead(off, n, markAhead)
	if err != nil || end < first {
		return err
	}
	lk := &m.locks
	lk.mu.Lock()
	for r := first; r <= end; r++ {
		lk.completed[r] = struct{}{}
	}
	lk.mu.Unlock()
	return nil
}
