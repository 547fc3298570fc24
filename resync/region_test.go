package resync

import (
	"errors"
	"testing"
)

func TestRegions(t *testing.T) {
	const rs = 64 << 10
	for _, c := range []struct {
		name        string
		off, n      int64
		first, last int64
	}{
		{"zero length", 100, 0, 0, -1},
		{"zero length at a boundary", rs, 0, 1, 0},
		{"one byte", 0, 1, 0, 0},
		{"whole first region", 0, rs, 0, 0},
		{"last byte of region 0", rs - 1, 1, 0, 0},
		{"first byte of region 1", rs, 1, 1, 1},
		{"straddles a boundary", rs - 1, 2, 0, 1},
		{"exactly two regions", rs, 2 * rs, 1, 2},
		{"ends on a boundary", 3, 2*rs - 3, 0, 1},
		{"many regions", 5, 10 * rs, 0, 10},
	} {
		first, last := Regions(c.off, c.n, rs)
		if first != c.first || last != c.last {
			t.Errorf("%s: Regions(%d, %d) = %d, %d, want %d, %d", c.name, c.off, c.n, first, last, c.first, c.last)
		}
	}
}

func TestWholeRegions(t *testing.T) {
	const rs = 4096
	const vol = 10*rs + 100 // 11 regions, the last 100 bytes
	for _, c := range []struct {
		name        string
		off, n      int64
		first, last int64
	}{
		{"zero length", rs, 0, 1, 0},
		{"less than a region", 1, rs, 1, 0},
		{"exactly one region", rs, rs, 1, 1},
		{"one region and a bit either side", rs - 1, rs + 2, 1, 1},
		{"two regions", 0, 2 * rs, 0, 1},
		{"up to the end takes the short region", 9 * rs, rs + 100, 9, 10},
		{"the short region alone", 10 * rs, 100, 10, 10},
		{"short of the end", 10 * rs, 99, 10, 9},
		{"the whole volume", 0, vol, 0, 10},
	} {
		first, last := WholeRegions(c.off, c.n, rs, vol)
		if first != c.first || last != c.last {
			t.Errorf("%s: WholeRegions(%d, %d) = %d, %d, want %d, %d", c.name, c.off, c.n, first, last, c.first, c.last)
		}
	}
}

func TestGeometry(t *testing.T) {
	const rs = 4096
	for _, c := range []struct {
		vol, regions, bitmap int64
	}{
		{1, 1, 4096},
		{rs, 1, 4096},
		{rs + 1, 2, 4096},
		{rs * 4096 * 8, 4096 * 8, 4096},
		{rs*4096*8 + 1, 4096*8 + 1, 8192},
	} {
		if got := NumRegions(c.vol, rs); got != c.regions {
			t.Errorf("NumRegions(%d) = %d, want %d", c.vol, got, c.regions)
		}
		if got := BitmapBytes(c.vol, rs); got != c.bitmap {
			t.Errorf("BitmapBytes(%d) = %d, want %d", c.vol, got, c.bitmap)
		}
		if got := StoreSize(c.vol, rs); got != 2*c.bitmap {
			t.Errorf("StoreSize(%d) = %d, want %d", c.vol, got, 2*c.bitmap)
		}
	}
	if off, n := RegionSpan(2, rs, 2*rs+10); off != 2*rs || n != 10 {
		t.Errorf("RegionSpan of the short last region = %d, %d", off, n)
	}
	if off, n := RegionSpan(1, rs, 3*rs); off != rs || n != rs {
		t.Errorf("RegionSpan(1) = %d, %d", off, n)
	}
	for _, c := range []struct{ vol, rs int64 }{{0, rs}, {-1, rs}, {rs, 0}, {rs, 2048}, {rs, 3 * 4096}} {
		if err := checkGeometry(c.vol, c.rs); !errors.Is(err, ErrGeometry) {
			t.Errorf("checkGeometry(%d, %d) = %v, want ErrGeometry", c.vol, c.rs, err)
		}
	}
}
