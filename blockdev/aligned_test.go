package blockdev_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
)

// TestAlignedEdgeSharingWrites races writers whose ranges do not overlap
// but share blocks, on an O_DIRECT file: every read-modify-write of a
// shared block must keep the other writers' bytes.
func TestAlignedEdgeSharingWrites(t *testing.T) {
	f := openFile(t, sparseFile(t, 1<<20), blockdev.FileOptions{})
	a := blockdev.NewAligned(f)
	t.Cleanup(func() { a.Close() })
	// Four writers inside block 0 and a block-crossing pair at 4096±.
	spans := [][2]int64{{0, 100}, {100, 150}, {250, 150}, {400, 112}, {4000, 196}, {4196, 3000}}
	const rounds = 100
	for r := range int64(rounds) {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, s := range spans {
			wg.Go(func() {
				<-start
				if _, err := a.WriteAt(devtest.Pattern(r, s[0], int(s[1])), s[0]); err != nil {
					t.Errorf("round %d: write %v: %v", r, s, err)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, s := range spans {
			got := make([]byte, s[1])
			if _, err := a.ReadAt(got, s[0]); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, devtest.Pattern(r, s[0], int(s[1]))) {
				t.Fatalf("round %d: the write to %v was lost to a neighbour's read-modify-write", r, s)
			}
		}
	}
}

// TestAlignedPassesAlignedIOStraight checks that Aligned reads nothing
// before an aligned write, even through a misaligned buffer, and does a
// read-modify-write only of partial blocks.
func TestAlignedPassesAlignedIOStraight(t *testing.T) {
	f := fault.Wrap(blockdev.NewMem(1 << 20))
	a := blockdev.NewAligned(f)
	t.Cleanup(func() { a.Close() })
	buf := blockdev.GetBuffer(8193, 4096)
	cases := []struct {
		name          string
		p             []byte
		off           int64
		reads, writes int
	}{
		{"aligned", buf[:8192], 4096, 0, 1},
		{"misaligned buffer", buf[1:8193], 4096, 0, 1},
		{"partial head", buf[:924], 100, 1, 1},
		{"partial head and tail", buf[:8000], 100, 2, 1},
		{"partial tail only", buf[:1000], 512, 1, 1},
		{"inside one block", buf[:10], 10, 1, 1},
	}
	for _, c := range cases {
		r0, w0 := f.Count(fault.Read), f.Count(fault.Write)
		if _, err := a.WriteAt(c.p, c.off); err != nil {
			t.Fatal(err)
		}
		if r, w := f.Count(fault.Read)-r0, f.Count(fault.Write)-w0; r != c.reads || w != c.writes {
			t.Errorf("%s: %d reads and %d writes below, want %d and %d", c.name, r, w, c.reads, c.writes)
		}
	}
}

func TestAlignedTrimLeavesPartialBlocks(t *testing.T) {
	m := blockdev.NewMem(1 << 20)
	a := blockdev.NewAligned(m)
	t.Cleanup(func() { a.Close() })
	data := devtest.Pattern(5, 0, 4096)
	if _, err := a.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Trim(100, 2000); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(data)
	clear(want[512:2048])
	if got := m.Bytes()[:4096]; !bytes.Equal(got, want) {
		t.Fatal("Trim did not discard exactly the whole blocks inside its range")
	}
	if err := a.WriteZeroes(100, 2000, true); err != nil {
		t.Fatal(err)
	}
	clear(want[100:2100])
	if got := m.Bytes()[:4096]; !bytes.Equal(got, want) {
		t.Fatal("WriteZeroes did not zero exactly its range")
	}
}
