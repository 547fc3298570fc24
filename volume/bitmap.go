package volume

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/netraid/netraid/blockdev"
)

// errNoMember: every member is marked failed, so no bitmap copy is left.
var errNoMember = errors.New("volume: every member is marked failed; no bitmap copy left")

// bitmapDev is the bitmap area of every member as one device. Writes go to
// every member not marked failed, in parallel, and succeed only if every
// one of them took the write; reads come from the first such member that
// answers. It needs aligned I/O, like the files below it.
type bitmapDev struct {
	v    *Volume
	secs []*blockdev.Section // by member index
	base int64               // the sections' offset on the members
	size int64
	bs   int

	// mu is held shared by every call and exclusively by Close, so that
	// Close waits for the calls in flight.
	mu     sync.RWMutex
	closed bool
}

var (
	_ blockdev.Device     = (*bitmapDev)(nil)
	_ blockdev.FUAWriter  = (*bitmapDev)(nil)
	_ blockdev.Zeroer     = (*bitmapDev)(nil)
	_ blockdev.BlockSizer = (*bitmapDev)(nil)
)

func newBitmap(v *Volume, secs []*blockdev.Section, base int64) *bitmapDev {
	b := &bitmapDev{v: v, secs: secs, base: base, size: secs[0].Size()}
	for _, s := range secs {
		b.bs = max(b.bs, s.BlockSize())
	}
	return b
}

func (b *bitmapDev) Size() int64    { return b.size }
func (b *bitmapDev) BlockSize() int { return b.bs }

// enter takes the shared lock and checks the range; the caller must
// RUnlock if it returns nil.
func (b *bitmapDev) enter(off, n int64) error {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return errClosed
	}
	if err := blockdev.CheckRange(b.size, off, n); err != nil {
		b.mu.RUnlock()
		return fmt.Errorf("volume: bitmap: %w", err)
	}
	return nil
}

// live returns the members not marked failed, in member order.
func (b *bitmapDev) live() []*member {
	failed := b.v.failed.Load()
	var out []*member
	for i, m := range b.v.members {
		if failed&(1<<uint(i)) == 0 {
			out = append(out, m)
		}
	}
	return out
}

func (b *bitmapDev) ReadAt(p []byte, off int64) (int, error) {
	if err := b.enter(off, int64(len(p))); err != nil {
		return 0, err
	}
	defer b.mu.RUnlock()
	live := b.live()
	if len(live) == 0 {
		return 0, errNoMember
	}
	var errs []error
	for _, m := range live {
		n, err := b.secs[m.index].ReadAt(p, off)
		if n == len(p) && (err == nil || err == io.EOF) {
			return n, nil
		}
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		errs = append(errs, b.memberErr(m, "bitmap read", off, int64(len(p)), err))
	}
	return 0, errors.Join(errs...)
}

func (b *bitmapDev) WriteAt(p []byte, off int64) (int, error) {
	return b.write("bitmap write", off, int64(len(p)), func(s *blockdev.Section) error {
		_, err := s.WriteAt(p, off)
		return err
	}, len(p))
}

func (b *bitmapDev) WriteAtFUA(p []byte, off int64) (int, error) {
	return b.write("bitmap fua write", off, int64(len(p)), func(s *blockdev.Section) error {
		_, err := s.WriteAtFUA(p, off)
		return err
	}, len(p))
}

func (b *bitmapDev) WriteZeroes(off, n int64, mayTrim bool) error {
	_, err := b.write("bitmap write zeroes", off, n, func(s *blockdev.Section) error {
		return s.WriteZeroes(off, n, mayTrim)
	}, 0)
	return err
}

func (b *bitmapDev) Flush() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return errClosed
	}
	return b.fanOut("flush", 0, 0, func(s *blockdev.Section) error { return s.Flush() })
}

// write runs f on every live member's section, in parallel. On success it
// returns done; on failure, 0 and the members' errors.
func (b *bitmapDev) write(op string, off, n int64, f func(*blockdev.Section) error, done int) (int, error) {
	if err := b.enter(off, n); err != nil {
		return 0, err
	}
	defer b.mu.RUnlock()
	if n == 0 {
		return 0, nil
	}
	if err := b.fanOut(op, off, n, f); err != nil {
		return 0, err
	}
	return done, nil
}

// fanOut runs f on every live member in parallel and joins their errors.
func (b *bitmapDev) fanOut(op string, off, n int64, f func(*blockdev.Section) error) error {
	live := b.live()
	if len(live) == 0 {
		return errNoMember
	}
	return eachMember(live, func(_ int, m *member) error {
		if err := f(b.secs[m.index]); err != nil {
			return b.memberErr(m, op, off, n, err)
		}
		return nil
	})
}

func (b *bitmapDev) memberErr(m *member, op string, off, n int64, err error) error {
	return &MemberError{Member: m.index, Path: m.path, Op: op, Off: b.base + off, Len: n, Err: err}
}

// Close waits for the calls in flight; the member files stay open, the
// Volume closes them.
func (b *bitmapDev) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("%w: bitmap closed twice", errClosed)
	}
	b.closed = true
	return nil
}
