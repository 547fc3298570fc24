package blockdev

import "sync"

// FlushGroup lets concurrent flushes of one device share its flushes
// (group commit). A flush that comes while none runs starts one at once.
// One that comes while a flush runs cannot be answered by it, since that
// flush may have started before the caller's writes completed: it waits
// for the next one, which starts as soon as the running one ends and
// answers every caller that came in the meantime. So each caller is
// answered by a flush that started after it called, with that flush's
// error, and a burst of N concurrent flushes costs two flushes, not N.
//
// The zero FlushGroup is ready to use; it must not be copied after first
// use.
type FlushGroup struct {
	mu   sync.Mutex
	cur  *flushRound // running, or handed to the leader about to run it
	next *flushRound // waiting for cur to end; nil if none
	// busy counts the callers between Do's start and end, for Busy.
	busy int
}

// flushRound is one flush and the callers it answers.
type flushRound struct {
	done chan struct{} // closed once err is set
	err  error
}

// Do answers the caller with a flush, flush(), that started after Do was
// called: its own, or one it shares with other callers.
func (g *FlushGroup) Do(flush func() error) error {
	g.mu.Lock()
	g.busy++
	defer func() {
		g.mu.Lock()
		g.busy--
		g.mu.Unlock()
	}()
	if g.cur == nil {
		r := &flushRound{done: make(chan struct{})}
		g.cur = r
		g.mu.Unlock()
		return g.run(r, flush)
	}
	if r := g.next; r != nil {
		// Not started yet: it will start after this call.
		g.mu.Unlock()
		<-r.done
		return r.err
	}
	r := &flushRound{done: make(chan struct{})}
	g.next = r
	prev := g.cur
	g.mu.Unlock()
	<-prev.done // prev handed r over: r is cur now, this caller runs it
	return g.run(r, flush)
}

// run runs r's flush, then hands the group to the waiting round, if any,
// whose leader runs it once r's callers are released.
func (g *FlushGroup) run(r *flushRound, flush func() error) error {
	r.err = flush()
	g.mu.Lock()
	g.cur, g.next = g.next, nil
	g.mu.Unlock()
	close(r.done)
	return r.err
}

// Busy reports whether a flush runs or is waited for: a durable write
// that comes now can be made a plain write followed by Do, and share a
// flush with the others, rather than pay a flush of its own.
func (g *FlushGroup) Busy() bool { return g.Callers() > 0 }

// Callers returns how many callers are in Do now.
func (g *FlushGroup) Callers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.busy
}
