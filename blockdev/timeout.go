package blockdev

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Timeout bounds how long each operation on a device may take. An
// operation that does not finish within the limit returns an error
// wrapping ErrTimeout at once, while the stuck call goes on in the
// background on buffers of its own: a read's data reaches p only if it
// came back in time, and a write takes a copy of p first, so the caller
// may reuse p as soon as the call returns either way.
//
// A timed-out write may still land on the device later; callers treat the
// range as unknown (a mirror fails the leg).
type Timeout struct {
	d   Device
	dur time.Duration

	mu       sync.Mutex
	inflight int           // calls running, stuck ones included
	idle     chan struct{} // made by Close; closed when inflight drops to 0
	closed   bool
}

var (
	_ Device      = (*Timeout)(nil)
	_ BlockSizer  = (*Timeout)(nil)
	_ FUAWriter   = (*Timeout)(nil)
	_ Trimmer     = (*Timeout)(nil)
	_ Zeroer      = (*Timeout)(nil)
	_ Mapper      = (*Timeout)(nil)
	_ Checksummer = (*Timeout)(nil)
)

// WithTimeout wraps d so that no operation takes longer than dur (> 0).
// Closing the result closes d.
func WithTimeout(d Device, dur time.Duration) *Timeout {
	if dur <= 0 {
		panic(fmt.Sprintf("blockdev: WithTimeout(%v): the limit must be positive", dur))
	}
	return &Timeout{d: d, dur: dur}
}

// Unwrap returns the wrapped device.
func (w *Timeout) Unwrap() Device { return w.d }

func (w *Timeout) Size() int64    { return w.d.Size() }
func (w *Timeout) BlockSize() int { return BlockSize(w.d) }

// run calls fn in a goroutine of its own and waits for it up to the limit.
// The goroutine ends when fn returns, whether or not anyone still waits.
func (w *Timeout) run(op string, off, n int64, fn func() error) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.inflight++
	w.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		defer w.finished()
		done <- fn()
	}()
	t := time.NewTimer(w.dur)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w: %s off %d len %d still running after %v", ErrTimeout, op, off, n, w.dur)
	}
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

func (w *Timeout) WriteAt(p []byte, off int64) (int, error) {
	return w.write("write", p, off, func(b []byte) (int, error) { return w.d.WriteAt(b, off) })
}

func (w *Timeout) WriteAtFUA(p []byte, off int64) (int, error) {
	return w.write("write-fua", p, off, func(b []byte) (int, error) { return WriteFUA(w.d, b, off) })
}

func (w *Timeout) write(op string, p []byte, off int64, fn func([]byte) (int, error)) (int, error) {
	buf := GetBuffer(len(p), bufferAlign(w.d))
	copy(buf, p)
	var n int
	err := w.run(op, off, int64(len(p)), func() (err error) {
		n, err = fn(buf)
		return err
	})
	if errors.Is(err, ErrTimeout) {
		return 0, err
	}
	PutBuffer(buf)
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

// Close refuses new calls, waits up to the limit for the running ones,
// then closes the device; calls still stuck end when the device lets them
// go. If some were still running, the error wraps ErrTimeout.
func (w *Timeout) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("%w: closed twice", ErrClosed)
	}
	w.closed = true
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
	return errors.Join(stuck, w.d.Close())
}
