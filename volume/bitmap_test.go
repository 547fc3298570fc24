package volume

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// TestBitmapFanOut checks that bitmap writes land on every member, reads
// come back, and members marked failed are left out.
func TestBitmapFanOut(t *testing.T) {
	paths := sparseDisks(t, 3, 8*mib)
	sb := mustCreate(t, paths, CreateOptions{})
	v := mustOpen(t, paths, OpenOptions{})
	bm := v.Bitmap()
	base := int64(sb.BitmapOffset)
	second := int64(sb.BitmapBytes) // the "used" bitmap

	dirty := pattern(7, 100)
	if _, err := bm.WriteAt(dirty, 3); err != nil { // unaligned
		t.Fatal(err)
	}
	used := pattern(9, 4096)
	if _, err := blockdev.WriteFUA(bm, used, second); err != nil {
		t.Fatal(err)
	}
	if err := bm.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if got := readAt(t, p, base+3, 100); !bytes.Equal(got, dirty) {
			t.Fatalf("%s: dirty bitmap write missing", p)
		}
		if got := readAt(t, p, base+second, 4096); !bytes.Equal(got, used) {
			t.Fatalf("%s: used bitmap write missing", p)
		}
	}
	got := make([]byte, 100)
	if _, err := bm.ReadAt(got, 3); err != nil || !bytes.Equal(got, dirty) {
		t.Fatalf("ReadAt = %v, equal %v", err, bytes.Equal(got, dirty))
	}
	if _, err := bm.ReadAt(make([]byte, 2), bm.Size()-1); !errors.Is(err, blockdev.ErrOutOfRange) {
		t.Fatalf("ReadAt past the end = %v", err)
	}

	// Mark member 0 failed: reads come from member 1, writes skip 0.
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.FailedMembers = 1 }); err != nil {
		t.Fatal(err)
	}
	if m := v.Members(); !m[0].Failed || m[1].Failed || m[2].Failed {
		t.Fatalf("Members = %+v", m)
	}
	writeAt(t, paths[0], base+3, make([]byte, 100)) // member 0's copy goes bad
	if _, err := bm.ReadAt(got, 3); err != nil || !bytes.Equal(got, dirty) {
		t.Fatalf("ReadAt with member 0 failed = %v, equal %v", err, bytes.Equal(got, dirty))
	}
	again := pattern(11, 50)
	if _, err := bm.WriteAt(again, 10); err != nil {
		t.Fatal(err)
	}
	if err := blockdev.WriteZeroes(bm, second, 4096, false); err != nil {
		t.Fatal(err)
	}
	mustClose(t, v)
	if got := readAt(t, paths[0], base+10, 50); bytes.Equal(got, again) {
		t.Fatal("a failed member got a bitmap write")
	}
	if got := readAt(t, paths[0], base+second, 4096); !bytes.Equal(got, used) {
		t.Fatal("a failed member got a bitmap zeroing")
	}
	for _, p := range paths[1:] {
		if got := readAt(t, p, base+10, 50); !bytes.Equal(got, again) {
			t.Fatalf("%s: write missing", p)
		}
		if got := readAt(t, p, base+second, 4096); !bytes.Equal(got, make([]byte, 4096)) {
			t.Fatalf("%s: zeroing missing", p)
		}
	}

	// Superblock updates skip the failed member too.
	if sb, _, err := Examine(paths[0]); err != nil || sb.Seq != 1 {
		t.Fatalf("failed member's superblock: %v, %v; want seq 1", sb, err)
	}
	v = mustOpen(t, paths, OpenOptions{})
	defer mustClose(t, v)
	if !v.Members()[0].Failed || v.Super().Seq != 2 {
		t.Fatalf("after reopen: members %+v seq %d", v.Members(), v.Super().Seq)
	}
}

// TestBitmapAllFailed: with every member failed, no superblock can be
// written (ErrNoMemberLeft, and Super is unchanged), and the bitmap takes
// writes and flushes without persisting them, keeping them in memory,
// and tells OnNoMemberLeft of each (only then).
func TestBitmapAllFailed(t *testing.T) {
	paths := sparseDisks(t, 2, 8*mib)
	mustCreate(t, paths, CreateOptions{})
	var told atomic.Int32
	v := mustOpen(t, paths, OpenOptions{OnNoMemberLeft: func() { told.Add(1) }})
	defer mustClose(t, v)
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.FailedMembers = 1 }); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Bitmap().WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if n := told.Load(); n != 0 {
		t.Fatalf("OnNoMemberLeft told %d times with a member left", n)
	}
	before := hashes(t, paths)
	err := v.UpdateSuper(func(sb *meta.Superblock) { sb.FailedMembers = 3 })
	if !errors.Is(err, ErrNoMemberLeft) {
		t.Fatalf("UpdateSuper marking every member failed = %v, want ErrNoMemberLeft", err)
	}
	if sb := v.Super(); sb.FailedMembers != 1 || sb.Seq != 2 {
		t.Fatalf("a failed update changed Super: seq %d, failed %#x", sb.Seq, sb.FailedMembers)
	}
	if m := v.Members(); !m[0].Failed || !m[1].Failed {
		t.Fatalf("Members = %+v, want both failed", m)
	}
	bits := bytes.Repeat([]byte{0x3C}, 4096)
	if _, err := v.Bitmap().WriteAt(bits, 4096); err != nil {
		t.Fatal(err)
	}
	if err := v.Bitmap().Flush(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(bits))
	if _, err := v.Bitmap().ReadAt(got, 4096); err != nil || !bytes.Equal(got, bits) {
		t.Fatalf("bitmap read with no member left: %v, equal %v", err, bytes.Equal(got, bits))
	}
	if n := told.Load(); n != 2 {
		t.Fatalf("OnNoMemberLeft told %d times by a write and a flush with no member left, want 2", n)
	}
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.Role = meta.Primary }); !errors.Is(err, ErrNoMemberLeft) {
		t.Fatalf("UpdateSuper with no member left = %v, want ErrNoMemberLeft", err)
	}
	checkUnchanged(t, paths, before)
}
