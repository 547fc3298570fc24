package meta

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
	tib = int64(1) << 40
)

func TestPlanLayout(t *testing.T) {
	for _, c := range []struct {
		name          string
		sizes         []int64
		chunk, region int64
		want          Layout
	}{
		{
			// 3 GiB volume, 3072 regions: 384 bytes of bitmap, one page
			// each; 8 KiB + 8 KiB rounds up to 1 MiB of metadata.
			name: "defaults", sizes: []int64{gib, gib, gib},
			want: Layout{Members: 3, Chunk: 64 * kib, Region: mib, DataOffset: mib,
				MemberDataSize: gib - mib, VolumeSize: 3 * (gib - mib), BitmapOffset: 8 * kib, BitmapBytes: 4 * kib},
		},
		{
			name: "one disk", sizes: []int64{2 * mib}, chunk: 4 * kib, region: 4 * kib,
			want: Layout{Members: 1, Chunk: 4 * kib, Region: 4 * kib, DataOffset: mib,
				MemberDataSize: mib, VolumeSize: mib, BitmapOffset: 8 * kib, BitmapBytes: 4 * kib},
		},
		{
			// The smallest disk decides, rounded down to the chunk; the
			// odd tail of every disk is unused.
			name: "smallest decides", sizes: []int64{5*gib + 123, 4*gib + 100*kib + 7, 6 * gib},
			want: Layout{Members: 3, Chunk: 64 * kib, Region: mib, DataOffset: mib,
				MemberDataSize: 4*gib - mib + 64*kib, VolumeSize: 3 * (4*gib - mib + 64*kib),
				BitmapOffset: 8 * kib, BitmapBytes: 4 * kib},
		},
		{
			// 4 x 16 TiB at 1 MiB regions: 64 Mi regions, 8 MiB per
			// bitmap; 8 KiB + 16 MiB rounds up to 17 MiB.
			name: "large", sizes: []int64{16 * tib, 16 * tib, 16 * tib, 16 * tib}, chunk: 512 * kib,
			want: Layout{Members: 4, Chunk: 512 * kib, Region: mib, DataOffset: 17 * mib,
				MemberDataSize: 16*tib - 17*mib, VolumeSize: 4 * (16*tib - 17*mib),
				BitmapOffset: 8 * kib, BitmapBytes: 8 * mib},
		},
		{
			// A chunk above the default region raises the region.
			name: "big chunk", sizes: []int64{gib, gib}, chunk: 4 * mib,
			want: Layout{Members: 2, Chunk: 4 * mib, Region: 4 * mib, DataOffset: mib,
				MemberDataSize: gib - 4*mib, VolumeSize: 2 * (gib - 4*mib), BitmapOffset: 8 * kib, BitmapBytes: 4 * kib},
		},
		{
			// Exactly the minimum: metadata plus one chunk.
			name: "minimum", sizes: []int64{mib + 64*kib, mib + 64*kib},
			want: Layout{Members: 2, Chunk: 64 * kib, Region: mib, DataOffset: mib,
				MemberDataSize: 64 * kib, VolumeSize: 128 * kib, BitmapOffset: 8 * kib, BitmapBytes: 4 * kib},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := PlanLayout(c.sizes, c.chunk, c.region)
			if err != nil {
				t.Fatalf("PlanLayout: %v", err)
			}
			if got != c.want {
				t.Fatalf("PlanLayout =\n %+v\nwant\n %+v", got, c.want)
			}
		})
	}
}

func TestPlanLayoutErrors(t *testing.T) {
	many := make([]int64, MaxMembers+1)
	for i := range many {
		many[i] = gib
	}
	for _, c := range []struct {
		name          string
		sizes         []int64
		chunk, region int64
		want          error
		msg           string
	}{
		{"no disks", nil, 0, 0, ErrLayout, "0 disks"},
		{"too many disks", many, 0, 0, ErrLayout, "65 disks"},
		{"chunk not a power of two", []int64{gib}, 96 * kib, 0, ErrLayout, "chunk size 98304"},
		{"chunk below 4 KiB", []int64{gib}, 2 * kib, 4 * kib, ErrLayout, "chunk size 2048"},
		{"chunk above max", []int64{4 * gib}, 2 * gib, 2 * gib, ErrLayout, "chunk size"},
		{"negative chunk", []int64{gib}, -4096, 0, ErrLayout, "negative"},
		{"region below chunk", []int64{gib}, 64 * kib, 32 * kib, ErrLayout, "region size 32768"},
		{"region not a power of two", []int64{gib}, 64 * kib, 3 * mib, ErrLayout, "region size 3145728"},
		{"second disk too small", []int64{gib, mib + 64*kib - 1, gib}, 0, 0, ErrTooSmall, "disk 1 is too small"},
		{"zero-size disk", []int64{0}, 0, 0, ErrTooSmall, "disk 0 is too small"},
		{"negative size", []int64{gib, -1}, 0, 0, ErrTooSmall, "disk 1 is too small"},
		{"overflow", []int64{math.MaxInt64, math.MaxInt64}, 0, 0, ErrLayout, "overflow"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := PlanLayout(c.sizes, c.chunk, c.region)
			if !errors.Is(err, c.want) {
				t.Fatalf("PlanLayout = %+v, %v; want %v", l, err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q does not say %q", err, c.msg)
			}
		})
	}
}

