package blockdev_test

import (
	"bytes"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

func TestMemConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		return blockdev.NewMem(size)
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}

func TestMemCrash(t *testing.T) {
	const size = 64 << 10
	m := blockdev.NewMem(size)
	t.Cleanup(func() { m.Close() })
	write := func(off int64, p []byte, fua bool) {
		t.Helper()
		var err error
		if fua {
			_, err = m.WriteAtFUA(p, off)
		} else {
			_, err = m.WriteAt(p, off)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	flushed := devtest.Pattern(1, 0, 10000)
	write(0, flushed, false)
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	fua := devtest.Pattern(2, 20000, 5000)
	write(20000, fua, true)
	// Unflushed writes over flushed data, over FUA data, and over zeroes,
	// one of them straddling a page the FUA write made durable.
	write(100, devtest.Pattern(3, 100, 300), false)
	write(24000, devtest.Pattern(4, 24000, 2000), false)
	write(40000, devtest.Pattern(5, 40000, 9000), false)
	if err := m.WriteZeroes(5000, 100, false); err != nil {
		t.Fatal(err)
	}
	if n := m.Crash(); n == 0 {
		t.Fatal("Crash rolled back no pages")
	}
	want := make([]byte, size)
	copy(want, flushed)
	copy(want[20000:], fua)
	if got := m.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("after Crash, first difference at %d", firstDiff(got, want))
	}
	if n := m.Crash(); n != 0 {
		t.Fatalf("second Crash rolled back %d pages, want 0", n)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSectionConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		const base = 3 << 20
		s, err := blockdev.NewSection(blockdev.NewMem(base+size+12345), base, size)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}
