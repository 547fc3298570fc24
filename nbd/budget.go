package nbd

import (
	"context"
	"math/bits"
	"sync"
)

// memBudget is the server-wide budget of request and reply buffers
// (ServerOptions.MemoryBudget). It is split in two: a reserve per
// connection in transmission, which that connection may fill without
// waiting for anyone, and a shared part that connections borrow from
// beyond their reserve. When the shared part cannot lend what a request
// needs, the request waits (its reader stops reading), and as buffers come
// back the waiting connections are served in order of what they already
// borrow, least first, then of arrival: a connection that holds little
// goes before one that holds much, and none is overtaken by later ones
// forever.
//
// With at most maxConns connections in transmission, the bytes held stay
// within maxConns×reserve + shared = the budget.
type memBudget struct {
	reserve int64 // per connection
	shared  int64
	onWait  func() // called when a request starts to wait; may be nil

	mu    sync.Mutex
	lent  int64 // borrowed from the shared part
	held  int64 // held in all
	peak  int64
	waits int64 // requests that had to wait
	queue []*memWaiter
	seq   uint64 // arrival order of waiters
}

// memAccount is one connection's share of the budget; guarded by
// memBudget.mu.
type memAccount struct {
	held int64
}

// memWaiter is a request waiting for the shared part.
type memWaiter struct {
	acct    *memAccount
	n       int64
	seq     uint64
	ready   chan struct{} // closed when granted
	granted bool
}

// Bounds of the budget's split.
const (
	// minReserve is the least reserve a connection gets.
	minReserve = 64 << 10
	// pageSize is the granularity of the reserve.
	pageSize = 4096
)

// newMemBudget splits total for maxConns connections: half of it
// reserved, a multiple of a page each and at least minReserve, the rest
// shared.
func newMemBudget(total int64, maxConns int) *memBudget {
	r := max(total/2/int64(maxConns)/pageSize*pageSize, minReserve)
	return &memBudget{reserve: r, shared: total - int64(maxConns)*r}
}

// minMemoryBudget is the least budget that gives every connection at
// least minReserve and still lends a request of maxRequest beyond it.
func minMemoryBudget(maxConns, maxRequest int) int64 {
	return int64(maxConns)*minReserve + 2*bufferCost(maxRequest)
}

// MinMemoryBudget is the least ServerOptions.MemoryBudget that o's
// other limits allow (a smaller one is raised to it): a reserve of 64
// KiB for each of MaxConnections, and room to lend a request of
// MaxRequest beyond them.
func MinMemoryBudget(o ServerOptions) int64 {
	o = o.withDefaults()
	return minMemoryBudget(o.MaxConnections, o.MaxRequest)
}

// bufferCost is the memory a buffer of n bytes takes from blockdev's
// pool (GetBuffer): a power-of-two class from 4 KiB to 8 MiB, or n and
// its alignment above that.
func bufferCost(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= pageSize:
		return pageSize
	case n <= 8<<20:
		return 1 << bits.Len(uint(n-1))
	}
	return int64(n) + pageSize
}

// extra is what a's holding n more bytes borrows from the shared part.
func (b *memBudget) extra(a *memAccount, n int64) int64 {
	return max(0, a.held+n-b.reserve) - max(0, a.held-b.reserve)
}

// acquire takes n bytes for a, waiting while the shared part cannot lend
// them; it fails only if ctx ends first.
func (b *memBudget) acquire(ctx context.Context, a *memAccount, n int64) error {
	if n <= 0 {
		return nil
	}
	b.mu.Lock()
	if x := b.extra(a, n); x == 0 || (len(b.queue) == 0 && b.lent+x <= b.shared) {
		b.take(a, n)
		b.mu.Unlock()
		return nil
	}
	w := &memWaiter{acct: a, n: n, seq: b.seq, ready: make(chan struct{})}
	b.seq++
	b.waits++
	b.queue = append(b.queue, w)
	b.grant()
	b.mu.Unlock()
	if b.onWait != nil {
		b.onWait()
	}
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.granted {
		b.giveBack(a, n)
	} else {
		b.dequeue(w)
		b.grant()
	}
	return ctx.Err()
}

// release gives back n bytes of a's.
func (b *memBudget) release(a *memAccount, n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.giveBack(a, n)
}

// take records that a holds n more bytes. Called with mu held.
func (b *memBudget) take(a *memAccount, n int64) {
	b.lent += b.extra(a, n)
	a.held += n
	b.held += n
	b.peak = max(b.peak, b.held)
}

// giveBack records that a holds n bytes less and serves the waiters.
// Called with mu held.
func (b *memBudget) giveBack(a *memAccount, n int64) {
	b.lent += b.extra(a, -n) // not positive: what a stops borrowing
	a.held -= n
	b.held -= n
	b.grant()
}

// grant serves waiters in order while the first in order fits. Called
// with mu held.
func (b *memBudget) grant() {
	for len(b.queue) > 0 {
		w := b.first()
		if x := b.extra(w.acct, w.n); x > 0 && b.lent+x > b.shared {
			return
		}
		b.dequeue(w)
		b.take(w.acct, w.n)
		w.granted = true
		close(w.ready)
	}
}

// first is the waiter to serve next: the one whose connection borrows
// least, the earliest among equals.
func (b *memBudget) first() *memWaiter {
	best := b.queue[0]
	for _, w := range b.queue[1:] {
		wb, bb := max(0, w.acct.held-b.reserve), max(0, best.acct.held-b.reserve)
		if wb < bb || (wb == bb && w.seq < best.seq) {
			best = w
		}
	}
	return best
}

func (b *memBudget) dequeue(w *memWaiter) {
	for i, x := range b.queue {
		if x == w {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			return
		}
	}
}

// memStats are the budget's figures.
type memStats struct {
	held, peak, waits int64
}

func (b *memBudget) stats() memStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return memStats{held: b.held, peak: b.peak, waits: b.waits}
}