func TestSizeError(t *testing.T) {
	_, err := PlanLayout([]int64{gib, 100 * kib}, 0, 0)
	var se *SizeError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a *SizeError", err)
	}
	if se.Disk != 1 || se.Size != 100*kib || se.Min != mib+64*kib {
		t.Fatalf("SizeError = %+v", se)
	}
	want := "meta: disk 1 is too small: 100 KiB (102400 bytes), a member needs at least 1.1 MiB (1114112 bytes) for metadata and one chunk"
	if err.Error() != want {
		t.Fatalf("message\n %q\nwant\n %q", err, want)
	}
}

// TestPlanLayoutProperties checks invariants over random geometries: the
// layout validates as a superblock, fits every disk, and its bitmap covers
// the volume.
func TestPlanLayoutProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		n := 1 + r.IntN(8)
		sizes := make([]int64, n)
		for j := range sizes {
			sizes[j] = 2*mib + r.Int64N(64*tib)
		}
		chunk := int64(4*kib) << r.IntN(9)
		region := chunk << r.IntN(6)
		l, err := PlanLayout(sizes, chunk, region)
		if errors.Is(err, ErrTooSmall) {
			continue
		}
		if err != nil {
			t.Fatalf("case %d %v chunk %d region %d: %v", i, sizes, chunk, region, err)
		}
		for j, s := range sizes {
			if l.DataOffset+l.MemberDataSize > s {
				t.Fatalf("case %d: disk %d of %d bytes cannot hold %+v", i, j, s, l)
			}
		}
		if l.BitmapBytes*8*l.Region < l.VolumeSize {
			t.Fatalf("case %d: bitmap of %d bytes does not cover %d bytes", i, l.BitmapBytes, l.VolumeSize)
		}
		sb := &Superblock{Name: "v", Member: uint32(n - 1)}
		sb.SetLayout(l)
		if err := sb.Validate(); err != nil {
			t.Fatalf("case %d: layout %+v does not validate: %v", i, l, err)
		}
		if sb.Layout() != l {
			t.Fatalf("case %d: Layout() = %+v, want %+v", i, sb.Layout(), l)
		}
	}
}

func TestBitmapBytes(t *testing.T) {
	for _, c := range []struct{ vol, region, want int64 }{
		{0, mib, 0},
		{1, mib, 4096},
		{mib, mib, 4096},
		{32768 * mib, mib, 4096},     // exactly 32768 bits
		{32768*mib + 1, mib, 8192},   // one bit more
		{4 * tib, mib, 512 * kib},    // the example in DefaultRegion's comment
		{64 * tib, 4 * mib, 2 * mib}, // 16 Mi regions
	} {
		if got := BitmapBytes(c.vol, c.region); got != c.want {
			t.Errorf("BitmapBytes(%d, %d) = %d, want %d", c.vol, c.region, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(sb *Superblock)
		msg  string
	}{
		{"name too long", func(sb *Superblock) { sb.Name = strings.Repeat("n", MaxNameLen+1) }, "at most 64"},
		{"name with space", func(sb *Superblock) { sb.Name = "a b" }, "byte 1"},
		{"no members", func(sb *Superblock) { sb.Members, sb.Member = 0, 0 }, "0 members"},
		{"too many members", func(sb *Superblock) { sb.Members = 65 }, "65 members"},
		{"failed mask beyond members", func(sb *Superblock) { sb.FailedMembers = 1 << 3 }, "failed-member mask"},
		{"unaligned data offset", func(sb *Superblock) { sb.DataOffset += 4096 }, "data offset"},
		{"member size not chunk multiple", func(sb *Superblock) { sb.MemberDataSize += 4096 }, "member data size"},
		{"volume size", func(sb *Superblock) { sb.VolumeSize -= sb.Chunk }, "volume size"},
		{"bitmap over superblocks", func(sb *Superblock) { sb.BitmapOffset = 4096 }, "bitmap offset"},
		{"bitmap too small", func(sb *Superblock) { sb.VolumeSize, sb.MemberDataSize = 1<<50*3, 1<<50 }, "bitmap of"},
		{"bitmaps over data", func(sb *Superblock) { sb.BitmapBytes = sb.DataOffset / 2 }, "overlap data"},
		{"bitmap beyond data", func(sb *Superblock) { sb.BitmapOffset = sb.DataOffset + 4096 }, "overlap data"},
		{"region below chunk", func(sb *Superblock) { sb.RegionSize = sb.Chunk / 2 }, "region size"},
		{"overflow", func(sb *Superblock) { sb.MemberDataSize = 1 << 62; sb.VolumeSize = 3 << 62 }, "overflows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sb := sample(t)
			c.edit(sb)
			err := sb.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Validate = %v, want ErrInvalid saying %q", err, c.msg)
			}
		})
	}
}

func TestMemberFailed(t *testing.T) {
	sb := &Superblock{FailedMembers: 1<<0 | 1<<5 | 1<<63}
	for i, want := range map[int]bool{0: true, 1: false, 5: true, 63: true, 64: false, -1: false} {
		if got := sb.MemberFailed(i); got != want {
			t.Errorf("MemberFailed(%d) = %v, want %v", i, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "vol-1", "A.b_c-9", strings.Repeat("x", MaxNameLen)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "é", "vol\x00", strings.Repeat("x", MaxNameLen+1)} {
		if err := ValidName(bad); !errors.Is(err, ErrName) {
			t.Errorf("ValidName(%q) = %v, want ErrName", bad, err)
		}
	}
}
