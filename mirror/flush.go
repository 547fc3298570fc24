package mirror

// Flush flushes every leg that has not failed, in parallel; it succeeds if
// an in-sync leg flushed. After a flush that succeeded on every leg, the
// dirty bits of regions whose writes all completed before it began are
// cleaned (see the package documentation for exactly when).
func (m *Mirror) Flush() error {
	gen := m.gen.Load()
	o, err := m.begin(true)
	if err != nil {
		return err
	}
	defer m.end(o)
	return m.flush(o, gen)
}

// flush flushes o's legs and cleans what it may. gen is the leg
// generation read before o began.
func (m *Mirror) flush(o *op, gen uint64) error {
	regions := m.locks.takeCompleted()
	seen := m.answered.Load()
	all, err := m.fanout(o, "flush", kindFlush, 0, 0, func(l *Leg) error { return l.dev.Flush() })
	if all {
		m.clean(regions, gen)
	} else {
		m.giveBack(regions)
	}
	if err == nil {
		for {
			cur := m.flushedUpTo.Load()
			if cur >= seen || m.flushedUpTo.CompareAndSwap(cur, seen) {
				break
			}
		}
	}
	return err
}

// Unflushed reports whether a write was answered since the last flush
// that succeeded began: a write that only the in-sync legs of that
// moment hold, perhaps not durably yet.
func (m *Mirror) Unflushed() bool { return m.answered.Load() > m.flushedUpTo.Load() }

// complete reports whether the mirror may clean bits now: the copies
// are all attached and none has failed.
func (m *Mirror) complete(legs []*Leg) bool {
	if len(legs) < m.copies {
		return false
	}
	for _, l := range legs {
		if l.State() == Failed {
			return false
		}
	}
	return true
}

// clean clears the dirty bits of regions after a flush that succeeded on
// every leg attached since gen. A region is cleaned only if nothing is in
// flight there, nothing completed there since the flush began, every
// resyncing leg has been copied past it, and no repair has it yet to
// copy: then its data is durable and the same on every leg. A region a
// resync or a repair has not passed yet stays for a later flush. When the
// mirror is not complete the regions are dropped — their bits stay, as the
// record of what a leg misses.
func (m *Mirror) clean(regions []int64, gen uint64) {
	if len(regions) == 0 {
		return
	}
	legs := m.Legs()
	if m.gen.Load() != gen || !m.complete(legs) {
		m.giveBack(regions)
		return
	}
	n := m.bm.Regions()
	lk := &m.locks
	lk.mu.Lock()
	defer lk.mu.Unlock()
	for _, r := range regions {
		if _, again := lk.completed[r]; again || lk.busyLocked(r) {
			continue // a later flush will see it
		}
		ok := !lk.heldLocked(r)
		for _, l := range legs {
			ok = ok && l.covered(r, n)
		}
		if ok {
			m.bm.Clean(r, r)
		} else {
			lk.completed[r] = struct{}{}
		}
	}
}

// giveBack returns regions a flush could not clean to the completed set,
// for the next flush, if the mirror is complete; otherwise they are
// dropped, since nothing may be cleaned until a resync copies them (and
// completes them again).
func (m *Mirror) giveBack(regions []int64) {
	if len(regions) == 0 || !m.complete(m.Legs()) {
		return
	}
	lk := &m.locks
	lk.mu.Lock()
	defer lk.mu.Unlock()
	for _, r := range regions {
		lk.completed[r] = struct{}{}
	}
}
