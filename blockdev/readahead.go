package blockdev

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// raSpareChunks is how many chunk buffers beyond the window's worth a
// Readahead may hold: reads ahead that were dropped (a write overlapped
// them, or the stream moved) keep theirs until they finish.
const raSpareChunks = 4

// ReadaheadOptions size a Readahead.
type ReadaheadOptions struct {
	// Window is how far ahead of a sequential stream's position data is
	// read: at most this much memory holds data read ahead. 0 means 16 MiB.
	Window int64
	// Chunk is the size of each read ahead; 0 means 1 MiB. It is rounded
	// up to the device's block size.
	Chunk int64
	// Trigger is how many bytes of contiguous reads make a stream
	// sequential; 0 means 2 MiB.
	Trigger int64
}

// Readahead reads ahead of a sequential stream of reads, the way the
// kernel's page cache does for buffered readers, so that a client keeping
// only a few requests in flight still finds the disk busy ahead of it.
// netraid's disks are opened with O_DIRECT, which has no read-ahead.
//
// It follows one stream: a read that starts within Window of where the
// stream has got to (the furthest end of its reads so far) extends it,
// so that requests a client sent in order but that reach Readahead a
// little out of order (handlers run concurrently) do not break it; any
// other read starts a new stream and drops what was read ahead. Once a
// stream has read Trigger bytes, Readahead keeps [position,
// position+Window) read or being read, in Chunk-sized reads of the device
// below, each into a pool buffer (ReadBuffer: the device's own where it
// has one). A read that falls wholly within buffers read ahead is served
// from them (after waiting for the ones still being read): ReadBuffer of
// exactly one whole buffer hands that buffer over, without a copy; other
// reads copy. Any other read goes to the device. A buffer is freed once
// reads have copied all of it, or when the stream is a Window past it.
//
// Writes never see stale data: a write, trim or write-zeroes drops every
// buffer it overlaps, read or being read, both when it starts and when it
// is done, so a buffer whose read overlapped the operation in time is
// never used. A read that runs at the same time as a write to the same
// blocks may return either, as on any device.
//
// Readahead must be the only path that writes to the device while it is
// open; writes that go around it make reads return old data.
type Readahead struct {
	d                       Device
	window, chunk, trigger  int64
	hits, misses, readAhead atomic.Int64

	mu       sync.Mutex
	next     int64 // where the last read ended: a read starting here extends the stream
	streak   int64 // bytes of the current stream
	ahead    int64 // end of what is read ahead or being read; 0: nothing
	bufs     []*raBuf
	held     int            // chunk buffers held: in bufs, or being read after a drop
	closed   bool           // Close ran: every call fails
	stopped  bool           // Stop or Close ran: no more reads ahead
	inflight sync.WaitGroup // reads ahead in flight
}

// raBuf is one read ahead, of [off, off+n). Its fields change only under
// Readahead.mu; data and err are set, by its read, before ready is closed.
type raBuf struct {
	off, n  int64
	data    []byte        // a pool buffer; nil until read, or if the read failed
	ready   chan struct{} // closed when the read is done
	err     error
	used    int64 // bytes reads copied out of it
	dropped bool  // out of bufs; the read's completion frees data
}

var (
	_ Device       = (*Readahead)(nil)
	_ BlockSizer   = (*Readahead)(nil)
	_ FUAWriter    = (*Readahead)(nil)
	_ Trimmer      = (*Readahead)(nil)
	_ Zeroer       = (*Readahead)(nil)
	_ Mapper       = (*Readahead)(nil)
	_ BufferReader = (*Readahead)(nil)
)

// NewReadahead wraps d. Closing the result closes d.
func NewReadahead(d Device, o ReadaheadOptions) *Readahead {
	if o.Window <= 0 {
		o.Window = 16 << 20
	}
	if o.Chunk <= 0 {
		o.Chunk = 1 << 20
	}
	if o.Trigger <= 0 {
		o.Trigger = 2 << 20
	}
	bs := int64(BlockSize(d))
	o.Chunk = (o.Chunk + bs - 1) / bs * bs
	return &Readahead{d: d, window: max(o.Window, o.Chunk), chunk: o.Chunk, trigger: o.Trigger}
}

// Unwrap returns the wrapped device.
func (r *Readahead) Unwrap() Device { return r.d }

func (r *Readahead) Size() int64    { return r.d.Size() }
func (r *Readahead) BlockSize() int { return BlockSize(r.d) }

// ReadaheadStats count how reads were served.
type ReadaheadStats struct {
	Hits      int64 // reads served from data read ahead (copied or handed over)
	Misses    int64 // reads that went to the device
	ReadAhead int64 // bytes read ahead
	Held      int64 // bytes of buffers held now, in use or spare
}

