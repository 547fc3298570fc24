package stripe

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/netraid/netraid/blockdev"
)

// Set is a RAID0 stripe over member devices: a blockdev.Device of
// len(members) times the members' size. It is safe for concurrent use
// under the Device contract.
type Set struct {
	// disks are the members, each swapped whole by Replace: a call
	// takes a member's device once per extent.
	disks      []atomic.Pointer[slot]
	chunk      int64
	memberSize int64
	size       int64
	blockSize  int

	// mu is held shared by every call and exclusively by Close, so that
	// Close waits for the calls in flight. replaceMu orders Replaces.
	mu        sync.RWMutex
	closed    bool
	replaceMu sync.Mutex
}

// slot holds one member's device.
type slot struct{ d blockdev.Device }

// disk is member i's device now.
func (s *Set) disk(i int) blockdev.Device { return s.disks[i].Load().d }

var (
	_ blockdev.Device     = (*Set)(nil)
	_ blockdev.Trimmer    = (*Set)(nil)
	_ blockdev.Zeroer     = (*Set)(nil)
	_ blockdev.FUAWriter  = (*Set)(nil)
	_ blockdev.BlockSizer = (*Set)(nil)
	_ blockdev.Mapper     = (*Set)(nil)
)

// New stripes disks, in that order, in chunks of the given size. Every
// member must have the same size, a positive multiple of chunk, and chunk
// must be a multiple of every member's block size. The Set takes over the
// members: its Close closes them. Errors wrap ErrGeometry.
func New(disks []blockdev.Device, chunk int64) (*Set, error) {
	if len(disks) == 0 {
		return nil, fmt.Errorf("%w: no members", ErrGeometry)
	}
	if chunk <= 0 {
		return nil, fmt.Errorf("%w: chunk size %d", ErrGeometry, chunk)
	}
	s := &Set{disks: make([]atomic.Pointer[slot], len(disks)), chunk: chunk, memberSize: disks[0].Size()}
	for i, d := range disks {
		s.disks[i].Store(&slot{d})
	}
	for i, d := range disks {
		if d.Size() != s.memberSize {
			return nil, fmt.Errorf("%w: member %d is %d bytes, member 0 is %d", ErrGeometry, i, d.Size(), s.memberSize)
		}
		bs := blockdev.BlockSize(d)
		if chunk%int64(bs) != 0 {
			return nil, fmt.Errorf("%w: chunk size %d is not a multiple of member %d's block size %d", ErrGeometry, chunk, i, bs)
		}
		s.blockSize = max(s.blockSize, bs)
	}
	if s.memberSize <= 0 || s.memberSize%chunk != 0 {
		return nil, fmt.Errorf("%w: member size %d is not a positive multiple of the chunk size %d", ErrGeometry, s.memberSize, chunk)
	}
	if s.memberSize > math.MaxInt64/int64(len(disks)) {
		return nil, fmt.Errorf("%w: %d members of %d bytes overflow", ErrGeometry, len(disks), s.memberSize)
	}
	s.size = s.memberSize * int64(len(disks))
	return s, nil
}

// Size is the volume's size: the members' size times their number.
func (s *Set) Size() int64 { return s.size }

// BlockSize is the largest of the members' block sizes.
func (s *Set) BlockSize() int { return s.blockSize }

// Chunk is the stripe chunk size.
func (s *Set) Chunk() int64 { return s.chunk }

// Disks is the number of members.
func (s *Set) Disks() int { return len(s.disks) }

// enter takes the shared lock for a call; the caller must call s.mu.RUnlock
// if it returns nil.
func (s *Set) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	return nil
}

func (s *Set) ReadAt(p []byte, off int64) (int, error) {
	return s.transfer(xRead, p, off)
}

func (s *Set) WriteAt(p []byte, off int64) (int, error) {
	return s.transfer(xWrite, p, off)
}

