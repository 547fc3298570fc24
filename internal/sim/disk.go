package sim

import (
	"errors"
	"fmt"
	"sync"

	"github.com/netraid/netraid/blockdev"
)

// Errors a simulated disk fails with.
var (
	// ErrSevered: the process that opened the disk crashed or was
	// killed; its handle does no more I/O.
	ErrSevered = errors.New("sim: disk handle severed (its process is gone)")
	// ErrDiskFailed: the disk fails every I/O (Fail).
	ErrDiskFailed = errors.New("sim: disk failed")
	// ErrMetaFailed: the disk fails writes to its metadata area
	// (FailMeta).
	ErrMetaFailed = errors.New("sim: metadata write failed")
)

// Disk is a simulated member disk: memory that remembers what was not
// flushed, so that a crash drops it, and that can fail or hang. It
// outlives the node processes that open it: each opens a Handle, which a
// crash or a kill severs.
type Disk struct {
	Name string
	mem  *blockdev.Mem

	mu      sync.Mutex
	handle  *Handle
	failed  bool
	metaEnd int64         // > 0: writes below it fail
	hang    chan struct{} // non-nil: I/O waits until it is closed
	// hangEnd > 0: writes below it wait until hangMeta is closed.
	hangEnd  int64
	hangMeta chan struct{}
}

// NewDisk returns a zeroed disk of size bytes.
func NewDisk(name string, size int64) *Disk {
	return &Disk{Name: name, mem: blockdev.NewMem(size)}
}

// Open returns a new handle for a process, severing the last one.
func (d *Disk) Open() *Handle {
	d.mu.Lock()
	old := d.handle
	h := &Handle{d: d}
	d.handle = h
	d.mu.Unlock()
	if old != nil {
		old.sever()
	}
	return h
}

// Sever cuts the current handles of disks off at one instant: the
// process is gone. No I/O of a handle runs once the first is cut, so the
// process cannot see one disk gone and record it on another (a power
// loss takes every disk at once). With crash, the writes that were not
// flushed are dropped too (power loss); without it they stay (a killed
// process: the disks have them). Hung I/Os fail once every handle is
// cut.
func Sever(disks []*Disk, crash bool) {
	var hs []*Handle
	for _, d := range disks {
		d.mu.Lock()
		if d.handle != nil {
			hs = append(hs, d.handle)
		}
		d.handle = nil
		d.mu.Unlock()
	}
	severHandles(hs, func() {
		if crash {
			for _, d := range disks {
				d.mem.Crash()
			}
		}
	})
}

// severHandles cuts hs off at one instant, running cut (if not nil) while
// no I/O of theirs can run.
func severHandles(hs []*Handle, cut func()) {
	for _, h := range hs {
		h.mu.Lock() // waits for the I/Os under way, keeps new ones out
	}
	for _, h := range hs {
		h.severed = true
	}
	if cut != nil {
		cut()
	}
	for _, h := range hs {
		h.mu.Unlock()
	}
	for _, h := range hs {
		close(h.goneCh())
	}
}

// Fail makes every I/O fail (a dead disk) until Heal.
func (d *Disk) Fail() {
	d.mu.Lock()
	d.failed = true
	d.mu.Unlock()
}

// FailMeta makes writes below off (the superblocks and bitmaps) fail
// until Heal.
func (d *Disk) FailMeta(off int64) {
	d.mu.Lock()
	d.metaEnd = off
	d.mu.Unlock()
}

// Hang makes every I/O wait until Heal (or until its handle is severed,
// when it fails).
func (d *Disk) Hang() {
	d.mu.Lock()
	if d.hang == nil {
		d.hang = make(chan struct{})
	}
	d.mu.Unlock()
}

// HangMeta makes writes below off (the superblocks and bitmaps) wait
// until Heal (or until their handle is severed, when they fail); the
// rest of the I/O goes on.
func (d *Disk) HangMeta(off int64) {
	d.mu.Lock()
	d.hangEnd = off
	if d.hangMeta == nil {
		d.hangMeta = make(chan struct{})
	}
	d.mu.Unlock()
}

