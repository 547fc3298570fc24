package blockdev

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFileIOErr(t *testing.T) {
	f := &File{path: "/dev/loop3"}
	cases := []struct {
		op   string
		err  error
		msg  string
		also error
	}{
		{opWrite, unix.EIO, "blockdev: write /dev/loop3 off 4096 len 512: input/output error", nil},
		{opWrite, unix.ENOSPC, "blockdev: write /dev/loop3 off 4096 len 512: no space left on device", ErrNoSpace},
		{opTrim, unix.EROFS, "blockdev: trim /dev/loop3 off 4096 len 512: read-only file system", ErrReadOnly},
		{opFlush, unix.EIO, "blockdev: flush /dev/loop3: input/output error", nil},
	}
	for _, c := range cases {
		err := f.ioErr(c.op, 4096, 512, c.err)
		if err.Error() != c.msg {
			t.Errorf("ioErr = %q, want %q", err, c.msg)
		}
		if !errors.Is(err, c.err) || (c.also != nil && !errors.Is(err, c.also)) {
			t.Errorf("ioErr(%v) = %v does not wrap %v and %v", c.err, err, c.err, c.also)
		}
	}
}

// TestFileFallbacks takes the paths used when the kernel lacks pwritev2
// RWF_DSYNC, fallocate/BLKZEROOUT or discard, as if it had said so.
func TestFileFallbacks(t *testing.T) {
	f := openTempFile(t, 1<<20)
	f.noFUA.Store(true)
	f.noZero.Store(true)
	f.noDiscard.Store(true)

	b := GetBuffer(64<<10, poolAlign)
	defer PutBuffer(b)
	for i := range b {
		b[i] = byte(i%251 + 1)
	}
	if n, err := f.WriteAtFUA(b, 0); err != nil || n != len(b) {
		t.Fatalf("WriteAtFUA fallback = %d, %v", n, err)
	}
	if err := f.Trim(0, 4096); err != nil {
		t.Fatalf("Trim without discard: %v", err)
	}
	if err := f.WriteZeroes(8192, 8192, true); err != nil {
		t.Fatalf("WriteZeroes fallback: %v", err)
	}
	got := GetBuffer(len(b), poolAlign)
	defer PutBuffer(got)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), b...)
	clear(want[8192:16384])
	if !bytes.Equal(got, want) {
		t.Fatal("fallback paths wrote the wrong data (Trim must leave data, WriteZeroes zero its range)")
	}
}

// tempFile makes a sparse regular file of size bytes in a temporary
// directory and returns its path.
func tempFile(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	return path
}

// openTempFile opens a sparse regular file of size bytes in a temporary
// directory, closed when the test ends.
func openTempFile(t *testing.T, size int64) *File {
	t.Helper()
	f, err := OpenFile(tempFile(t, size), FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