// Stats returns the counts so far.
func (r *Readahead) Stats() ReadaheadStats {
	r.mu.Lock()
	held := int64(r.held) * r.chunk
	r.mu.Unlock()
	return ReadaheadStats{Hits: r.hits.Load(), Misses: r.misses.Load(), ReadAhead: r.readAhead.Load(), Held: held}
}

// ReadAt reads from data read ahead if it holds the whole range, else
// from the device; either way it moves the stream on.
func (r *Readahead) ReadAt(p []byte, off int64) (int, error) {
	if err := CheckRange(r.d.Size(), off, int64(len(p))); err != nil || len(p) == 0 {
		return 0, err
	}
	hit, err := r.serve(off, int64(len(p)), func(cover []*raBuf) { r.copyOut(p, off, cover) })
	if err != nil {
		return 0, err
	}
	if !hit {
		r.misses.Add(1)
		return r.d.ReadAt(p, off)
	}
	r.hits.Add(1)
	return len(p), nil
}

// ReadBuffer reads as ReadAt does, into a pool buffer: for a read of
// exactly one buffer read ahead that no read has copied from, that buffer
// itself.
func (r *Readahead) ReadBuffer(n int, off int64) ([]byte, error) {
	if err := CheckRange(r.d.Size(), off, int64(n)); err != nil {
		return nil, err
	}
	if n == 0 {
		return GetBuffer(0, bufferAlign(r.d)), nil
	}
	var buf []byte
	hit, err := r.serve(off, int64(n), func(cover []*raBuf) {
		if b := cover[0]; len(cover) == 1 && b.off == off && b.n == int64(n) && b.used == 0 {
			buf = r.take(b)
			return
		}
		buf = GetBuffer(n, bufferAlign(r.d))
		r.copyOut(buf, off, cover)
	})
	if err != nil {
		return nil, err
	}
	if !hit {
		r.misses.Add(1)
		return ReadBuffer(r.d, n, off)
	}
	r.hits.Add(1)
	return buf, nil
}

// serve moves the stream for a read of [off, off+n) and, if buffers read
// ahead hold the whole range, waits for them to be read and calls use
// with them, under r.mu; it reports whether it did.
func (r *Readahead) serve(off, n int64, use func(cover []*raBuf)) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, ErrClosed
	}
	r.follow(off, n)
	for {
		cover, wait := r.covering(off, n)
		if wait == nil {
			if cover == nil {
				return false, nil
			}
			use(cover)
			return true, nil
		}
		r.mu.Unlock()
		<-wait
		r.mu.Lock()
	}
}

// copyOut copies [off, off+len(p)) from cover into p and frees the
// buffers that reads have now copied all of. Called with r.mu held.
func (r *Readahead) copyOut(p []byte, off int64, cover []*raBuf) {
	for _, b := range cover {
		b.used += int64(copy(p[max(b.off-off, 0):], b.data[max(off-b.off, 0):]))
		if b.used >= b.n {
			r.dropRange(b.off, b.n)
		}
	}
}

// take removes b, read and whole, from bufs and returns its buffer, which
// is the caller's from then on. Called with r.mu held.
func (r *Readahead) take(b *raBuf) []byte {
	r.remove(func(x *raBuf) bool { return x == b }, false)
	data := b.data
	b.data, b.dropped = nil, true
	r.held--
	return data
}

// follow moves the stream for a read of n bytes at off: extends or
// restarts it, drops buffers the stream has passed, and starts reads
// ahead if the stream is sequential. Called with r.mu held.
func (r *Readahead) follow(off, n int64) {
	if off < r.next-r.window || off > r.next+r.window || r.streak == 0 && off != r.next {
		r.streak = 0
		r.dropRange(0, r.d.Size())
		r.ahead = 0
		r.next = off
	}
	r.next = max(r.next, off+n)
	r.streak += n
	// A buffer goes once reads have copied all of it; one the stream
	// left a window behind without reading all of it goes here.
	kept := r.bufs[:0]
	for _, b := range r.bufs {
		if b.off+b.n <= off-r.window {
			r.release(b)
			continue
		}
		kept = append(kept, b)
	}
	clear(r.bufs[len(kept):])
	r.bufs = kept
	if r.streak < r.trigger || r.stopped {
		return
	}
	start := max(r.ahead, r.next)
	size := r.d.Size()
	for start < r.next+r.window && start < size {
		if int64(r.held) >= r.window/r.chunk+raSpareChunks {
			break // dropped reads still hold theirs: read ahead less
		}
		n := min(r.chunk, size-start)
		r.held++
		b := &raBuf{off: start, n: n, ready: make(chan struct{})}
		r.bufs = append(r.bufs, b)
		r.inflight.Add(1)
		go r.fill(b)
		start += n
	}
	r.ahead = start
}

