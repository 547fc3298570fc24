package workers

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultIdle is how long a worker waits at least for its next function
// by default.
const DefaultIdle = 5 * time.Second

// Pool runs functions on reusable worker goroutines. The zero Pool is not
// usable; make one with New.
type Pool struct {
	idle time.Duration
	work chan func() // unbuffered: a send succeeds only to a waiting worker
	quit chan struct{}

	once    sync.Once
	wg      sync.WaitGroup
	started atomic.Int64 // workers started so far
}

// New returns a pool whose workers end after waiting between idle and
// twice idle (DefaultIdle if idle <= 0) for a function.
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Pool{idle: idle, work: make(chan func()), quit: make(chan struct{})}
}

// Go runs fn on a waiting worker, or on a new one if none is waiting. It
// must not be called after Close.
func (p *Pool) Go(fn func()) {
	select {
	case p.work <- fn:
		return
	default:
	}
	p.started.Add(1)
	p.wg.Add(1)
	go p.worker(fn)
}

// worker runs fn, then the functions handed to it, until it has had none
// for a whole idle period or the pool closes. Its timer is not re-armed
// per function (that cost as much as the hand-off itself): when it fires,
// a worker that ran something since it was armed arms it again, so an
// idle worker ends between one and two idle periods after its last
// function.
func (p *Pool) worker(fn func()) {
	defer p.wg.Done()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		fn()
		busy := true // ran a function since t was armed
	wait:
		for {
			select {
			case fn = <-p.work:
				break wait
			case <-t.C:
				if !busy {
					return
				}
				busy = false
				t.Reset(p.idle)
			case <-p.quit:
				return
			}
		}
	}
}

// Started returns how many workers the pool has started in all.
func (p *Pool) Started() int { return int(p.started.Load()) }

// Close tells the idle workers to leave, and the busy ones to leave when
// their function returns. It does not wait; Wait does. Close may be
// called more than once.
func (p *Pool) Close() { p.once.Do(func() { close(p.quit) }) }

// Wait waits until every worker has left. Call it after Close, once no
// Go is running or will run.
func (p *Pool) Wait() { p.wg.Wait() }
