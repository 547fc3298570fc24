package stripe

import (
	"fmt"
	"sync"
	"testing"

	"github.com/netraid/netraid/blockdev"
)

// call is one operation a probe saw.
type call struct {
	op      string
	off, n  int64
	mayTrim bool
}

func (c call) String() string { return fmt.Sprintf("%s %d+%d", c.op, c.off, c.n) }

// probe is a member device over a Mem that records what reaches it and can
// be told to misbehave.
type probe struct {
	m  *blockdev.Mem
	bs int // block size, 0 for the default

	mu    sync.Mutex
	calls []call

	onIO  func(op string) // called on entry to reads and writes
	short bool            // reads return one byte less, without error
	maps  []blockdev.Extent
}

var (
	_ blockdev.Trimmer   = (*probe)(nil)
	_ blockdev.Zeroer    = (*probe)(nil)
	_ blockdev.FUAWriter = (*probe)(nil)
	_ blockdev.Mapper    = (*probe)(nil)
)

func newProbes(n int, size int64) []*probe {
	p := make([]*probe, n)
	for i := range p {
		p[i] = &probe{m: blockdev.NewMem(size)}
	}
	return p
}

func devices[D blockdev.Device](ds []D) []blockdev.Device {
	out := make([]blockdev.Device, len(ds))
	for i, d := range ds {
		out[i] = d
	}
	return out
}

func mustNew(t *testing.T, disks []blockdev.Device, chunk int64) *Set {
	t.Helper()
	s, err := New(disks, chunk)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *probe) record(c call) {
	p.mu.Lock()
	p.calls = append(p.calls, c)
	p.mu.Unlock()
}

func (p *probe) seen() []call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]call(nil), p.calls...)
}

func (p *probe) enter(op string, off, n int64) {
	p.record(call{op: op, off: off, n: n})
	if p.onIO != nil {
		p.onIO(op)
	}
}

func (p *probe) Size() int64  { return p.m.Size() }
func (p *probe) Close() error { return p.m.Close() }

func (p *probe) BlockSize() int {
	if p.bs == 0 {
		return 512
	}
	return p.bs
}

func (p *probe) ReadAt(b []byte, off int64) (int, error) {
	p.enter("read", off, int64(len(b)))
	n, err := p.m.ReadAt(b, off)
	if p.short && n > 0 {
		n--
	}
	return n, err
}

func (p *probe) WriteAt(b []byte, off int64) (int, error) {
	p.enter("write", off, int64(len(b)))
	return p.m.WriteAt(b, off)
}

func (p *probe) WriteAtFUA(b []byte, off int64) (int, error) {
	p.enter("fua", off, int64(len(b)))
	return p.m.WriteAtFUA(b, off)
}

func (p *probe) Flush() error {
	p.record(call{op: "flush"})
	return p.m.Flush()
}

func (p *probe) Trim(off, n int64) error {
	p.record(call{op: "trim", off: off, n: n})
	return p.m.Trim(off, n)
}

func (p *probe) WriteZeroes(off, n int64, mayTrim bool) error {
	p.record(call{op: "zero", off: off, n: n, mayTrim: mayTrim})
	return p.m.WriteZeroes(off, n, mayTrim)
}

// Map reports p.maps clipped to the range, or one allocated extent.
func (p *probe) Map(off, n int64) ([]blockdev.Extent, error) {
	p.record(call{op: "map", off: off, n: n})
	if p.maps == nil {
		return blockdev.Map(p.m, off, n)
	}
	var out []blockdev.Extent
	for _, x := range p.maps {
		start, end := max(x.Off, off), min(x.Off+x.Len, off+n)
		if start < end {
			out = append(out, blockdev.Extent{Off: start, Len: end - start, Hole: x.Hole, Zero: x.Zero})
		}
	}
	return out, nil
}