// Heal undoes Fail, FailMeta, Hang and HangMeta; hanging I/Os go on.
func (d *Disk) Heal() {
	d.mu.Lock()
	d.failed, d.metaEnd, d.hangEnd = false, 0, 0
	if d.hang != nil {
		close(d.hang)
		d.hang = nil
	}
	if d.hangMeta != nil {
		close(d.hangMeta)
		d.hangMeta = nil
	}
	d.mu.Unlock()
}

// Faulty reports whether a fault is armed.
func (d *Disk) Faulty() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed || d.metaEnd > 0 || d.hang != nil || d.hangEnd > 0
}

// ReadAt reads the disk as it is now (unflushed writes included), for
// the checks: not through any handle, and never failing.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) { return d.mem.ReadAt(p, off) }

// Durable returns what a power loss now would leave on the disk (its
// flushed contents), for the checks; the disk is left as it was.
func (d *Disk) Durable() []byte { return d.mem.Durable() }

// Size is the disk's size.
func (d *Disk) Size() int64 { return d.mem.Size() }

// Handle is one process's view of a Disk: a blockdev.Device.
type Handle struct {
	d *Disk

	// mu is held shared by every I/O and exclusively by sever, so that
	// once sever returns no I/O of this handle reaches the memory.
	mu      sync.RWMutex
	severed bool
	gone    chan struct{} // closed by sever
	once    sync.Once
}

var (
	_ blockdev.Device    = (*Handle)(nil)
	_ blockdev.FUAWriter = (*Handle)(nil)
	_ blockdev.Zeroer    = (*Handle)(nil)
)

func (h *Handle) goneCh() chan struct{} {
	h.once.Do(func() { h.gone = make(chan struct{}) })
	return h.gone
}

func (h *Handle) sever() { severHandles([]*Handle{h}, nil) }

// enter admits one I/O of a kind: it waits out a hang, then checks the
// faults. On nil the caller must call h.mu.RUnlock.
func (h *Handle) enter(write bool, off int64) error {
	d := h.d
	d.mu.Lock()
	hang := d.hang
	if write && off < d.hangEnd {
		hang = d.hangMeta
	}
	d.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-h.goneCh():
			return ErrSevered
		}
	}
	h.mu.RLock()
	if h.severed {
		h.mu.RUnlock()
		return ErrSevered
	}
	d.mu.Lock()
	failed, metaEnd := d.failed, d.metaEnd
	d.mu.Unlock()
	switch {
	case failed:
		h.mu.RUnlock()
		return fmt.Errorf("%s: %w", d.Name, ErrDiskFailed)
	case write && off < metaEnd:
		h.mu.RUnlock()
		return fmt.Errorf("%s off %d: %w", d.Name, off, ErrMetaFailed)
	}
	return nil
}

func (h *Handle) ReadAt(p []byte, off int64) (int, error) {
	if err := h.enter(false, off); err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	return h.d.mem.ReadAt(p, off)
}

func (h *Handle) WriteAt(p []byte, off int64) (int, error) {
	if err := h.enter(true, off); err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	return h.d.mem.WriteAt(p, off)
}

func (h *Handle) WriteAtFUA(p []byte, off int64) (int, error) {
	if err := h.enter(true, off); err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	return h.d.mem.WriteAtFUA(p, off)
}

func (h *Handle) WriteZeroes(off, n int64, mayTrim bool) error {
	if err := h.enter(true, off); err != nil {
		return err
	}
	defer h.mu.RUnlock()
	return h.d.mem.WriteZeroes(off, n, mayTrim)
}

func (h *Handle) Flush() error {
	if err := h.enter(false, -1); err != nil {
		return err
	}
	defer h.mu.RUnlock()
	return h.d.mem.Flush()
}

func (h *Handle) Size() int64 { return h.d.mem.Size() }

// Close releases nothing: the disk outlives its handles.
func (h *Handle) Close() error { return nil }
