package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/resync"
)

// Options configures a Mirror.
type Options struct {
	// Logger gets leg failures and state changes; slog.Default if nil.
	Logger *slog.Logger
	// OnLegFailed is called once when a leg fails, with the *LegError
	// that failed it. It runs on the I/O path that saw the error, and no
	// operation is answered until it returns: it may take its time to
	// record the failure (the node records a new data generation there),
	// but must not call RemoveLeg (which waits for that very I/O). If it
	// returns an error, the mirror is frozen: every operation that waited
	// for it, and every later one, fails with ErrFrozen and that error,
	// since none may be answered as if the failure were recorded.
	OnLegFailed func(leg *Leg, err error) error
	// Copies is how many legs the mirror has when complete; 2 if zero.
	// Dirty bits are cleaned only while that many legs are attached and
	// none has failed: otherwise they are the record of what an absent
	// or failed leg misses.
	Copies int
}

// Mirror is a RAID1 volume over legs; see the package documentation.
type Mirror struct {
	size     int64
	bm       *resync.Bitmap
	log      *slog.Logger
	onFailed func(*Leg, error) error
	copies   int

	mu     sync.RWMutex // guards legs and closed
	legs   []*Leg
	closed bool

	gate  gate
	locks rangeLocks
	// failMu is held while a leg fails and OnLegFailed runs; an operation
	// that succeeded passes through it (failBarrier) before it answers.
	failMu sync.RWMutex
	// gen changes whenever a leg changes state or joins or leaves.
	gen atomic.Uint64
	// answered counts the application's writes answered; flushedUpTo is
	// the count a flush that succeeded had seen when it began
	// (Unflushed).
	answered, flushedUpTo atomic.Uint64
	// frozen, once set, fails every operation (see Options.OnLegFailed).
	frozen atomic.Pointer[error]
	// held, while set, keeps application operations from being answered
	// (HoldAcks); ackMu serialises its changes.
	held  atomic.Pointer[ackHold]
	ackMu sync.Mutex
	// ackWhy are the reasons the answers are held for (under ackMu).
	ackWhy map[string]bool
	// sendHeld, while set, keeps application writes from going to any
	// leg once marked (HoldWrites); changed under ackMu.
	sendHeld atomic.Pointer[ackHold]
	// Application I/O, for adaptive resync.
	appOps, appInflight, appSeen atomic.Int64
}

var (
	_ blockdev.Device      = (*Mirror)(nil)
	_ blockdev.Trimmer     = (*Mirror)(nil)
	_ blockdev.Zeroer      = (*Mirror)(nil)
	_ blockdev.FUAWriter   = (*Mirror)(nil)
	_ blockdev.BlockSizer  = (*Mirror)(nil)
	_ blockdev.Mapper      = (*Mirror)(nil)
	_ blockdev.Checksummer = (*Mirror)(nil)
)

// New returns a mirror of size bytes with no legs, whose write-intent
// bitmap is bm (of the same volume size). The bitmap stays the caller's:
// Close syncs it but does not close it.
func New(size int64, bm *resync.Bitmap, o Options) (*Mirror, error) {
	if bm == nil || bm.VolumeSize() != size {
		return nil, fmt.Errorf("%w: bitmap does not describe a volume of %d bytes", resync.ErrGeometry, size)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Copies <= 0 {
		o.Copies = 2
	}
	m := &Mirror{size: size, bm: bm, log: o.Logger, onFailed: o.OnLegFailed, copies: o.Copies}
	m.gate.init()
	m.locks.init(bm.RegionSize())
	return m, nil
}

// Bitmap returns the mirror's write-intent bitmap.
func (m *Mirror) Bitmap() *resync.Bitmap { return m.bm }

// Size returns the volume size.
func (m *Mirror) Size() int64 { return m.size }

// BlockSize returns the largest logical block size of the legs.
func (m *Mirror) BlockSize() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	bs := 512
	for _, l := range m.legs {
		bs = max(bs, blockdev.BlockSize(l.dev))
	}
	return bs
}

