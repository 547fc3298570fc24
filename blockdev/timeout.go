package blockdev

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/netraid/netraid/internal/lat"
	"github.com/netraid/netraid/internal/workers"
)

// Timeout bounds how long each operation on a device may take. An
// operation that does not finish within the limit returns an error
// wrapping ErrTimeout, while the stuck call goes on in the background.
//
// A read goes into a buffer of its own and reaches p only if it came back
// in time, so a late read never writes into memory the caller has reused.
// A write is issued from p itself, without a copy (a copy of every write
// costs more CPU than the rest of the path above the disk): a timed-out
// write may still land on the device later, with whatever p holds by then.
// After ErrTimeout the range's contents are unknown, as after any failed
// write: a mirror fails the leg and resyncs the range; a caller without
// redundancy must not rely on it until it has been written again.
//
// The limit is kept by a watchdog rather than by a timer per call: a
// timer armed and stopped on every call, and the select between it and
// the call's end, cost about a fifth of the wrapper's own time per call
// (BenchmarkTimeoutRead). The watchdog runs while calls are in flight,
// looks every quarter of the limit for calls that have run longer than
// it and answers them with ErrTimeout: a stuck call is answered between
// one and one and a quarter times the limit after it started.
type Timeout struct {
	d   Device
	dur time.Duration

	// Calls run on workers that outlive them, whose stacks have already
	// grown to the depth of the device below.
	pool *workers.Pool

	mu       sync.Mutex
	inflight int           // calls running, stuck ones included
	waiting  callList      // calls whose caller waits for the answer, oldest first
	watching bool          // the watchdog is running
	stop     chan struct{} // closed by Close: the watchdog returns
	idle     chan struct{} // made by Close; closed when inflight drops to 0
	closed   bool
}

// watchTicks is how many times per limit the watchdog looks.
const watchTicks = 4

// call is one operation handed to a worker. Its caller waits on done for
// the answer: the call's own outcome, or ErrTimeout from the watchdog.
// Whoever answers takes the call off w.waiting first, under w.mu, so
// there is one answer; done is buffered so that it never blocks. After a
// time-out the worker owns the call and recycles it when fn returns;
// otherwise the caller does. run is the method value of exec, made once
// per pooled call, so that handing a call to a worker allocates nothing.
type call struct {
	w     *Timeout
	fn    func() error
	done  chan error
	run   func()
	start time.Time
	// lat.Start times: the hand-off to the worker (set before it), and
	// fn's end (set by the worker before it answers on done).
	handed, ended int64

	// Guarded by w.mu.
	prev, next *call // in w.waiting while unanswered
	timedOut   bool  // the watchdog answered
}

// errExpired is the watchdog's answer to a call, on its done channel.
var errExpired = errors.New("blockdev: call expired")

var callPool sync.Pool

func init() {
	// Here rather than in callPool's declaration: exec recycles calls into
	// callPool, which would make an initialization cycle.
	callPool.New = func() any {
		c := &call{done: make(chan error, 1)}
		c.run = c.exec
		return c
	}
}

// exec runs the call on a worker and answers it, unless the watchdog has.
func (c *call) exec() {
	lat.Since(lat.TimeoutDispatch, c.handed)
	err := c.fn()
	c.ended = lat.Start()
	w := c.w
	w.mu.Lock()
	w.finishedLocked()
	if c.timedOut {
		w.mu.Unlock()
		c.recycle() // its caller went on long ago
		return
	}
	w.waiting.remove(c)
	w.mu.Unlock()
	c.done <- err
}

func (c *call) recycle() {
	c.w, c.fn, c.timedOut = nil, nil, false
	callPool.Put(c)
}

// callList is a doubly linked list of calls, in the order they started.
type callList struct{ head, tail *call }

func (l *callList) push(c *call) {
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *callList) remove(c *call) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

var (
	_ Device       = (*Timeout)(nil)
	_ BlockSizer   = (*Timeout)(nil)
	_ FUAWriter    = (*Timeout)(nil)
	_ Trimmer      = (*Timeout)(nil)
	_ Zeroer       = (*Timeout)(nil)
	_ Mapper       = (*Timeout)(nil)
	_ Checksummer  = (*Timeout)(nil)
	_ BufferReader = (*Timeout)(nil)
)

// WithTimeout wraps d so that no operation takes longer than dur (> 0).
// Closing the result closes d.
func WithTimeout(d Device, dur time.Duration) *Timeout {
	if dur <= 0 {
		panic(fmt.Sprintf("blockdev: WithTimeout(%v): the limit must be positive", dur))
	}
	return &Timeout{d: d, dur: dur, pool: workers.New(0), stop: make(chan struct{})}
}

// Unwrap returns the wrapped device.
func (w *Timeout) Unwrap() Device { return w.d }

func (w *Timeout) Size() int64    { return w.d.Size() }
func (w *Timeout) BlockSize() int { return BlockSize(w.d) }

// run calls fn on a worker and waits for it up to the limit. A call that
// overruns keeps its worker until fn returns; the caller goes on at once.
func (w *Timeout) run(op string, off, n int64, fn func() error) error {
	c := callPool.Get().(*call)
	c.w, c.fn, c.start = w, fn, time.Now()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		c.recycle()
		return ErrClosed
	}
	w.inflight++
	w.waiting.push(c)
	if !w.watching {
		w.watching = true
		go w.watch()
	}
	w.mu.Unlock()

	c.handed = lat.Start()
	w.pool.Go(c.run)
	err := <-c.done
	if err == errExpired {
		// c is its worker's now: it recycles c when fn returns.
		return fmt.Errorf("%w: %s off %d len %d still running after %v", ErrTimeout, op, off, n, w.dur)
	}
	lat.Since(lat.TimeoutWake, c.ended)
	c.recycle()
	return err
}

