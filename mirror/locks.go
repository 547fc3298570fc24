package mirror

import (
	"math/bits"
	"slices"
	"sync"

	"github.com/netraid/netraid/resync"
)

// rangeLocks serialises the data path by byte range. Writes to
// overlapping ranges run one after the other, so every leg applies them in
// the same order; a copy (resync, repair) or a compare (verify) holds its
// range exclusively. A copy waiting for its range holds off new writes to
// it, so that a busy region cannot starve a resync.
//
// It also keeps, per region, what the lazy cleaning of dirty bits needs:
// whether anything is in flight there, which regions had a write or a
// copy complete since the last flush began, and which regions a repair
// has yet to copy.
type rangeLocks struct {
	mu      sync.Mutex
	cond    sync.Cond
	shift   uint // log2 of the region size
	seq     uint64
	waiters int
	// spans lists, per region, the held or awaited ranges touching it.
	spans map[int64][]*span
	// completed holds the regions where a write or copy completed since
	// the last flush began.
	completed map[int64]struct{}
	// holds are the region sets of repairs under way: a region dirty in
	// one of them differs between the legs, whatever was written to it,
	// until the repair has copied it (and cleared it from its set).
	holds []*resync.Bitmap
}

// span is one locked (or awaited) range.
type span struct {
	off, end int64
	excl     bool   // a copy or compare
	pending  bool   // an exclusive span still waiting for its range
	seq      uint64 // arrival order of exclusive spans
}

func (lk *rangeLocks) init(regionSize int64) {
	lk.cond.L = &lk.mu
	lk.shift = uint(bits.TrailingZeros64(uint64(regionSize)))
	lk.spans = map[int64][]*span{}
	lk.completed = map[int64]struct{}{}
}

func (lk *rangeLocks) regions(s *span) (first, last int64) {
	return s.off >> lk.shift, (s.end - 1) >> lk.shift
}

// lock waits for [off, off+n) (n > 0) and holds it; excl for a copy or
// compare, shared-but-not-overlapping for a write.
func (lk *rangeLocks) lock(off, n int64, excl bool) *span {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	lk.seq++
	s := &span{off: off, end: off + n, excl: excl, pending: excl, seq: lk.seq}
	if excl {
		lk.insert(s) // announce it: new writes queue behind
	}
	for lk.blocked(s) {
		lk.waiters++
		lk.cond.Wait()
		lk.waiters--
	}
	if excl {
		s.pending = false
	} else {
		lk.insert(s)
	}
	return s
}

// blocked reports whether s must wait: an overlapping span is held, or,
// for a write, an overlapping copy waits, or, for a copy, an overlapping
// copy arrived first.
func (lk *rangeLocks) blocked(s *span) bool {
	first, last := lk.regions(s)
	for r := first; r <= last; r++ {
		for _, t := range lk.spans[r] {
			if t == s || t.end <= s.off || s.end <= t.off {
				continue
			}
			if !t.pending || !s.excl || t.seq < s.seq {
				return true
			}
		}
	}
	return false
}

func (lk *rangeLocks) insert(s *span) {
	first, last := lk.regions(s)
	for r := first; r <= last; r++ {
		lk.spans[r] = append(lk.spans[r], s)
	}
}

// unlock releases s; with wrote, its regions count as completed.
func (lk *rangeLocks) unlock(s *span, wrote bool) {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	first, last := lk.regions(s)
	for r := first; r <= last; r++ {
		list := lk.spans[r]
		for i, t := range list {
			if t == s {
				list[i] = list[len(list)-1]
				list = list[:len(list)-1]
				break
			}
		}
		if len(list) == 0 {
			delete(lk.spans, r)
		} else {
			lk.spans[r] = list
		}
		if wrote {
			lk.completed[r] = struct{}{}
		}
	}
	if lk.waiters > 0 {
		lk.cond.Broadcast()
	}
}

// busyLocked reports whether anything holds a range in region r.
func (lk *rangeLocks) busyLocked(r int64) bool {
	for _, t := range lk.spans[r] {
		if !t.pending {
			return true
		}
	}
	return false
}

// takeCompleted is called when a flush begins: it returns the completed
// regions with nothing in flight, which the flush may make cleanable, and
// forgets them. Busy regions stay for a later flush.
func (lk *rangeLocks) takeCompleted() []int64 {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	var out []int64
	for r := range lk.completed {
		if !lk.busyLocked(r) {
			out = append(out, r)
			delete(lk.completed, r)
		}
	}
	return out
}

// hold keeps the dirty bits of set's dirty regions from being cleaned
// until they are clear in set, or release.
func (lk *rangeLocks) hold(set *resync.Bitmap) {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	lk.holds = append(lk.holds, set)
}

// release ends hold(set).
func (lk *rangeLocks) release(set *resync.Bitmap) {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	lk.holds = slices.DeleteFunc(lk.holds, func(h *resync.Bitmap) bool { return h == set })
}

// heldLocked reports whether a repair has yet to copy region r.
func (lk *rangeLocks) heldLocked(r int64) bool {
	for _, h := range lk.holds {
		if h.Dirty(r) {
			return true
		}
	}
	return false
}
