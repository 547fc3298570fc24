package volume

import (
	"errors"
	"fmt"
	"sync"

	"github.com/netraid/netraid/blockdev"
)

// bitmapDev is the bitmap area of every member as one device. Writes go
// to every member not failed, in parallel; a member that fails one is
// failed (Volume.failMember), and the write returns once that is
// recorded (Volume.settle). Reads come from a copy in memory: the area
// as Open read it from the first member not failed, with every write
// since. It needs aligned I/O, like the files below it.
//
// When every member has failed, writes and flushes succeed and persist
// nothing: no local copy of the data is left for the bitmap to describe
// (the node serves through its peer), and the copy in memory goes to the
// disk that Replace puts in a member's place.
type bitmapDev struct {
	v    *Volume
	base int64 // the areas' offset on the members
	size int64
	bs   int

	// mu is held shared by every call and exclusively by Close and
	// adopt, so that they wait for the calls in flight. It guards what
	// follows.
	mu     sync.RWMutex
	secs   []*blockdev.Section // each member's area, by member index
	paths  []string            // each member's disk, for errors
	closed bool

	// shadow is the area's contents, as the writes left it. shadowMu
	// orders reads against writes; concurrent writes take it each for
	// its own range.
	shadowMu sync.RWMutex
	shadow   []byte
}

var (
	_ blockdev.Device     = (*bitmapDev)(nil)
	_ blockdev.FUAWriter  = (*bitmapDev)(nil)
	_ blockdev.Zeroer     = (*bitmapDev)(nil)
	_ blockdev.BlockSizer = (*bitmapDev)(nil)
)

// newBitmap makes the bitmap device over the members' areas and reads
// the area from the first member not failed that answers.
func newBitmap(v *Volume, secs []*blockdev.Section, paths []string, base int64) (*bitmapDev, error) {
	b := &bitmapDev{v: v, secs: secs, paths: paths, base: base, size: secs[0].Size()}
	for _, s := range secs {
		b.bs = max(b.bs, s.BlockSize())
	}
	b.shadow = blockdev.GetBuffer(int(b.size), max(b.bs, 4096))
	clear(b.shadow)
	failed := v.failed.Load()
	var errs []error
	for i, s := range secs {
		if failed&(1<<uint(i)) != 0 {
			continue
		}
		n, err := s.ReadAt(b.shadow, 0)
		if err = blockdev.WholeRead(n, len(b.shadow), err); err == nil {
			return b, nil
		}
		errs = append(errs, b.memberErr(i, "bitmap read", 0, b.size, err))
	}
	if len(errs) == 0 {
		v.log.Warn("every member is marked failed: the bitmaps start blank")
		clear(b.shadow)
		return b, nil
	}
	return nil, errors.Join(errs...)
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

// ReadAt reads the copy in memory.
func (b *bitmapDev) ReadAt(p []byte, off int64) (int, error) {
	if err := b.enter(off, int64(len(p))); err != nil {
		return 0, err
	}
	defer b.mu.RUnlock()
	b.shadowMu.RLock()
	defer b.shadowMu.RUnlock()
	return copy(p, b.shadow[off:]), nil
}

func (b *bitmapDev) WriteAt(p []byte, off int64) (int, error) {
	return b.write("bitmap write", off, int64(len(p)), func(s *blockdev.Section) error {
		_, err := s.WriteAt(p, off)
		return err
	}, func(dst []byte) { copy(dst, p) })
}

func (b *bitmapDev) WriteAtFUA(p []byte, off int64) (int, error) {
	return b.write("bitmap fua write", off, int64(len(p)), func(s *blockdev.Section) error {
		_, err := s.WriteAtFUA(p, off)
		return err
	}, func(dst []byte) { copy(dst, p) })
}

func (b *bitmapDev) WriteZeroes(off, n int64, mayTrim bool) error {
	_, err := b.write("bitmap write zeroes", off, n, func(s *blockdev.Section) error {
		return s.WriteZeroes(off, n, mayTrim)
	}, func(dst []byte) { clear(dst) })
	return err
}

// Flush flushes every member not failed.
func (b *bitmapDev) Flush() error {
	_, err := b.write("bitmap flush", 0, 0, func(s *blockdev.Section) error { return s.Flush() }, nil)
	return err
}

// write runs f on every live member's area, in parallel, and then put on
// the range [off, off+n) of the copy in memory (nil: none, for a flush).
// A member that fails f is failed; write returns once that is recorded,
// n on success.
func (b *bitmapDev) write(op string, off, n int64, f func(*blockdev.Section) error, put func([]byte)) (int, error) {
	if err := b.enter(off, n); err != nil {
		return 0, err
	}
	switch {
	case b.v.readOnly && put != nil:
		b.mu.RUnlock()
		return 0, fmt.Errorf("volume: %s: %w", op, blockdev.ErrReadOnly)
	case b.v.readOnly, n == 0 && put != nil:
		// Nothing was written to flush, or nothing to write.
		b.mu.RUnlock()
		return 0, nil
	}
	var fs []failure
	b.fanOut(op, off, n, f, &fs)
	if put != nil {
		b.shadowMu.Lock()
		put(b.shadow[off : off+n])
		b.shadowMu.Unlock()
	}
	b.mu.RUnlock()
	err := b.v.settle(&fs)
	b.v.report(fs)
	if err != nil && !errors.Is(err, ErrNoMemberLeft) {
		return 0, fmt.Errorf("volume: %s: recording a failed member: %w", op, err)
	}
	if err != nil && b.v.noMember != nil {
		b.v.noMember()
	}
	return int(n), nil
}

// fanOut runs f on the area of every member not failed, in parallel, and
// fails the members whose f fails. Callers hold b.mu shared.
func (b *bitmapDev) fanOut(op string, off, n int64, f func(*blockdev.Section) error, fs *[]failure) {
	failed := b.v.failed.Load()
	var live []int
	for i := range b.secs {
		if failed&(1<<uint(i)) == 0 {
			live = append(live, i)
		}
	}
	errs := make([]error, len(live))
	var wg sync.WaitGroup
	for k := 1; k < len(live); k++ {
		wg.Go(func() { errs[k] = f(b.secs[live[k]]) })
	}
	if len(live) > 0 {
		errs[0] = f(b.secs[live[0]])
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			b.v.failMember(live[k], b.memberErr(live[k], op, off, n, err), fs)
		}
	}
}

func (b *bitmapDev) memberErr(i int, op string, off, n int64, err error) error {
	return &MemberError{Member: i, Path: b.paths[i], Op: op, Off: b.base + off, Len: n, Err: err}
}

// Close waits for the calls in flight; the member disks stay open, the
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
