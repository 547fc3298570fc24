package fault

import (
	"fmt"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// zeroChunk is the write size of the WriteZeroes fallback.
const zeroChunk = 1 << 20

// enter counts an op and applies what is armed before it reaches the
// device: a hang, a delay, then a failure. A non-nil error fails the op.
func (f *Device) enter(kind Op) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return blockdev.ErrClosed
	}
	f.counts[kind]++
	hang, release, delay := f.hang[kind], f.release, f.slow[kind]
	if hang || delay > 0 {
		f.blocked++
	}
	f.mu.Unlock()

	if hang || delay > 0 {
		f.wait(hang, release, delay)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if hang || delay > 0 {
		f.blocked--
	}
	if f.closed {
		return blockdev.ErrClosed
	}
	if err := f.failLocked(kind); err != nil {
		return fmt.Errorf("fault: injected %s failure: %w", kind, err)
	}
	return nil
}

// wait blocks until released (if hang) and then for delay, either cut
// short by Close.
func (f *Device) wait(hang bool, release <-chan struct{}, delay time.Duration) {
	if hang {
		select {
		case <-release:
		case <-f.closedCh:
			return
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-f.closedCh:
		}
	}
}

// failLocked advances every failure rule that matches kind and returns the
// error of the first that fires. One-shot rules that fire are dropped.
func (f *Device) failLocked(kind Op) error {
	var fired error
	kept := f.fails[:0]
	for _, r := range f.fails {
		switch {
		case !r.op.matches(kind):
		case r.skip > 0:
			r.skip--
		case fired == nil:
			fired = r.err
			if !r.sticky {
				continue
			}
		}
		kept = append(kept, r)
	}
	clear(f.fails[len(kept):])
	f.fails = kept
	return fired
}

// takeTear returns the armed tear length and disarms it, or -1.
func (f *Device) takeTear() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	keep := f.tearKeep
	f.tearKeep = -1
	return keep
}

func (f *Device) Size() int64    { return f.d.Size() }
func (f *Device) BlockSize() int { return blockdev.BlockSize(f.d) }

func (f *Device) ReadAt(p []byte, off int64) (int, error) {
	if err := f.enter(Read); err != nil {
		return 0, err
	}
	return f.d.ReadAt(p, off)
}

func (f *Device) WriteAt(p []byte, off int64) (int, error) {
	return f.write(p, off, false)
}

// WriteAtFUA passes through to the device's FUA write, or else is a write
// followed by a Flush, each counted and faultable.
func (f *Device) WriteAtFUA(p []byte, off int64) (int, error) {
	return f.write(p, off, true)
}

func (f *Device) write(p []byte, off int64, fua bool) (int, error) {
	if err := f.enter(Write); err != nil {
		return 0, err
	}
	if keep := f.takeTear(); keep >= 0 {
		keep = min(keep, len(p))
		n, err := f.d.WriteAt(p[:keep], off)
		if err != nil {
			return n, err
		}
		return n, fmt.Errorf("%w: wrote %d of %d bytes at off %d", ErrTorn, n, len(p), off)
	}
	if !fua {
		return f.d.WriteAt(p, off)
	}
	if w, ok := f.d.(blockdev.FUAWriter); ok {
		return w.WriteAtFUA(p, off)
	}
	n, err := f.d.WriteAt(p, off)
	if err != nil {
		return n, err
	}
	return n, f.Flush()
}

func (f *Device) Flush() error {
	if err := f.enter(Flush); err != nil {
		return err
	}
	return f.d.Flush()
}

func (f *Device) Trim(off, n int64) error {
	if err := f.enter(Trim); err != nil {
		return err
	}
	return blockdev.Trim(f.d, off, n)
}

// WriteZeroes passes through to the device's WriteZeroes, or else writes
// zero buffers through this wrapper, so that each write is faultable.
func (f *Device) WriteZeroes(off, n int64, mayTrim bool) error {
	if err := f.enter(Zero); err != nil {
		return err
	}
	if z, ok := f.d.(blockdev.Zeroer); ok {
		return z.WriteZeroes(off, n, mayTrim)
	}
	if err := blockdev.CheckRange(f.d.Size(), off, n); err != nil {
		return err
	}
	for n > 0 {
		m := min(n, zeroChunk)
		if _, err := f.WriteAt(blockdev.Zeroes(int(m)), off); err != nil {
			return err
		}
		off += m
		n -= m
	}
	return nil
}

// Map counts as a Read.
func (f *Device) Map(off, n int64) ([]blockdev.Extent, error) {
	if err := f.enter(Read); err != nil {
		return nil, err
	}
	return blockdev.Map(f.d, off, n)
}

// Checksum counts as a Read.
func (f *Device) Checksum(off, n int64) (blockdev.Sum, error) {
	if err := f.enter(Read); err != nil {
		return blockdev.Sum{}, err
	}
	return blockdev.Checksum(f.d, off, n)
}

// Close releases every op held by Hang or Slow (they fail with
// blockdev.ErrClosed), then closes the wrapped device.
func (f *Device) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return fmt.Errorf("%w: closed twice", blockdev.ErrClosed)
	}
	f.closed = true
	close(f.closedCh)
	f.mu.Unlock()
	return f.d.Close()
}