// fill reads b ahead.
func (r *Readahead) fill(b *raBuf) {
	defer r.inflight.Done()
	data, err := ReadBuffer(r.d, int(b.n), b.off)
	r.readAhead.Add(b.n)
	r.mu.Lock()
	b.data, b.err = data, err
	close(b.ready)
	if b.dropped {
		r.free(b)
	}
	r.mu.Unlock()
}

// covering returns the buffers that together hold [off, off+n), if
// there are such buffers and all are read without error; or, if one of
// them is still being read, a channel to wait on. A buffer that failed
// is dropped, so that the read goes to the device and reports the error
// itself. Called with r.mu held.
func (r *Readahead) covering(off, n int64) (cover []*raBuf, wait <-chan struct{}) {
	at, end := off, off+n
	for _, b := range r.bufs {
		bend := b.off + b.n
		if bend <= at || b.off >= end {
			continue
		}
		if b.off > at {
			return nil, nil // a gap
		}
		select {
		case <-b.ready:
		default:
			return nil, b.ready
		}
		if b.err != nil {
			r.dropRange(b.off, b.n)
			return nil, nil
		}
		cover = append(cover, b)
		at = bend
		if at >= end {
			return cover, nil
		}
	}
	return nil, nil
}

// dropRange drops every buffer overlapping [off, off+n). Called with
// r.mu held.
func (r *Readahead) dropRange(off, n int64) {
	r.remove(func(b *raBuf) bool { return b.off < off+n && off < b.off+b.n }, true)
}

// remove takes the buffers that match out of bufs, releasing them if
// release is set, and moves ahead to the end of the last one left.
// Called with r.mu held.
func (r *Readahead) remove(match func(*raBuf) bool, release bool) {
	kept := r.bufs[:0]
	for _, b := range r.bufs {
		if match(b) {
			if release {
				r.release(b)
			}
			continue
		}
		kept = append(kept, b)
	}
	clear(r.bufs[len(kept):])
	r.bufs = kept
	if len(r.bufs) == 0 {
		r.ahead = 0
	} else {
		last := r.bufs[len(r.bufs)-1]
		r.ahead = last.off + last.n
	}
}

// release frees b's buffer now if its read is done, else when it is.
// Called with r.mu held, after b left r.bufs.
func (r *Readahead) release(b *raBuf) {
	b.dropped = true
	select {
	case <-b.ready:
		r.free(b)
	default: // fill frees it
	}
}

// free gives b's buffer back to the pool. Called with r.mu held, once b
// is read and out of bufs.
func (r *Readahead) free(b *raBuf) {
	if b.data != nil {
		PutBuffer(b.data)
		b.data = nil
	}
	r.held--
}

// modify runs a write-like operation on [off, off+n), dropping the
// buffers it overlaps before and after it.
func (r *Readahead) modify(off, n int64, op func() error) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.dropRange(off, n)
	r.mu.Unlock()
	err := op()
	r.mu.Lock()
	r.dropRange(off, n)
	r.mu.Unlock()
	return err
}

func (r *Readahead) WriteAt(p []byte, off int64) (n int, err error) {
	err = r.modify(off, int64(len(p)), func() (err error) {
		n, err = r.d.WriteAt(p, off)
		return err
	})
	return n, err
}

func (r *Readahead) WriteAtFUA(p []byte, off int64) (n int, err error) {
	err = r.modify(off, int64(len(p)), func() (err error) {
		n, err = WriteFUA(r.d, p, off)
		return err
	})
	return n, err
}

func (r *Readahead) Trim(off, n int64) error {
	return r.modify(off, n, func() error { return Trim(r.d, off, n) })
}

func (r *Readahead) WriteZeroes(off, n int64, mayTrim bool) error {
	return r.modify(off, n, func() error { return WriteZeroes(r.d, off, n, mayTrim) })
}

func (r *Readahead) Flush() error { return r.d.Flush() }

func (r *Readahead) Map(off, n int64) ([]Extent, error) { return Map(r.d, off, n) }

// Stop ends reading ahead: it waits for the reads ahead in flight and
// frees their buffers. Reads and writes go on, straight to the device,
// which stays open.
func (r *Readahead) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.inflight.Wait()
	r.mu.Lock()
	r.dropRange(0, r.d.Size())
	r.mu.Unlock()
}

// Close stops reading ahead and closes the device.
func (r *Readahead) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("%w: read-ahead closed twice", ErrClosed)
	}
	r.closed = true
	r.mu.Unlock()
	r.Stop()
	return r.d.Close()
}