// WriteAtFUA writes p durably: each member's part is written with FUA
// (or a write and a flush, if the member cannot do FUA), in parallel.
func (s *Set) WriteAtFUA(p []byte, off int64) (int, error) {
	return s.transfer(xFUA, p, off)
}

// transfer splits a read or write of p at off into chunk pieces and does
// them, in parallel across members, each member's pieces that lie end to
// end on it in one vectored call (see transferRuns).
func (s *Set) transfer(x xfer, p []byte, off int64) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	if err := blockdev.CheckRange(s.size, off, int64(len(p))); err != nil {
		return 0, fmt.Errorf("stripe: %s: %w", x.op, err)
	}
	ext := Map(off, int64(len(p)), s.chunk, len(s.disks))
	n, err := s.transferRuns(x, p, ext)
	return int(n), err
}

// Trim discards the range on every member it touches, in parallel.
func (s *Set) Trim(off, n int64) error {
	return s.ranges(opTrim, off, n, func(d blockdev.Device, e Extent) error {
		return blockdev.Trim(d, e.DiskOff, e.Len)
	})
}

// WriteZeroes zeroes the range on every member it touches, in parallel.
func (s *Set) WriteZeroes(off, n int64, mayTrim bool) error {
	return s.ranges(opWriteZeroes, off, n, func(d blockdev.Device, e Extent) error {
		return blockdev.WriteZeroes(d, e.DiskOff, e.Len, mayTrim)
	})
}

// ranges runs f once on each touched member's part of [off, off+n).
func (s *Set) ranges(op string, off, n int64, f func(blockdev.Device, Extent) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := blockdev.CheckRange(s.size, off, n); err != nil {
		return fmt.Errorf("stripe: %s: %w", op, err)
	}
	ext := DiskRanges(off, n, s.chunk, len(s.disks))
	_, err := s.run(op, ext, len(ext), func(d blockdev.Device, e Extent) (int64, error) {
		if err := f(d, e); err != nil {
			return 0, err
		}
		return e.Len, nil
	})
	return err
}

// Flush flushes every member, in parallel.
func (s *Set) Flush() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	ext := make([]Extent, len(s.disks))
	for i := range ext {
		ext[i].Disk = i
	}
	_, err := s.run(opFlush, ext, len(ext), func(d blockdev.Device, _ Extent) (int64, error) {
		return 0, d.Flush()
	})
	return err
}

// Close waits for the calls in flight, then closes every member. Calls
// after Close fail with an error wrapping blockdev.ErrClosed.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%w: closed twice", errClosed)
	}
	s.closed = true
	var errs []error
	for i := range s.disks {
		if err := s.disk(i).Close(); err != nil {
			errs = append(errs, &DiskError{Disk: i, Op: opClose, Err: err})
		}
	}
	return errors.Join(errs...)
}

// Replace puts d in member i's place and returns the device it replaced
// (not closed). d must be the size of the other members. It does not
// wait for the calls in flight: a member replaced because it hangs would
// hold it for as long as the disk does. Those calls may still use the
// old device after Replace returns; the caller closes it once they are
// done.
func (s *Set) Replace(i int, d blockdev.Device) (blockdev.Device, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("stripe: replace: %w", blockdev.ErrClosed)
	}
	defer s.mu.RUnlock()
	s.replaceMu.Lock()
	defer s.replaceMu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("stripe: replace: %w", blockdev.ErrClosed)
	}
	if i < 0 || i >= len(s.disks) {
		return nil, fmt.Errorf("%w: no member %d of %d", ErrGeometry, i, len(s.disks))
	}
	if d.Size() != s.memberSize {
		return nil, fmt.Errorf("%w: replacement for member %d has %d bytes, the members %d", ErrGeometry, i, d.Size(), s.memberSize)
	}
	if bs := blockdev.BlockSize(d); bs > s.blockSize {
		return nil, fmt.Errorf("%w: replacement for member %d has blocks of %d bytes, the set %d", ErrGeometry, i, bs, s.blockSize)
	}
	return s.disks[i].Swap(&slot{d}).d, nil
}
