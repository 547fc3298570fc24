package blockdev

import (
	"fmt"
	"sync"
)

// memPage is the granularity at which Mem remembers unflushed writes.
const memPage = 4096

// Mem is an in-memory Device. It remembers what has not been flushed, so
// that Crash can drop it the way a power loss would.
type Mem struct {
	mu     sync.RWMutex
	data   []byte
	undo   map[int64][]byte // page index -> contents at the last Flush
	closed bool
}

var (
	_ Device    = (*Mem)(nil)
	_ Trimmer   = (*Mem)(nil)
	_ Zeroer    = (*Mem)(nil)
	_ FUAWriter = (*Mem)(nil)
	_ Mapper    = (*Mem)(nil)

	_ VectorIO        = (*Mem)(nil)
	_ VectorFUAWriter = (*Mem)(nil)
)

// NewMem returns a zero-filled in-memory device of the given size.
func NewMem(size int64) *Mem {
	return &Mem{data: make([]byte, size), undo: map[int64][]byte{}}
}

func (m *Mem) Size() int64 { return int64(len(m.data)) }

func (m *Mem) ReadAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	if err := CheckRange(m.Size(), off, int64(len(p))); err != nil {
		return 0, err
	}
	return copy(p, m.data[off:]), nil
}

func (m *Mem) WriteAt(p []byte, off int64) (int, error) {
	return m.write(p, off, false)
}

// WriteAtFUA writes p and makes the pages it touched durable at once.
func (m *Mem) WriteAtFUA(p []byte, off int64) (int, error) {
	return m.write(p, off, true)
}

func (m *Mem) write(p []byte, off int64, fua bool) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	if err := CheckRange(m.Size(), off, int64(len(p))); err != nil {
		return 0, err
	}
	m.remember(off, int64(len(p)), fua)
	return copy(m.data[off:], p), nil
}

// ReadAtv reads bufs from the range at off, under one lock.
func (m *Mem) ReadAtv(bufs [][]byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	if err := CheckRange(m.Size(), off, VecLen(bufs)); err != nil {
		return 0, err
	}
	n := 0
	for _, b := range bufs {
		n += copy(b, m.data[off+int64(n):])
	}
	return n, nil
}

// WriteAtv writes bufs over the range at off, under one lock.
func (m *Mem) WriteAtv(bufs [][]byte, off int64) (int, error) {
	return m.writev(bufs, off, false)
}

// WriteAtvFUA writes bufs and makes the pages they touched durable at once.
func (m *Mem) WriteAtvFUA(bufs [][]byte, off int64) (int, error) {
	return m.writev(bufs, off, true)
}

func (m *Mem) writev(bufs [][]byte, off int64, fua bool) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	total := VecLen(bufs)
	if err := CheckRange(m.Size(), off, total); err != nil {
		return 0, err
	}
	m.remember(off, total, fua)
	n := 0
	for _, b := range bufs {
		n += copy(m.data[off+int64(n):], b)
	}
	return n, nil
}

// remember saves the flushed contents of the pages in [off, off+n) before
// they are overwritten, or forgets them when the write is durable.
func (m *Mem) remember(off, n int64, durable bool) {
	if n == 0 {
		return
	}
	for pg := off / memPage; pg <= (off+n-1)/memPage; pg++ {
		if durable {
			delete(m.undo, pg)
			continue
		}
		if _, ok := m.undo[pg]; ok {
			continue
		}
		start := pg * memPage
		end := min(start+memPage, m.Size())
		m.undo[pg] = append([]byte(nil), m.data[start:end]...)
	}
}

func (m *Mem) Trim(off, n int64) error { return m.WriteZeroes(off, n, true) }

func (m *Mem) WriteZeroes(off, n int64, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if err := CheckRange(m.Size(), off, n); err != nil {
		return err
	}
	m.remember(off, n, false)
	clear(m.data[off : off+n])
	return nil
}

func (m *Mem) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	clear(m.undo)
	return nil
}

// Map reports the range as one allocated extent: Mem keeps no holes.
func (m *Mem) Map(off, n int64) ([]Extent, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	if err := CheckRange(m.Size(), off, n); err != nil || n == 0 {
		return nil, err
	}
	return []Extent{{Off: off, Len: n}}, nil
}

// Crash drops every write that was not flushed, as a power loss would, and
// returns how many pages it rolled back. The device stays usable.
func (m *Mem) Crash() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.undo)
	for pg, old := range m.undo {
		copy(m.data[pg*memPage:], old)
	}
	clear(m.undo)
	return n
}

// Durable returns a copy of what Crash would leave now: the contents as of
// the last flush, with the durable (FUA) writes since. The device is not
// changed.
func (m *Mem) Durable() []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := append([]byte(nil), m.data...)
	for pg, old := range m.undo {
		copy(out[pg*memPage:], old)
	}
	return out
}

// Bytes returns a copy of the device's current contents, for tests.
func (m *Mem) Bytes() []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]byte(nil), m.data...)
}

func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("%w: closed twice", ErrClosed)
	}
	m.closed = true
	return nil
}
