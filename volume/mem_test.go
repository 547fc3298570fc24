package volume

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// TestMemLifecycle runs a volume on in-memory disks through OpenDisk:
// create, open in another order, data and bitmap I/O, a superblock
// update, a reopen, and a replace, with the checks of the file-backed
// tests.
func TestMemLifecycle(t *testing.T) {
	ds, names := newMemDisks(t, 4, 4*mib)
	memCreate(t, ds, names[:3], CreateOptions{Chunk: 64 * kib})
	v := memOpen(t, ds, []string{names[2], names[0], names[1]}, OpenOptions{})
	sb := v.Super()
	if sb.Members != 3 || sb.Seq != 1 {
		t.Fatalf("Super = %+v", sb)
	}
	for i, m := range v.Members() {
		if m.Path != names[i] || m.Size != 4*mib || m.Failed {
			t.Fatalf("member %d = %+v", i, m)
		}
	}
	data := pattern(1, 5*64*kib+300)
	if _, err := v.Data().WriteAt(data, 1000); err != nil {
		t.Fatal(err)
	}
	bits := bytes.Repeat([]byte{0x5A}, 512)
	if _, err := v.Bitmap().WriteAt(bits, 512); err != nil {
		t.Fatal(err)
	}
	if err := v.Data().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := v.Bitmap().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.Role = meta.Primary }); err != nil {
		t.Fatal(err)
	}
	// Chunk 1 is member 1's first chunk.
	if got := ds.mem(names[1]).Bytes()[sb.DataOffset : sb.DataOffset+100]; !bytes.Equal(got, data[64*kib-1000:][:100]) {
		t.Fatal("chunk 1 is not at the start of member 1's data area")
	}
	// While the volume holds the disks, they do not open again.
	if _, err := Open(names[:3], OpenOptions{OpenDisk: ds.openFunc}); !errors.Is(err, blockdev.ErrBusy) {
		t.Fatalf("Open of disks in use: %v, want ErrBusy", err)
	}
	mustClose(t, v)

	v = memOpen(t, ds, names[:3], OpenOptions{})
	if got := v.Super(); got.Seq != 2 || got.Role != meta.Primary {
		t.Fatalf("Super after reopen = %+v", got)
	}
	checkData(t, v, 1000, data)
	checkBitmap(t, v, 512, bits)

	if err := v.Replace(1, names[3], false, func(sb *meta.Superblock) { sb.DiskState = meta.Inconsistent }); err != nil {
		t.Fatal(err)
	}
	if m := v.Members()[1]; m.Path != names[3] || m.Failed {
		t.Fatalf("member 1 after Replace = %+v", m)
	}
	mustClose(t, v)
	v = memOpen(t, ds, []string{names[3], names[2], names[0]}, OpenOptions{})
	defer mustClose(t, v)
	// Seq 3 went to the new disk alone, seq 4 to every member.
	if got := v.Super(); got.Seq != 4 || got.DiskState != meta.Inconsistent {
		t.Fatalf("Super after replace and reopen: seq %d, disk state %v", got.Seq, got.DiskState)
	}
	checkBitmap(t, v, 512, bits)
}

// TestMemCrash crashes the disks of an open volume: what was flushed
// (data, bitmap, superblock updates) is there when it opens again, what
// was not is gone.
func TestMemCrash(t *testing.T) {
	ds, names := newMemDisks(t, 2, 4*mib)
	memCreate(t, ds, names, CreateOptions{Chunk: 64 * kib})
	v := memOpen(t, ds, names, OpenOptions{})
	kept, lost := pattern(1, 128*kib), pattern(2, 128*kib)
	bits := bytes.Repeat([]byte{0xC3}, 512)
	if _, err := v.Data().WriteAt(kept, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Bitmap().WriteAt(bits, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.Generations.Current = 7 }); err != nil {
		t.Fatal(err) // flushes every member: data and bitmap too
	}
	if _, err := v.Data().WriteAt(lost, 256*kib); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Bitmap().WriteAt(make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
	ds.crash(0b11)
	v.Close() // the handles are cut off: it fails, and leaves nothing behind

	v = memOpen(t, ds, names, OpenOptions{})
	defer mustClose(t, v)
	if got := v.Super(); got.Seq != 2 || got.Generations.Current != 7 {
		t.Fatalf("Super after crash = %+v", got)
	}
	checkData(t, v, 0, kept)
	checkData(t, v, 256*kib, make([]byte, len(lost)))
	checkBitmap(t, v, 0, bits)
}

// TestMemDistinctByName: with OpenDisk the names are compared, nothing
// else.
func TestMemDistinctByName(t *testing.T) {
	ds, names := newMemDisks(t, 2, 4*mib)
	_, err := Create([]string{names[0], names[1], names[0]}, CreateOptions{Name: "v", OpenDisk: ds.openFunc})
	refused(t, err, names[0], ErrDuplicate, "given twice")
	memCreate(t, ds, names, CreateOptions{})
	_, err = Open([]string{names[1], names[0], names[1]}, OpenOptions{OpenDisk: ds.openFunc})
	refused(t, err, names[1], ErrDuplicate, "given twice")
	_, err = Open([]string{names[0], "nosuch"}, OpenOptions{OpenDisk: ds.openFunc})
	refused(t, err, "nosuch", os.ErrNotExist, "cannot open")
}

func checkData(t *testing.T, v *Volume, off int64, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := v.Data().ReadAt(got, off); err != nil {
		t.Fatalf("data read at %d: %v", off, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("data at %d is not what was written", off)
	}
}

func checkBitmap(t *testing.T, v *Volume, off int64, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := v.Bitmap().ReadAt(got, off); err != nil {
		t.Fatalf("bitmap read at %d: %v", off, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("bitmap at %d = % x..., want % x...", off, got[:8], want[:8])
	}
}
