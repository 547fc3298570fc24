package volume

import (
	"bytes"
	"errors"
	"testing"

	"github.com/netraid/netraid/meta"
)

// TestReplace: a member is replaced while the volume is open; the new
// disk carries the volume's superblock for that member and the bitmaps,
// takes that member's share of I/O at once, and the volume assembles
// from the new set of disks afterwards.
func TestReplace(t *testing.T) {
	paths := sparseDisks(t, 3, 16<<20)
	sb := mustCreate(t, paths[:2], CreateOptions{Name: "r", Chunk: 64 << 10})
	v := mustOpen(t, paths[:2], OpenOptions{})
	chunk := int64(sb.Chunk)
	data := pattern(3, 4*chunk)
	if _, err := v.Data().WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	bits := bytes.Repeat([]byte{0xA5}, 4096)
	if _, err := v.Bitmap().WriteAt(bits, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Replace(1, paths[0], false, nil); err == nil {
		t.Fatal("replacing a member with another member of the volume was allowed")
	}
	err := v.Replace(1, paths[2], false, func(sb *meta.Superblock) { sb.DiskState = meta.Inconsistent })
	if err != nil {
		t.Fatal(err)
	}
	if m := v.Members()[1]; m.Path != paths[2] || m.Failed {
		t.Fatalf("member 1 after replace: %+v", m)
	}
	got := make([]byte, 4*chunk)
	if _, err := v.Data().ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for c := int64(0); c < 4; c++ {
		want := data[c*chunk : (c+1)*chunk]
		if c%2 == 1 {
			want = make([]byte, chunk) // member 1's share: not rebuilt here
		}
		if !bytes.Equal(got[c*chunk:(c+1)*chunk], want) {
			t.Fatalf("chunk %d after replace is not what member %d holds", c, c%2)
		}
	}
	mustClose(t, v)
	v = mustOpen(t, []string{paths[2], paths[0]}, OpenOptions{})
	defer mustClose(t, v)
	if v.Super().DiskState != meta.Inconsistent {
		t.Fatalf("the update given to Replace was not kept: %v", v.Super().DiskState)
	}
	b := make([]byte, 4096)
	if _, err := v.Bitmap().ReadAt(b, 0); err != nil || !bytes.Equal(b, bits) {
		t.Fatalf("bitmaps on the reassembled volume: %v, equal %v", err, bytes.Equal(b, bits))
	}
	if err := v.Replace(0, paths[1], false, nil); !errors.Is(err, ErrHasSuperblock) {
		t.Fatalf("replacing with a disk of a volume (the old member): %v", err)
	}
}
