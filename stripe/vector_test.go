package stripe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
)

// scalar hides a member's vectored I/O, so that the Set makes one call per
// chunk piece; it keeps the member's block size, FUA, Trim and WriteZeroes.
type scalar struct{ blockdev.Device }

func (s scalar) BlockSize() int { return blockdev.BlockSize(s.Device) }

func (s scalar) WriteAtFUA(p []byte, off int64) (int, error) {
	return blockdev.WriteFUA(s.Device, p, off)
}

func (s scalar) Trim(off, n int64) error { return blockdev.Trim(s.Device, off, n) }

func (s scalar) WriteZeroes(off, n int64, mayTrim bool) error {
	return blockdev.WriteZeroes(s.Device, off, n, mayTrim)
}

func TestRuns(t *testing.T) {
	x := func(disk int, off, n int64) Extent { return Extent{Disk: disk, DiskOff: off, Len: n} }
	for _, c := range []struct {
		name          string
		ext           []Extent
		first, stride int
		want          []run
	}{
		{"1 MiB over 2 members, member 0", Map(0, 1<<20, 64*kib, 2), 0, 2, []run{{0, 8}}},
		{"1 MiB over 2 members, member 1", Map(0, 1<<20, 64*kib, 2), 1, 2, []run{{1, 8}}},
		{"ragged ends over 3 members", Map(100, 7*4*kib, 4*kib, 3), 0, 3, []run{{0, 3}}},
		{"ragged ends, last member", Map(100, 7*4*kib, 4*kib, 3), 2, 3, []run{{2, 2}}},
		{"one extent", Map(5, 10, 4*kib, 3), 0, 3, []run{{0, 1}}},
		{"member not touched", Map(0, 4*kib, 4*kib, 3), 1, 3, nil},
		{"one member", []Extent{x(0, 0, 10), x(0, 10, 5)}, 0, 1, []run{{0, 2}}},
		{"gap splits", []Extent{x(0, 0, 10), x(1, 0, 10), x(0, 10, 10), x(1, 20, 10), x(0, 20, 5)}, 1, 2,
			[]run{{1, 1}, {3, 1}}},
		{"no gap", []Extent{x(0, 0, 10), x(1, 0, 10), x(0, 10, 10), x(1, 20, 10), x(0, 20, 5)}, 0, 2,
			[]run{{0, 3}}},
		{"overlap splits", []Extent{x(0, 0, 10), x(0, 5, 10), x(0, 15, 1)}, 0, 1, []run{{0, 1}, {1, 2}}},
		{"other disk splits", []Extent{x(0, 0, 10), x(1, 10, 10)}, 0, 1, []run{{0, 1}, {1, 1}}},
	} {
		if got := slices.Collect(runs(c.ext, c.first, c.stride)); !slices.Equal(got, c.want) {
			t.Errorf("%s: runs = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRecord checks how a vectored call's count and error are spread over
// the extents of its run.
func TestRecord(t *testing.T) {
	ext := []Extent{
		{Disk: 0, DiskOff: 0, Len: 100, BufOff: 0},
		{Disk: 0, DiskOff: 100, Len: 200, BufOff: 100},
		{Disk: 0, DiskOff: 300, Len: 300, BufOff: 300},
	}
	for _, c := range []struct {
		op   string
		n    int64
		err  error
		done []int64
		bad  int   // extent charged with the error, -1 for none
		is   error // what its error wraps
	}{
		{opWrite, 600, nil, []int64{100, 200, 300}, -1, nil},
		{opWrite, 700, nil, []int64{100, 200, 300}, -1, nil},
		{opWrite, 250, errBoom, []int64{100, 150, 0}, 1, errBoom},
		{opWrite, 100, errBoom, []int64{100, 0, 0}, 1, errBoom},
		{opWrite, 0, errBoom, []int64{0, 0, 0}, 0, errBoom},
		{opWrite, -1, errBoom, []int64{0, 0, 0}, 0, errBoom},
		{opWrite, 600, errBoom, []int64{100, 200, 300}, 2, errBoom},
		{opWrite, 450, nil, []int64{100, 200, 150}, 2, io.ErrShortWrite},
		{opRead, 450, nil, []int64{100, 200, 150}, 2, io.ErrUnexpectedEOF},
		{opRead, 600, io.EOF, []int64{100, 200, 300}, -1, nil},
		{opRead, 300, io.EOF, []int64{100, 200, 0}, 2, io.EOF},
	} {
		b := &batch{x: xfer{op: c.op}, ext: ext, stride: 1, done: make([]int64, 3), errs: make([]error, 3)}
		ok := b.record(run{0, 3}, c.n, c.err)
		name := fmt.Sprintf("%s %d, %v", c.op, c.n, c.err)
		if ok != (c.bad < 0) || !slices.Equal(b.done, c.done) {
			t.Errorf("%s: ok %v, done %v; want %v, %v", name, ok, b.done, c.bad < 0, c.done)
		}
		for k, err := range b.errs {
			var de *DiskError
			switch {
			case k != c.bad && err != nil:
				t.Errorf("%s: extent %d charged with %v", name, k, err)
			case k == c.bad && (!errors.As(err, &de) || !errors.Is(err, c.is) || de.Off != ext[k].DiskOff || de.Len != ext[k].Len || de.Op != c.op):
				t.Errorf("%s: extent %d has error %v, want a DiskError for it wrapping %v", name, k, err, c.is)
			}
		}
	}
}

// faultMembers returns n fault devices over fresh Mems, and the members to
// give a Set: the fault devices, or with hide, the fault devices with
// their vectored I/O hidden.
func faultMembers(n int, size int64, hide bool) ([]*fault.Device, []blockdev.Device) {
	f := make([]*fault.Device, n)
	disks := make([]blockdev.Device, n)
	for i := range f {
		f[i] = fault.Wrap(blockdev.NewMem(size))
		disks[i] = f[i]
		if hide {
			disks[i] = scalar{f[i]}
		}
	}
	return f, disks
}

// TestVectorCalls checks that a 1 MiB request over 2 members in 64 KiB
// chunks reaches each member as one call when the members have vectored
// I/O and as 8 otherwise, and that both leave the same bytes.
func TestVectorCalls(t *testing.T) {
	const chunk, size = 64 * kib, 4 << 20
	var mems [2][][]byte
	for i, hide := range []bool{false, true} {
		f, disks := faultMembers(2, size, hide)
		s := mustNew(t, disks, chunk)
		want := 1
		if hide {
			want = 8
		}
		p := devtest.Pattern(1, 0, 1<<20)
		calls := []struct {
			what string
			op   fault.Op
			do   func() (int, error)
		}{
			{"WriteAt", fault.Write, func() (int, error) { return s.WriteAt(p, 1<<20) }},
			{"WriteAtFUA", fault.Write, func() (int, error) { return s.WriteAtFUA(p, 3<<20) }},
			{"ReadAt", fault.Read, func() (int, error) { return s.ReadAt(make([]byte, len(p)), 2<<20) }},
		}
		for _, c := range calls {
			before := [2]int{f[0].Count(c.op), f[1].Count(c.op)}
			if n, err := c.do(); n != len(p) || err != nil {
				t.Fatalf("%s = %d, %v", c.what, n, err)
			}
			for d := range f {
				if got := f[d].Count(c.op) - before[d]; got != want {
					t.Errorf("hidden %v: %s made %d calls on member %d, want %d", hide, c.what, got, d, want)
				}
			}
		}
		// Ragged requests, not on chunk boundaries.
		for j, r := range [][2]int64{{100, 3*chunk + 5}, {chunk - 1, 5*chunk + 2}, {size - 7*chunk - 3, 7 * chunk}} {
			if _, err := s.WriteAt(devtest.Pattern(int64(j+2), r[0], int(r[1])), r[0]); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range f {
			mems[i] = append(mems[i], d.Unwrap().(*blockdev.Mem).Bytes())
		}
		got := make([]byte, 1<<20)
		if _, err := s.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("hidden %v: read back: %v, equal %v", hide, err, bytes.Equal(got, p))
		}
		s.Close()
	}
	for d := range mems[0] {
		if !bytes.Equal(mems[0][d], mems[1][d]) {
			t.Fatalf("member %d holds other bytes after vectored writes than after per-extent writes", d)
		}
	}
}
