package mirror

import (
	"sync"
	"sync/atomic"

	"github.com/netraid/netraid/blockdev"
)

// LegState is where a leg stands with respect to the volume's data.
type LegState int32

const (
	// InSync: the leg holds every write; it serves reads and gets writes.
	InSync LegState = iota
	// Resyncing: the leg gets every new write and the resync engine
	// copies it what it missed; it serves no reads.
	Resyncing
	// Failed: the leg gets nothing. Only RemoveLeg takes it out.
	Failed
)

func (s LegState) String() string {
	switch s {
	case InSync:
		return "in-sync"
	case Resyncing:
		return "resyncing"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// LegStats counts a leg's I/O.
type LegStats struct {
	Reads, ReadBytes   int64
	Writes, WriteBytes int64 // writes, FUA writes, zeroes and trims
	Flushes            int64
	// SyncBytes is what resync and repair wrote to the leg.
	SyncBytes int64
	Errors    int64
}

// Leg is one copy of the volume in a Mirror.
type Leg struct {
	m     *Mirror
	name  string
	dev   blockdev.Device
	local bool
	state atomic.Int32
	// io counts the leg's I/O in flight; RemoveLeg waits for it. Added to
	// only under m.mu while the leg is attached.
	io      sync.WaitGroup
	removed bool // guarded by m.mu

	mu  sync.Mutex // guards the fields below; held briefly, never while taking other locks
	err error
	// A resync's coverage: cov regions from covStart on, in circular
	// order, hold the source's data (valid while covOK).
	covStart, cov int64
	covOK         bool
	resyncing     bool // an engine runs on the leg

	reads, readBytes, writes, writeBytes atomic.Int64
	flushes, syncBytes, errors           atomic.Int64
}

// Name returns the name given to AddLeg.
func (l *Leg) Name() string { return l.name }

// Device returns the leg's device.
func (l *Leg) Device() blockdev.Device { return l.dev }

// Local reports whether the leg is on this machine (reads prefer it).
func (l *Leg) Local() bool { return l.local }

// State returns the leg's state now.
func (l *Leg) State() LegState { return LegState(l.state.Load()) }

// Err returns the *LegError that failed the leg, or nil.
func (l *Leg) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Stats returns the leg's counters.
func (l *Leg) Stats() LegStats {
	return LegStats{
		Reads: l.reads.Load(), ReadBytes: l.readBytes.Load(),
		Writes: l.writes.Load(), WriteBytes: l.writeBytes.Load(),
		Flushes: l.flushes.Load(), SyncBytes: l.syncBytes.Load(), Errors: l.errors.Load(),
	}
}

// fail records err as the leg's failure in op, fails the leg if it was
// not failed yet (calling OnLegFailed once), and returns the *LegError.
func (l *Leg) fail(op string, off, n int64, err error) *LegError {
	le := &LegError{Leg: l.name, Op: op, Off: off, Len: n, Err: err}
	l.errors.Add(1)
	// Held across the state change and OnLegFailed, so that no write the
	// failed leg did not get is answered before the callback is done
	// (see (*Mirror).failBarrier).
	l.m.failMu.Lock()
	defer l.m.failMu.Unlock()
	for {
		s := l.state.Load()
		if LegState(s) == Failed {
			return le
		}
		if l.state.CompareAndSwap(s, int32(Failed)) {
			break
		}
	}
	l.mu.Lock()
	l.err, l.covOK = le, false
	l.mu.Unlock()
	l.m.gen.Add(1)
	l.m.log.Warn("mirror: leg failed", "leg", l.name, "op", op, "off", off, "len", n, "err", err)
	if f := l.m.onFailed; f != nil {
		if ferr := f(l, le); ferr != nil {
			l.m.freeze(ferr)
		}
	}
	return le
}

// setCoverage records a resync's progress on the leg.
func (l *Leg) setCoverage(start, count int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.covStart, l.cov, l.covOK = start, count, true
}

// covered reports whether region r (of n) is known to hold the source's
// data: always for an in-sync leg, within the coverage for a resyncing one.
func (l *Leg) covered(r, n int64) bool {
	switch l.State() {
	case InSync:
		return true
	case Resyncing:
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.covOK && (r-l.covStart+n)%n < l.cov
	}
	return false
}