// watch answers the calls that have run longer than the limit, looking
// every quarter of it, and returns once none is waiting, or on Close.
func (w *Timeout) watch() {
	t := time.NewTicker(w.dur / watchTicks)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			w.mu.Lock()
			w.expireLocked(now)
			if w.waiting.head == nil {
				w.watching = false
				w.mu.Unlock()
				return
			}
			w.mu.Unlock()
		case <-w.stop:
			return
		}
	}
}

// expireLocked answers with ErrTimeout every waiting call that started a
// limit or more before now. Called with w.mu held.
func (w *Timeout) expireLocked(now time.Time) {
	for c := w.waiting.head; c != nil && now.Sub(c.start) >= w.dur; c = w.waiting.head {
		w.waiting.remove(c)
		c.timedOut = true
		c.done <- errExpired
	}
}

// Running returns how many calls are in flight, stuck ones included.
func (w *Timeout) Running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inflight
}

// finishedLocked counts a call's end. Called with w.mu held.
func (w *Timeout) finishedLocked() {
	w.inflight--
	if w.inflight == 0 && w.idle != nil {
		close(w.idle)
		w.idle = nil
	}
}

func (w *Timeout) ReadAt(p []byte, off int64) (int, error) {
	buf := GetBuffer(len(p), bufferAlign(w.d))
	var n int
	err := w.run("read", off, int64(len(p)), func() (err error) {
		n, err = w.d.ReadAt(buf, off)
		return err
	})
	if errors.Is(err, ErrTimeout) {
		return 0, err // buf still belongs to the stuck call
	}
	copy(p, buf[:n])
	PutBuffer(buf)
	return n, err
}

// ReadBuffer reads as ReadAt does, into a buffer of its own, and hands
// that buffer over rather than copying it out.
func (w *Timeout) ReadBuffer(n int, off int64) ([]byte, error) {
	buf := GetBuffer(n, bufferAlign(w.d))
	var got int
	err := w.run("read", off, int64(n), func() (err error) {
		got, err = w.d.ReadAt(buf, off)
		return err
	})
	if errors.Is(err, ErrTimeout) {
		return nil, err // buf still belongs to the stuck call
	}
	if err := WholeRead(got, n, err); err != nil {
		PutBuffer(buf)
		return nil, err
	}
	return buf, nil
}

func (w *Timeout) WriteAt(p []byte, off int64) (int, error) {
	return w.write("write", p, off, func(b []byte) (int, error) { return w.d.WriteAt(b, off) })
}

func (w *Timeout) WriteAtFUA(p []byte, off int64) (int, error) {
	return w.write("write-fua", p, off, func(b []byte) (int, error) { return WriteFUA(w.d, b, off) })
}

func (w *Timeout) write(op string, p []byte, off int64, fn func([]byte) (int, error)) (int, error) {
	var n int
	err := w.run(op, off, int64(len(p)), func() (err error) {
		n, err = fn(p)
		return err
	})
	if errors.Is(err, ErrTimeout) {
		return 0, err
	}
	return n, err
}

func (w *Timeout) Flush() error {
	return w.run("flush", 0, 0, w.d.Flush)
}

func (w *Timeout) Trim(off, n int64) error {
	return w.run("trim", off, n, func() error { return Trim(w.d, off, n) })
}

func (w *Timeout) WriteZeroes(off, n int64, mayTrim bool) error {
	return w.run("write-zeroes", off, n, func() error { return WriteZeroes(w.d, off, n, mayTrim) })
}

func (w *Timeout) Map(off, n int64) ([]Extent, error) {
	var ext []Extent
	err := w.run("map", off, n, func() (err error) {
		ext, err = Map(w.d, off, n)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ext, nil
}

func (w *Timeout) Checksum(off, n int64) (Sum, error) {
	var s Sum
	err := w.run("checksum", off, n, func() (err error) {
		s, err = Checksum(w.d, off, n)
		return err
	})
	if err != nil {
		return Sum{}, err
	}
	return s, nil
}

// Close refuses new calls, waits up to the limit for the running ones and
// for the idle workers to leave, then closes the device; calls still stuck
// end, with their workers, when the device lets them go. If some were
// still running, the error wraps ErrTimeout.
func (w *Timeout) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("%w: closed twice", ErrClosed)
	}
	w.closed = true
	w.pool.Close()
	var idle chan struct{}
	if w.inflight > 0 {
		w.idle = make(chan struct{})
		idle = w.idle
	}
	w.mu.Unlock()

	var stuck error
	if idle != nil {
		t := time.NewTimer(w.dur)
		select {
		case <-idle:
		case <-t.C:
			w.mu.Lock()
			stuck = fmt.Errorf("%w: close: %d calls still running after %v", ErrTimeout, w.inflight, w.dur)
			w.mu.Unlock()
		}
		t.Stop()
	}
	// Answer the callers still waiting (the watchdog would have within a
	// quarter of the limit) and stop the watchdog.
	w.mu.Lock()
	w.expireLocked(time.Now().Add(w.dur))
	w.mu.Unlock()
	close(w.stop)
	if stuck == nil {
		w.pool.Wait() // every worker is idle and leaves
	}
	return errors.Join(stuck, w.d.Close())
}