// AddLeg attaches dev as a leg. A leg joins InSync only when the caller
// knows it holds the volume's data and no write is in flight (assembly);
// a returning or new leg joins Resyncing and becomes InSync through
// Resync; a leg may join Failed as the placeholder of an absent copy (it
// gets nothing, and keeps the mirror from cleaning bits). The mirror owns
// dev from now on: Close closes it, RemoveLeg gives it back. Names must
// be unique among the legs that have not failed.
func (m *Mirror) AddLeg(name string, dev blockdev.Device, state LegState, local bool) (*Leg, error) {
	if state != InSync && state != Resyncing && state != Failed {
		return nil, fmt.Errorf("%w: %s cannot join in state %d", ErrLeg, name, state)
	}
	if dev.Size() < m.size {
		return nil, fmt.Errorf("%w: %s has %d bytes, the volume %d", ErrLeg, name, dev.Size(), m.size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("mirror: add leg: %w", blockdev.ErrClosed)
	}
	for _, l := range m.legs {
		if l.name == name && l.State() != Failed && state != Failed {
			return nil, fmt.Errorf("%w: a leg named %s is attached already", ErrLeg, name)
		}
	}
	l := &Leg{m: m, name: name, dev: dev, local: local}
	l.state.Store(int32(state))
	m.legs = append(m.legs, l)
	m.gen.Add(1)
	m.log.Info("mirror: leg added", "leg", name, "state", state.String(), "local", local)
	return l, nil
}

// RemoveLeg detaches l, waits for its I/O in flight, and gives its device
// back to the caller (it is not closed). A resync of l ends with an error.
func (m *Mirror) RemoveLeg(l *Leg) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("mirror: remove leg: %w", blockdev.ErrClosed)
	}
	i := slices.Index(m.legs, l)
	if i < 0 {
		m.mu.Unlock()
		return fmt.Errorf("%w: not attached", ErrLeg)
	}
	m.legs = slices.Delete(m.legs, i, i+1)
	l.removed = true
	m.gen.Add(1)
	m.mu.Unlock()
	l.io.Wait()
	m.log.Info("mirror: leg removed", "leg", l.name, "state", l.State().String())
	return nil
}

// Legs returns the attached legs, in the order they were added.
func (m *Mirror) Legs() []*Leg {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.legs)
}

// Close refuses new I/O, waits for the I/O in flight, flushes the legs (so
// that the bitmap can be cleaned), syncs the bitmap and closes the legs'
// devices.
func (m *Mirror) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("mirror: %w: closed twice", blockdev.ErrClosed)
	}
	m.closed = true
	legs := slices.Clone(m.legs)
	m.mu.Unlock()
	if err := m.gate.drain(context.Background()); err != nil {
		return err
	}
	var errs []error
	o := &op{}
	for _, l := range legs {
		if s := l.State(); s != Failed {
			o.legs = append(o.legs, target{leg: l, inSync: s == InSync})
		}
	}
	if len(o.legs) > 0 {
		errs = append(errs, m.flush(o, m.gen.Load()))
	}
	errs = append(errs, m.bm.Sync())
	for _, l := range legs {
		if err := l.dev.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mirror: close leg %s: %w", l.name, err))
		}
	}
	return errors.Join(errs...)
}

// LegStatus is one leg in a Status.
type LegStatus struct {
	Name  string
	State LegState
	Local bool
	// Err is the error that failed the leg, if it failed.
	Err   error
	Stats LegStats
}

// Status is a snapshot of the mirror for status displays.
type Status struct {
	Size, RegionSize int64
	Legs             []LegStatus
	// DirtyRegions and DirtyBytes: the write-intent bitmap's dirty
	// regions — writes in flight or not yet flushed everywhere, and
	// everything a failed, absent or resyncing leg misses.
	DirtyRegions, DirtyBytes int64
}

// Status returns the mirror's state now.
func (m *Mirror) Status() Status {
	s := Status{Size: m.size, RegionSize: m.bm.RegionSize(), DirtyRegions: m.bm.DirtyCount(), DirtyBytes: m.bm.DirtyBytes()}
	for _, l := range m.Legs() {
		s.Legs = append(s.Legs, LegStatus{Name: l.name, State: l.State(), Local: l.local, Err: l.Err(), Stats: l.Stats()})
	}
	return s
}

// busy reports whether the application did I/O since the last call.
func (m *Mirror) busy() bool {
	ops := m.appOps.Load()
	return m.appSeen.Swap(ops) != ops || m.appInflight.Load() > 0
}

// failBarrier waits for a leg failure in progress, and its OnLegFailed
// callback, to finish. Every mirrored operation passes it before it
// answers success: a write that skipped a leg because the leg had just
// failed is not acknowledged until the caller has recorded the failure
// (the node starts a new data generation there).
func (m *Mirror) failBarrier() error {
	m.failMu.RLock()
	//lint:ignore SA2001 an empty critical section is the point: a barrier
	m.failMu.RUnlock()
	return m.frozenErr()
}

// ackHold is a hold of the answers to application operations: closed
// when it ends, with err (nil: answer them).
type ackHold struct {
	done chan struct{}
	err  error
}

// HoldAcks keeps the application's operations that succeed (writes,
// flushes, trims) from being answered until ReleaseAcks answers them or
// FailAcks fails them. Resyncs, rebuilds and verifies go on meanwhile,
// so that a peer that comes back can be brought in sync under the hold.
// The node holds the answers while it cannot record what makes them
// safe (its witness unreachable after losing its peer). Holds for
// different reasons (why) add up: the answers wait until each is
// released; a reason held twice is one hold.
func (m *Mirror) HoldAcks(why string) {
	m.ackMu.Lock()
	defer m.ackMu.Unlock()
	if m.ackWhy == nil {
		m.ackWhy = map[string]bool{}
	}
	m.ackWhy[why] = true
	if m.held.Load() == nil {
		m.held.Store(&ackHold{done: make(chan struct{})})
	}
}

