package mirror

import (
	"context"
	"fmt"
	"sync"

	"github.com/netraid/netraid/blockdev"
)

// gate tracks operations in epochs so that one can wait for every
// operation that began before a point (drain) while new ones go on, and
// can hold new operations back altogether (Mirror.Hold).
type gate struct {
	mu  sync.Mutex
	cur *epoch
	// held, while a Hold is in force, is closed when it ends: no
	// operation enters until then.
	held chan struct{}
}

// epoch counts the operations that entered while it was current.
type epoch struct {
	n       int64
	flipped bool
	done    chan struct{} // closed once flipped and n == 0
	prev    *epoch        // the epoch before, until known drained
}

func (g *gate) init() { g.cur = &epoch{done: make(chan struct{})} }

// enter counts an operation in the current epoch; while a hold is in
// force it enters nothing and returns the channel to wait on.
func (g *gate) enter() (*epoch, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != nil {
		return nil, g.held
	}
	g.cur.n++
	return g.cur, nil
}

func (g *gate) exit(e *epoch) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e.n--; e.n == 0 && e.flipped {
		close(e.done)
	}
}

// drain waits until every operation that entered before it has exited.
func (g *gate) drain(ctx context.Context) error {
	g.mu.Lock()
	old := g.cur
	g.cur = &epoch{done: make(chan struct{}), prev: old}
	old.flipped = true
	if old.n == 0 {
		close(old.done)
	}
	g.mu.Unlock()
	for e := old; e != nil; {
		select {
		case <-e.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		g.mu.Lock()
		e = e.prev
		g.mu.Unlock()
	}
	g.mu.Lock()
	old.prev = nil // everything before old is drained
	g.mu.Unlock()
	return nil
}

// target is a leg taking part in an operation, and whether it was in sync
// when the operation began.
type target struct {
	leg    *Leg
	inSync bool
}

// op is one operation in flight: the legs it uses, counted in their io
// groups, and its epoch.
type op struct {
	ep     *epoch
	legs   []target
	failed int // attached legs left out because failed
	app    bool
}

// enterGate enters the gate, waiting out a hold. It returns with m.mu
// read-locked.
func (m *Mirror) enterGate() *epoch {
	for {
		m.mu.RLock()
		ep, held := m.gate.enter()
		if held == nil {
			return ep
		}
		m.mu.RUnlock()
		<-held
	}
}

// Hold stops new operations from starting (they wait) and waits, within
// ctx, for those in flight to end; release lets the waiting ones go on.
// While it is in force the caller may change the legs knowing that no
// operation runs: attaching a leg with the bitmap's dirty regions being
// exactly what it lacks. One hold at a time.
func (m *Mirror) Hold(ctx context.Context) (release func(), err error) {
	g := &m.gate
	g.mu.Lock()
	if g.held != nil {
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: the mirror is held already", ErrBusy)
	}
	ch := make(chan struct{})
	g.held = ch
	g.mu.Unlock()
	release = func() {
		g.mu.Lock()
		g.held = nil
		g.mu.Unlock()
		close(ch)
	}
	if err := g.drain(ctx); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// begin starts an operation on every attached leg that has not failed.
// app marks application I/O (as opposed to resync and verify).
func (m *Mirror) begin(app bool) (*op, error) {
	ep := m.enterGate()
	defer m.mu.RUnlock()
	if m.closed {
		m.gate.exit(ep)
		return nil, fmt.Errorf("mirror: %w", blockdev.ErrClosed)
	}
	if err := m.frozenErr(); err != nil {
		m.gate.exit(ep)
		return nil, err
	}
	o := &op{ep: ep, app: app, legs: make([]target, 0, len(m.legs))}
	for _, l := range m.legs {
		s := l.State()
		if s == Failed {
			o.failed++
			continue
		}
		l.io.Add(1)
		o.legs = append(o.legs, target{leg: l, inSync: s == InSync})
	}
	if app {
		m.appOps.Add(1)
		m.appInflight.Add(1)
	}
	return o, nil
}

// beginLegs starts an operation on the given legs only, which must be
// attached.
func (m *Mirror) beginLegs(legs ...*Leg) (*op, error) {
	ep := m.enterGate()
	defer m.mu.RUnlock()
	if m.closed {
		m.gate.exit(ep)
		return nil, fmt.Errorf("mirror: %w", blockdev.ErrClosed)
	}
	for _, l := range legs {
		if l.m != m || l.removed {
			m.gate.exit(ep)
			return nil, fmt.Errorf("%w: %s is not attached", ErrLeg, l.name)
		}
	}
	o := &op{ep: ep}
	for _, l := range legs {
		l.io.Add(1)
		o.legs = append(o.legs, target{leg: l, inSync: l.State() == InSync})
	}
	return o, nil
}

// end finishes an operation begun with begin or beginLegs.
func (m *Mirror) end(o *op) {
	for _, t := range o.legs {
		t.leg.io.Done()
	}
	if o.app {
		m.appInflight.Add(-1)
	}
	if o.ep != nil {
		m.gate.exit(o.ep)
	}
}

// anyInSync reports whether a leg of o was in sync when it began.
func (o *op) anyInSync() bool {
	for _, t := range o.legs {
		if t.inSync {
			return true
		}
	}
	return false
}

// allInSync reports whether every attached leg was in sync when o began.
func (o *op) allInSync() bool {
	for _, t := range o.legs {
		if !t.inSync {
			return false
		}
	}
	return o.failed == 0
}

// readOrder returns o's in-sync legs, local ones first.
func (o *op) readOrder() []*Leg {
	var local, remote []*Leg
	for _, t := range o.legs {
		switch {
		case !t.inSync:
		case t.leg.local:
			local = append(local, t.leg)
		default:
			remote = append(remote, t.leg)
		}
	}
	return append(local, remote...)
}
