package blockdev

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// maxBounce bounds the bounce buffer one piece of an unaligned request
// goes through; larger requests are done in pieces.
const maxBounce = 1 << 20

// Aligned makes a device that needs aligned I/O (an O_DIRECT File) accept
// any offset, length and buffer address. Aligned requests go straight
// through; others go through pool bounce buffers, with a read-modify-write
// of partial head and tail blocks.
//
// Concurrent writes to non-overlapping ranges stay correct when they share
// an edge block: the read-modify-write of an edge block holds that block's
// lock (a striped table keyed by block number) from the read to the write.
// Whole blocks of a request belong to it alone and need no lock.
//
// Aligned offers every optional ability; where the device lacks one, the
// package helpers' fallbacks apply.
type Aligned struct {
	d     Device
	size  int64
	bs    int64 // the device's block size: offset and length granularity
	align int   // bounce buffer address alignment (a multiple of bs)
	piece int64 // longest bounce buffer: a multiple of bs
	locks [lockStripes]sync.Mutex
	// closed makes every call after Close fail with ErrClosed, whatever
	// the device's own fallbacks would do.
	closed atomic.Bool
}

var (
	_ Device      = (*Aligned)(nil)
	_ BlockSizer  = (*Aligned)(nil)
	_ FUAWriter   = (*Aligned)(nil)
	_ Trimmer     = (*Aligned)(nil)
	_ Zeroer      = (*Aligned)(nil)
	_ Mapper      = (*Aligned)(nil)
	_ Checksummer = (*Aligned)(nil)
)

// NewAligned wraps d. Closing the result closes d.
func NewAligned(d Device) *Aligned {
	bs := int64(BlockSize(d))
	return &Aligned{d: d, size: d.Size(), bs: bs, align: bufferAlign(d), piece: max(roundDown(maxBounce, bs), bs)}
}

// Unwrap returns the wrapped device.
func (a *Aligned) Unwrap() Device { return a.d }

func (a *Aligned) Size() int64 { return a.size }

// BlockSize reports the wrapped device's block size: aligned requests are
// the efficient ones, although any request is accepted.
func (a *Aligned) BlockSize() int { return int(a.bs) }

func (a *Aligned) Flush() error {
	if a.closed.Load() {
		return ErrClosed
	}
	return a.d.Flush()
}

// Close closes the wrapped device.
func (a *Aligned) Close() error {
	if a.closed.Swap(true) {
		return fmt.Errorf("%w: closed twice", ErrClosed)
	}
	return a.d.Close()
}

// check fails a request that is out of range or comes after Close.
func (a *Aligned) check(off, n int64) error {
	if a.closed.Load() {
		return ErrClosed
	}
	return CheckRange(a.size, off, n)
}

// direct reports whether a request can go to the device as it is.
func (a *Aligned) direct(p []byte, off int64) bool {
	return off%a.bs == 0 && int64(len(p))%a.bs == 0 &&
		uintptr(unsafe.Pointer(unsafe.SliceData(p)))%uintptr(a.bs) == 0
}

func (a *Aligned) ReadAt(p []byte, off int64) (int, error) {
	if err := a.check(off, int64(len(p))); err != nil {
		return 0, err
	}
	if len(p) == 0 || a.direct(p, off) {
		return a.d.ReadAt(p, off)
	}
	done := 0
	for _, pc := range bouncePieces(off, int64(len(p)), a.bs, a.piece) {
		if err := a.readPiece(p[pc.From-off:pc.To-off], pc); err != nil {
			return done, err
		}
		done += int(pc.To - pc.From)
	}
	return done, nil
}

func (a *Aligned) readPiece(dst []byte, pc bouncePiece) error {
	buf := GetBuffer(int(pc.Len()), a.align)
	defer PutBuffer(buf)
	if _, err := a.d.ReadAt(buf, pc.Start); err != nil {
		return err
	}
	copy(dst, buf[pc.From-pc.Start:])
	return nil
}

func (a *Aligned) WriteAt(p []byte, off int64) (int, error) {
	return a.write(p, off, false)
}

// WriteAtFUA writes p durably; every piece is written with FUA.
func (a *Aligned) WriteAtFUA(p []byte, off int64) (int, error) {
	return a.write(p, off, true)
}

func (a *Aligned) write(p []byte, off int64, fua bool) (int, error) {
	if err := a.check(off, int64(len(p))); err != nil {
		return 0, err
	}
	if len(p) == 0 || a.direct(p, off) {
		return a.writeDown(p, off, fua)
	}
	done := 0
	for _, pc := range bouncePieces(off, int64(len(p)), a.bs, a.piece) {
		if err := a.writePiece(p[pc.From-off:pc.To-off], pc, fua); err != nil {
			return done, err
		}
		done += int(pc.To - pc.From)
	}
	return done, nil
}

func (a *Aligned) writeDown(p []byte, off int64, fua bool) (int, error) {
	if fua {
		return WriteFUA(a.d, p, off)
	}
	return a.d.WriteAt(p, off)
}

// writePiece writes src over [pc.From, pc.To) through a bounce buffer,
// reading the partial edge blocks first under their locks.
func (a *Aligned) writePiece(src []byte, pc bouncePiece, fua bool) error {
	buf := GetBuffer(int(pc.Len()), a.align)
	defer PutBuffer(buf)
	if pc.Head() || pc.Tail() {
		defer a.lockEdges(pc)()
	}
	if pc.Head() {
		if _, err := a.d.ReadAt(buf[:a.bs], pc.Start); err != nil {
			return err
		}
	}
	if pc.Tail() && (!pc.Head() || pc.Len() > a.bs) {
		if _, err := a.d.ReadAt(buf[pc.Len()-a.bs:], pc.End-a.bs); err != nil {
			return err
		}
	}
	copy(buf[pc.From-pc.Start:], src)
	_, err := a.writeDown(buf, pc.Start, fua)
	return err
}

// lockEdges locks the stripes of the piece's partial edge blocks, the
// lower stripe first so that two writers cannot deadlock, and returns the
// unlock.
func (a *Aligned) lockEdges(pc bouncePiece) func() {
	var stripes []int
	if pc.Head() {
		stripes = append(stripes, stripeOf(pc.Start/a.bs))
	}
	if pc.Tail() {
		t := stripeOf((pc.End - a.bs) / a.bs)
		switch {
		case len(stripes) == 0 || t > stripes[0]:
			stripes = append(stripes, t)
		case t < stripes[0]:
			stripes = []int{t, stripes[0]}
		}
	}
	for _, s := range stripes {
		a.locks[s].Lock()
	}
	return func() {
		for i := len(stripes) - 1; i >= 0; i-- {
			a.locks[stripes[i]].Unlock()
		}
	}
}
