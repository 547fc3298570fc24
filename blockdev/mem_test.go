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
	want := make([]byte, size)
	copy(want, flushed)
	copy(want[20000:], fua)
	before := m.Bytes()
	if got := m.Durable(); !bytes.Equal(got, want) {
		t.Fatalf("Durable before the crash: first difference at %d", firstDiff(got, want))
	}
	if got := m.Bytes(); !bytes.Equal(got, before) {
		t.Fatalf("Durable changed the device: first difference at %d", firstDiff(got, before))
	}
	if n := m.Crash(); n == 0 {
		t.Fatal("Crash rolled back no pages")
	}
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

// TestMemVectorCrash checks that a vectored FUA write survives a crash and
// a plain vectored write does not.
func TestMemVectorCrash(t *testing.T) {
	m := blockdev.NewMem(64 << 10)
	t.Cleanup(func() { m.Close() })
	fua := [][]byte{devtest.Pattern(1, 0, 5000), devtest.Pattern(1, 5000, 3192)}
	if n, err := m.WriteAtvFUA(fua, 0); err != nil || n != 8192 {
		t.Fatalf("WriteAtvFUA = %d, %v", n, err)
	}
	plain := [][]byte{devtest.Pattern(2, 20000, 100), nil, devtest.Pattern(2, 20100, 9000)}
	if n, err := m.WriteAtv(plain, 20000); err != nil || n != 9100 {
		t.Fatalf("WriteAtv = %d, %v", n, err)
	}
	got := make([]byte, 9100)
	if n, err := m.ReadAtv([][]byte{got[:7], got[7:]}, 20000); err != nil || n != len(got) ||
		!bytes.Equal(got, devtest.Pattern(2, 20000, 9100)) {
		t.Fatalf("ReadAtv = %d, %v; data equal %v", n, err, bytes.Equal(got, devtest.Pattern(2, 20000, 9100)))
	}
	m.Crash()
	want := make([]byte, 64<<10)
	copy(want, devtest.Pattern(1, 0, 8192))
	if got := m.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("after Crash, first difference at %d", firstDiff(got, want))
	}
}
