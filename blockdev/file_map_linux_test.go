package blockdev_test

import (
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// writeAll fills [off, off+n) of d with a pattern through aligned buffers.
func writeAll(t *testing.T, d blockdev.Device, off, n int64) {
	t.Helper()
	b := blockdev.GetBuffer(int(n), 4096)
	defer blockdev.PutBuffer(b)
	devtest.FillPattern(b, 1, off)
	if _, err := d.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestFileTrimShowsAsHole(t *testing.T) {
	const size = 1 << 20
	f := openFile(t, sparseFile(t, size), blockdev.FileOptions{})
	t.Cleanup(func() { f.Close() })
	ext, err := f.Map(0, size)
	if err != nil {
		t.Fatal(err)
	}
	if want := []blockdev.Extent{{Off: 0, Len: size, Hole: true, Zero: true}}; !reflect.DeepEqual(ext, want) {
		t.Fatalf("fresh sparse file maps as %+v, want one hole", ext)
	}
	writeAll(t, f, 0, size)
	if err := f.Trim(256<<10, 256<<10); err != nil {
		t.Fatal(err)
	}
	want := []blockdev.Extent{
		{Off: 0, Len: 256 << 10},
		{Off: 256 << 10, Len: 256 << 10, Hole: true, Zero: true},
		{Off: 512 << 10, Len: 512 << 10},
	}
	if ext, err = f.Map(0, size); err != nil || !reflect.DeepEqual(ext, want) {
		t.Fatalf("after Trim, Map = %+v, %v; want %+v", ext, err, want)
	}
	// A range inside the hole, and one straddling its end.
	if ext, _ = f.Map(300<<10, 1000); len(ext) != 1 || !ext[0].Hole || ext[0].Off != 300<<10 || ext[0].Len != 1000 {
		t.Fatalf("Map inside the hole = %+v", ext)
	}
	ext, _ = f.Map(500<<10, 24<<10)
	if len(ext) != 2 || !ext[0].Hole || ext[1].Hole || ext[1].Off != 512<<10 {
		t.Fatalf("Map across the hole's end = %+v", ext)
	}
}

func TestLoopDiscardPunchesBackingFile(t *testing.T) {
	const size = 1 << 20
	dev := loopDevice(t, size)
	backing := strings.TrimSpace(loopBacking(t, dev))
	f := openFile(t, dev, blockdev.FileOptions{Exclusive: true})
	t.Cleanup(func() { f.Close() })
	writeAll(t, f, 0, size)
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Trim(128<<10, 128<<10); err != nil {
		t.Fatal(err)
	}
	b := openFile(t, backing, blockdev.FileOptions{ReadOnly: true})
	defer b.Close()
	ext, err := b.Map(0, size)
	if err != nil {
		t.Fatal(err)
	}
	hole := false
	for _, x := range ext {
		if x.Hole && x.Off <= 128<<10 && x.Off+x.Len >= 256<<10 {
			hole = true
		}
	}
	if !hole {
		t.Fatalf("BLKDISCARD of [128K, 256K) left no hole in the backing file: %+v", ext)
	}
}

// loopBacking returns the backing file of a loop device.
func loopBacking(t *testing.T, dev string) string {
	t.Helper()
	name := dev[strings.LastIndex(dev, "/")+1:]
	b, err := os.ReadFile("/sys/block/" + name + "/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFileReadOnly(t *testing.T) {
	f := openFile(t, sparseFile(t, 1<<20), blockdev.FileOptions{ReadOnly: true})
	t.Cleanup(func() { f.Close() })
	b := blockdev.GetBuffer(4096, 4096)
	defer blockdev.PutBuffer(b)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatalf("read: %v", err)
	}
	_, werr := f.WriteAt(b, 0)
	_, ferr := f.WriteAtFUA(b, 0)
	for name, err := range map[string]error{
		"write": werr, "fua": ferr, "trim": f.Trim(0, 4096), "zero": f.WriteZeroes(0, 4096, true),
	} {
		if !errors.Is(err, blockdev.ErrReadOnly) {
			t.Errorf("%s on a read-only device: %v, want ErrReadOnly", name, err)
		}
	}
}

func TestOpenFileRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{dir + "/missing", dir, "/dev/null"} {
		if f, err := blockdev.OpenFile(path, blockdev.FileOptions{}); err == nil {
			f.Close()
			t.Errorf("OpenFile(%s) succeeded", path)
		}
	}
}

func TestFileSizeRoundsDown(t *testing.T) {
	f := openFile(t, sparseFile(t, 10000), blockdev.FileOptions{})
	t.Cleanup(func() { f.Close() })
	bs := int64(f.BlockSize())
	if size := f.Size(); size%bs != 0 || size > 10000 || size <= 10000-bs {
		t.Fatalf("Size() = %d for a 10000-byte file with %d-byte blocks", size, bs)
	}
}

func TestFileErrorNamesDeviceAndRange(t *testing.T) {
	path := sparseFile(t, 1<<20)
	f := openFile(t, path, blockdev.FileOptions{})
	t.Cleanup(func() { f.Close() })
	// Shrinking the file under the open device makes reads come back short.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	b := blockdev.GetBuffer(4096, 4096)
	defer blockdev.PutBuffer(b)
	_, err := f.ReadAt(b, 8192)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read past the shrunk file: %v, want io.ErrUnexpectedEOF", err)
	}
	if want := "blockdev: read " + path + " off 8192 len 4096: "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q does not start with %q", err, want)
	}
}
