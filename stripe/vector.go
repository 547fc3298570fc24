package stripe

import (
	"iter"

	"github.com/netraid/netraid/blockdev"
)

// xfer is a kind of read or write: the member call for one buffer, and the
// call for several that lie end to end on the member.
type xfer struct {
	op  string
	one func(d blockdev.Device, p []byte, off int64) (int, error)
	vec func(d blockdev.Device, bufs [][]byte, off int64) (int, error)
}

var (
	xRead  = xfer{opRead, blockdev.Device.ReadAt, blockdev.ReadV}
	xWrite = xfer{opWrite, blockdev.Device.WriteAt, blockdev.WriteV}
	xFUA   = xfer{opWriteFUA, blockdev.WriteFUA, blockdev.WriteVFUA}
)

// run is a member's extents ext[first], ext[first+stride], ... (count of
// them) that lie end to end on the member: one call does them all.
type run struct{ first, count int }

// runs splits the extents first, first+stride, first+2*stride, ... of ext
// (one member's, in order) into maximal runs, each extent starting on the
// member where the one before it ended. Map's extents for one member are
// always a single run; runs does not rely on it.
func runs(ext []Extent, first, stride int) iter.Seq[run] {
	return func(yield func(run) bool) {
		if first >= len(ext) {
			return
		}
		r := run{first: first, count: 1}
		for k := first + stride; k < len(ext); k += stride {
			prev := ext[k-stride]
			if ext[k].Disk == prev.Disk && ext[k].DiskOff == prev.DiskOff+prev.Len {
				r.count++
				continue
			}
			if !yield(r) {
				return
			}
			r = run{first: k, count: 1}
		}
		yield(r)
	}
}

// batch is one read or write split into Map's extents, extent k and
// k+stride on the same member, and what each extent has done.
type batch struct {
	s      *Set
	x      xfer
	p      []byte
	ext    []Extent
	stride int
	done   []int64
	errs   []error
}

// transferRuns does x over p, split into Map's extents ext: each member's
// runs in order, one call per run, the members in parallel (see fanOut).
// It returns how many bytes from the start of p were done, and the
// members' errors. A member stops at its first failed run.
func (s *Set) transferRuns(x xfer, p []byte, ext []Extent) (int64, error) {
	switch len(ext) {
	case 0:
		return 0, nil
	case 1:
		e := ext[0]
		n, err := x.one(s.disk(e.Disk), p[e.BufOff:e.BufOff+e.Len], e.DiskOff)
		return pieceResult(x.op, e, int64(n), err)
	}
	b := &batch{s: s, x: x, p: p, ext: ext, stride: len(s.disks),
		done: make([]int64, len(ext)), errs: make([]error, len(ext))}
	groups := min(len(ext), b.stride)
	fanOut(groups, groups, func(g int) bool {
		for r := range runs(ext, g, b.stride) {
			if !b.do(r) {
				break
			}
		}
		return true
	})
	return prefix(ext, b.done), s.firstPerDisk(b.errs, ext)
}

// do does run r with one call on its member, and reports whether all of it
// was done without error.
func (b *batch) do(r run) bool {
	first := b.ext[r.first]
	d := b.s.disk(first.Disk)
	if r.count == 1 {
		n, err := b.x.one(d, b.buf(first), first.DiskOff)
		return b.record(r, int64(n), err)
	}
	bufs := make([][]byte, r.count)
	for j := range bufs {
		bufs[j] = b.buf(b.ext[r.first+j*b.stride])
	}
	n, err := b.x.vec(d, bufs, first.DiskOff)
	return b.record(r, int64(n), err)
}

// buf is extent e's part of the request's buffer.
func (b *batch) buf(e Extent) []byte { return b.p[e.BufOff : e.BufOff+e.Len] }

// record spreads the result of run r's call over its extents, in order:
// the first n bytes are done, and the error, or if there is none the
// shortfall, is charged to the first extent not wholly done (to the last
// if every one was). It reports whether the run succeeded in full.
func (b *batch) record(r run, n int64, err error) bool {
	for j := range r.count {
		k := r.first + j*b.stride
		e := b.ext[k]
		got := max(min(n, e.Len), 0)
		n -= got
		if got < e.Len || (err != nil && j == r.count-1) {
			b.done[k], b.errs[k] = pieceResult(b.x.op, e, got, err)
			return b.errs[k] == nil
		}
		b.done[k] = e.Len
	}
	return true
}
