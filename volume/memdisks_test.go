package volume

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
)

// memDisks is a set of named in-memory disks, opened through its open
// method (an OpenFunc). Each open gets a handle of its own: a fault
// device over the disk's Mem, held exclusively until closed. crash cuts
// every open handle off, as the death of the process holding them would,
// and drops what some disks had not flushed.
type memDisks struct {
	size int64

	mu    sync.Mutex
	names []string                 // in the order they were made
	mems  map[string]*blockdev.Mem // by name
	open  map[string]*fault.Device // the open handle of each disk
	// atOpen, if set, is given each handle as it opens, to arm faults
	// before the volume's first I/O.
	atOpen func(name string, f *fault.Device)
}

// newMemDisks makes n disks of size bytes, named m0, m1..., whose
// handles are cut off at the end of the test.
func newMemDisks(t *testing.T, n int, size int64) (*memDisks, []string) {
	t.Helper()
	ds, names := makeMemDisks(n, size)
	t.Cleanup(func() { ds.cut() })
	return ds, names
}

// makeMemDisks is newMemDisks for a caller that cuts the handles off
// itself.
func makeMemDisks(n int, size int64) (*memDisks, []string) {
	ds := &memDisks{size: size, mems: map[string]*blockdev.Mem{}, open: map[string]*fault.Device{}}
	for range n {
		ds.add()
	}
	return ds, ds.all()
}

// add makes one more disk and returns its name.
func (ds *memDisks) add() string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	name := fmt.Sprintf("m%d", len(ds.names))
	ds.names = append(ds.names, name)
	ds.mems[name] = blockdev.NewMem(ds.size)
	return name
}

// put adds a disk of size bytes that starts with head, flushed, and
// holds zeroes after it.
func (ds *memDisks) put(name string, size int64, head []byte) {
	m := blockdev.NewMem(size)
	m.WriteAt(head, 0)
	m.Flush()
	ds.mu.Lock()
	defer ds.mu.Unlock()
	ds.names = append(ds.names, name)
	ds.mems[name] = m
}

// all returns the names of the disks, in the order they were made.
func (ds *memDisks) all() []string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return append([]string(nil), ds.names...)
}

// mem returns a disk's Mem, to look at or change behind the volume.
func (ds *memDisks) mem(name string) *blockdev.Mem {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.mems[name]
}

// openFunc opens a disk exclusively, as OpenDisk. A read-only handle
// refuses writes.
func (ds *memDisks) openFunc(name string, readOnly bool) (blockdev.Device, error) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	m := ds.mems[name]
	switch {
	case m == nil:
		return nil, fmt.Errorf("open %s: %w", name, os.ErrNotExist)
	case ds.open[name] != nil:
		return nil, fmt.Errorf("open %s: %w", name, blockdev.ErrBusy)
	}
	var d blockdev.Device = &memHandle{Mem: m, release: func() { ds.release(name) }}
	if readOnly {
		d = readOnlyDev{d}
	}
	f := fault.Wrap(d)
	ds.open[name] = f
	if ds.atOpen != nil {
		ds.atOpen(name, f)
	}
	return f, nil
}

func (ds *memDisks) release(name string) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	delete(ds.open, name)
}

// fault returns the open handle of a disk, to arm faults on.
func (ds *memDisks) fault(name string) *fault.Device {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	f := ds.open[name]
	if f == nil {
		panic("memDisks: " + name + " is not open")
	}
	return f
}

// cut closes every open handle: later calls on them fail, and calls held
// by a fault (Hang) return.
func (ds *memDisks) cut() {
	ds.mu.Lock()
	open := make([]*fault.Device, 0, len(ds.open))
	for _, f := range ds.open {
		open = append(open, f)
	}
	ds.mu.Unlock()
	for _, f := range open {
		f.Close()
	}
}

// crash cuts every handle off, then drops what was not flushed on the
// disks whose bit is set in lose (bit i: the i-th disk made); the other
// disks keep every write they took, as a disk whose cache survived.
func (ds *memDisks) crash(lose uint64) {
	ds.cut()
	for i, name := range ds.all() {
		if lose&(1<<uint(i)) != 0 {
			ds.mem(name).Crash()
		}
	}
}

// memHandle is one open of a Mem: closing it ends the open, not the Mem.
type memHandle struct {
	*blockdev.Mem
	once    sync.Once
	release func()
}

func (h *memHandle) Close() error {
	h.once.Do(h.release)
	return nil
}

// readOnlyDev refuses writes and hides the optional abilities.
type readOnlyDev struct{ blockdev.Device }

func (r readOnlyDev) WriteAt([]byte, int64) (int, error) { return 0, blockdev.ErrReadOnly }

// memCreate creates a volume on disks of ds.
func memCreate(t *testing.T, ds *memDisks, names []string, o CreateOptions) {
	t.Helper()
	o.OpenDisk = ds.openFunc
	mustCreate(t, names, o)
}

// memOpen opens a volume on disks of ds.
func memOpen(t *testing.T, ds *memDisks, names []string, o OpenOptions) *Volume {
	t.Helper()
	o.OpenDisk = ds.openFunc
	return mustOpen(t, names, o)
}