// ReleaseAcks ends the hold for why; the operations held are answered
// once no other reason holds them.
func (m *Mirror) ReleaseAcks(why string) {
	m.ackMu.Lock()
	defer m.ackMu.Unlock()
	delete(m.ackWhy, why)
	if len(m.ackWhy) == 0 {
		m.endHoldLocked(nil)
	}
}

// FailAcks fails the operations held, whatever holds them, and freezes
// the mirror: every later operation fails too.
func (m *Mirror) FailAcks(err error) {
	m.freeze(err)
	m.ackMu.Lock()
	defer m.ackMu.Unlock()
	clear(m.ackWhy)
	m.endHoldLocked(m.frozenErr())
}

// HoldWrites keeps the application's writes (and trims and zeroes) that
// have marked their regions from going to any leg until ReleaseWrites
// lets them go on, FailWrites fails them, or FailAcks or a freeze fails
// them. The node holds them when a write's mark persisted nothing (no
// member disk is left to hold the bitmap) until its peer records that it
// holds the only copy: a write that reached the peer before would be
// recorded nowhere, and a crash would leave it on the peer's copy alone
// with nothing to say so. It may be called from within a mark (it does
// not block); a write whose mark called it is held.
func (m *Mirror) HoldWrites() {
	m.ackMu.Lock()
	defer m.ackMu.Unlock()
	if h := m.sendHeld.Load(); h == nil || h.ended() {
		m.sendHeld.Store(&ackHold{done: make(chan struct{})})
	}
}

// FailWrites fails, with err and without sending them, the writes held
// and those that reach the same point (after their mark) until
// HoldWrites holds them again or ReleaseWrites lets them go.
func (m *Mirror) FailWrites(err error) {
	m.ackMu.Lock()
	defer m.ackMu.Unlock()
	m.endSendHoldLocked(err)
	h := &ackHold{done: make(chan struct{}), err: err}
	close(h.done)
	m.sendHeld.Store(h)
}

// ReleaseWrites ends HoldWrites and FailWrites: writes go on to the legs.
func (m *Mirror) ReleaseWrites() {
	m.ackMu.Lock()
	defer m.ackMu.Unlock()
	m.endSendHoldLocked(nil)
}

// endSendHoldLocked ends the hold of writes, if any, failing them with
// err unless nil. Callers hold m.ackMu.
func (m *Mirror) endSendHoldLocked(err error) {
	if h := m.sendHeld.Load(); h != nil {
		if !h.ended() {
			h.err = err
			close(h.done)
		}
		m.sendHeld.Store(nil)
	}
}

// ended reports whether h has ended.
func (h *ackHold) ended() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// sendBarrier waits out a hold of the writes (HoldWrites), and returns
// the error to fail the write with, without sending it, if any.
func (m *Mirror) sendBarrier() error { return m.barrier(&m.sendHeld) }

// barrier waits out the hold in p, if any, and returns its error, else
// the freeze's, if any.
func (m *Mirror) barrier(p *atomic.Pointer[ackHold]) error {
	if h := p.Load(); h != nil {
		<-h.done
		if h.err != nil {
			return h.err
		}
	}
	return m.frozenErr()
}

// AcksHeld reports whether answers are held.
func (m *Mirror) AcksHeld() bool { return m.held.Load() != nil }

// endHoldLocked ends the hold, if any, with err. Callers hold m.ackMu.
func (m *Mirror) endHoldLocked(err error) {
	if h := m.held.Load(); h != nil {
		h.err = err
		m.held.Store(nil)
		close(h.done)
	}
}

// ackBarrier waits out a hold of the answers, and returns what to answer
// instead of success, if anything.
func (m *Mirror) ackBarrier() error { return m.barrier(&m.held) }

// freeze makes every operation fail from now on with err.
func (m *Mirror) freeze(err error) {
	err = &FrozenError{Cause: err}
	m.frozen.CompareAndSwap(nil, &err)
	m.log.Error("mirror: frozen: no operation is answered any more", "err", err)
	m.ackMu.Lock()
	defer m.ackMu.Unlock()
	m.endSendHoldLocked(m.frozenErr())
}

// frozenErr is the error a frozen mirror fails operations with, or nil.
func (m *Mirror) frozenErr() error {
	if p := m.frozen.Load(); p != nil {
		return *p
	}
	return nil
}

// FailLeg fails l as an I/O error would, for a caller that learnt another
// way that the leg is gone (a dead link found by a keepalive, a disk the
// operator failed); op says how.
func (m *Mirror) FailLeg(l *Leg, op string, err error) {
	l.fail(op, 0, 0, err)
}
