package blockdev

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/netraid/netraid/internal/workers"
)

// Timeout bounds how long each operation on a device may take. An
// operation that does not finish within the limit returns an error
// wrapping ErrTimeout at once, while the stuck call goes on in the
// background.
//
// A read goes into a buffer of its own and reaches p only if it came back
// in time, so a late read never writes into memory the caller has reused.
// A write is issued from p itself, without a copy (a copy of every write
// costs more CPU than the rest of the path above the disk): a timed-out
// write may still land on the device later, with whatever p holds by then.
// After ErrTimeout the range's contents are unknown, as after any failed
// write: a mirror fails the leg and resyncs the range; a caller without
// redundancy must not rely on it until it has been written again.
type Timeout struct {
	d   Device
	dur time.Duration

	// Calls run on workers that outlive them, whose stacks have already
	// grown to the depth of the device below.
	pool *workers.Pool

	mu       sync.Mutex
	inflight int           // calls running, stuck ones included
	idle     chan struct{} // made by Close; closed when inflight drops to 0
	closed   bool
}

// call is one operation handed to a worker. done is buffered so that a
// worker finishing a call nobody waits for any more does not block. run
// is the method value of exec, made once per pooled call, so that handing
// a call to a worker allocates nothing.
type call struct {
	w    *Timeout
	fn   func() error
	done chan error
	run  func()
}

var callPool = sync.Pool{New: func() any {
	c := &call{done: make(chan error, 1)}
	c.run = c.exec
	return c
}}

// exec runs the call on a worker and reports its outcome.
func (c *call) exec() {
	err := c.fn()
	c.w.finished()
	c.done <- err
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
	return &Timeout{d: d, dur: dur, pool: workers.New(0)}
}

// Unwrap returns the wrapped device.
func (w *Timeout) Unwrap() Device { return w.d }

func (w *Timeout) Size() int64    { return w.d.Size() }
func (w *Timeout) BlockSize() int { return BlockSize(w.d) }

// run calls fn on a worker and waits for it up to the limit. A call that
// overruns keeps its worker until fn returns; the caller goes on at once.
func (w *Timeout) run(op string, off, n int64, fn func() error) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.inflight++
	w.mu.Unlock()

	c := callPool.Get().(*call)
	c.w, c.fn = w, fn
	w.pool.Go(c.run)
	t := getTimer(w.dur)
	defer putTimer(t)
	select {
	case err := <-c.done:
		c.w, c.fn = nil, nil
		callPool.Put(c)
		return err
	case <-t.C:
		// c stays with its worker, which sends to c.done and drops it.
		return fmt.Errorf("%w: %s off %d len %d still running after %v", ErrTimeout, op, off, n, w.dur)
	}
}

var timerPool sync.Pool

// getTimer returns a running timer that fires after d; putTimer stops it
// and keeps it for reuse (since Go 1.23 a stopped timer's channel holds
// no stale value).
func getTimer(d time.Duration) *time.Timer {
	if t, ok := timerPool.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timerPool.Put(t)
}

// Running returns how many calls are in flight, stuck ones included.
func (w *Timeout) Running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inflight
}

func (w *Timeout) finished() {
	w.mu.Lock()
	defer w.mu.Unlock()
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
	if stuck == nil {
		w.pool.Wait() // every worker is idle and leaves
	}
	return errors.Join(stuck, w.d.Close())
}
