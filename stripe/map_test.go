package stripe

import (
	"math/rand/v2"
	"slices"
	"testing"
)

const kib = 1 << 10

func TestMap(t *testing.T) {
	const c = 64 * kib
	for _, tc := range []struct {
		name          string
		off, n, chunk int64
		disks         int
		want          []Extent
	}{
		{"zero length", 5 * c, 0, c, 3, nil},
		{"zero length at end", 6 * c, 0, c, 3, nil},
		{"inside first chunk", 4096, 8192, c, 3, []Extent{{0, 4096, 8192, 0}}},
		{"whole chunk 4", 4 * c, c, c, 3, []Extent{{1, c, c, 0}}},
		{"ends on a boundary", c - 4096, 4096, c, 3, []Extent{{0, c - 4096, 4096, 0}}},
		{"starts on a boundary", c, 4096, c, 3, []Extent{{1, 0, 4096, 0}}},
		{"straddles a boundary", c - 512, 1024, c, 3, []Extent{
			{0, c - 512, 512, 0},
			{1, 0, 512, 512},
		}},
		{"several stripes", c / 2, 7 * c, c, 3, []Extent{
			{0, c / 2, c / 2, 0},
			{1, 0, c, c / 2},
			{2, 0, c, 3 * c / 2},
			{0, c, c, 5 * c / 2},
			{1, c, c, 7 * c / 2},
			{2, c, c, 9 * c / 2},
			{0, 2 * c, c, 11 * c / 2},
			{1, 2 * c, c / 2, 13 * c / 2},
		}},
		{"last chunk of a 3x4-chunk volume", 11 * c, c, c, 3, []Extent{{2, 3 * c, c, 0}}},
		{"last byte", 12*c - 1, 1, c, 3, []Extent{{2, 4*c - 1, 1, 0}}},
		{"one disk is one extent", 100, 10 * c, c, 1, []Extent{{0, 100, 10 * c, 0}}},
		{"two disks, odd bytes", 4*kib + 3, 8*kib + 5, 8 * kib, 2, []Extent{
			{0, 4*kib + 3, 4*kib - 3, 0},
			{1, 0, 4*kib + 8, 4*kib - 3},
		}},
		{"more disks than chunks", 2 * c, 2 * c, c, 8, []Extent{{2, 0, c, 0}, {3, 0, c, c}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Map(tc.off, tc.n, tc.chunk, tc.disks)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Map(%d, %d, %d, %d) =\n %v\nwant\n %v", tc.off, tc.n, tc.chunk, tc.disks, got, tc.want)
			}
		})
	}
}

func TestDiskRanges(t *testing.T) {
	const c = 64 * kib
	for _, tc := range []struct {
		name          string
		off, n, chunk int64
		disks         int
		want          []Extent
	}{
		{"zero length", 0, 0, c, 3, nil},
		{"one chunk", c + 5, 10, c, 3, []Extent{{1, 5, 10, 0}}},
		{"several stripes", c / 2, 7 * c, c, 3, []Extent{
			{0, c / 2, 5 * c / 2, 0}, // chunks 0 (tail), 3, 6
			{1, 0, 5 * c / 2, 0},     // chunks 1, 4, 7 (head)
			{2, 0, 2 * c, 0},         // chunks 2, 5
		}},
		{"starts on the last disk", 2 * c, 2 * c, c, 3, []Extent{{0, c, c, 0}, {2, 0, c, 0}}},
		{"one disk", 7, 3 * c, c, 1, []Extent{{0, 7, 3 * c, 0}}},
		{"whole 3x4-chunk volume", 0, 12 * c, c, 3, []Extent{{0, 0, 4 * c, 0}, {1, 0, 4 * c, 0}, {2, 0, 4 * c, 0}}},
		{"huge", 0, 1 << 50, c, 4, []Extent{{0, 0, 1 << 48, 0}, {1, 0, 1 << 48, 0}, {2, 0, 1 << 48, 0}, {3, 0, 1 << 48, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DiskRanges(tc.off, tc.n, tc.chunk, tc.disks)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("DiskRanges(%d, %d, %d, %d) =\n %v\nwant\n %v", tc.off, tc.n, tc.chunk, tc.disks, got, tc.want)
			}
		})
	}
}

// TestMapProperties checks Map and DiskRanges on random requests: the
// extents tile the buffer, each stays inside one chunk, maps back to the
// volume offset it came from, cycles through the disks, and the union of
// a disk's extents is DiskRanges' range for it.
func TestMapProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 5000 {
		disks := 1 + r.IntN(9)
		chunk := int64(512) << r.IntN(8)
		off := r.Int64N(200 * chunk)
		n := r.Int64N(30 * chunk)
		if r.IntN(4) == 0 { // aligned to chunks, for boundary cases
			off, n = off/chunk*chunk, n/chunk*chunk
		}
		ext := Map(off, n, chunk, disks)
		var buf int64
		union := map[int][2]int64{}
		for k, e := range ext {
			if e.BufOff != buf || e.Len <= 0 {
				t.Fatalf("case %d: extent %d %+v does not follow buffer offset %d", i, k, e, buf)
			}
			if disks > 1 && e.DiskOff/chunk != (e.DiskOff+e.Len-1)/chunk {
				t.Fatalf("case %d: extent %d %+v crosses a chunk boundary", i, k, e)
			}
			if disks > 1 && e.Disk != (ext[0].Disk+k)%disks {
				t.Fatalf("case %d: extent %d on disk %d breaks the stride", i, k, e.Disk)
			}
			// The inverse mapping of the extent's first byte.
			vol := (e.DiskOff/chunk*int64(disks)+int64(e.Disk))*chunk + e.DiskOff%chunk
			if vol != off+e.BufOff {
				t.Fatalf("case %d: extent %d %+v maps back to %d, want %d", i, k, e, vol, off+e.BufOff)
			}
			u, ok := union[e.Disk]
			switch {
			case !ok:
				union[e.Disk] = [2]int64{e.DiskOff, e.DiskOff + e.Len}
			case u[1] != e.DiskOff:
				t.Fatalf("case %d: disk %d's extents are not contiguous at %d", i, e.Disk, e.DiskOff)
			default:
				union[e.Disk] = [2]int64{u[0], e.DiskOff + e.Len}
			}
			buf += e.Len
		}
		if buf != n {
			t.Fatalf("case %d: extents cover %d bytes, want %d", i, buf, n)
		}
		ranges := DiskRanges(off, n, chunk, disks)
		if len(ranges) != len(union) {
			t.Fatalf("case %d: DiskRanges %v, Map touches %d disks", i, ranges, len(union))
		}
		for _, x := range ranges {
			if u := union[x.Disk]; u != [2]int64{x.DiskOff, x.DiskOff + x.Len} {
				t.Fatalf("case %d: DiskRanges says disk %d [%d, %d), Map says [%d, %d)",
					i, x.Disk, x.DiskOff, x.DiskOff+x.Len, u[0], u[1])
			}
		}
	}
}

func TestMapPanicsOnBadArguments(t *testing.T) {
	for _, a := range [][4]int64{{0, 1, 0, 1}, {0, 1, 4096, 0}, {-1, 1, 4096, 1}, {0, -1, 4096, 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Map%v did not panic", a)
				}
			}()
			Map(a[0], a[1], a[2], int(a[3]))
		}()
	}
}
