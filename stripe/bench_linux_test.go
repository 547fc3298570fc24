package stripe

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// Geometry of the sequential benchmark: two members of benchMember bytes
// in 64 KiB chunks, read or written benchIO bytes at a time.
const (
	benchMember = 64 << 20
	benchChunk  = 64 << 10
	benchIO     = 1 << 20
)

// BenchmarkSequential reads and writes a stripe of two O_DIRECT files
// sequentially in 1 MiB requests, with the members' vectored I/O (one
// preadv/pwritev per member and request) and without it (one pread/pwrite
// per 64 KiB chunk piece).
func BenchmarkSequential(b *testing.B) {
	dir := diskDir(b)
	paths := []string{filepath.Join(dir, "m0"), filepath.Join(dir, "m1")}
	for i, p := range paths {
		fillFile(b, p, int64(i+1))
	}
	for _, op := range []string{"read", "write"} {
		for _, vectored := range []bool{true, false} {
			name := op + "/per-extent"
			if vectored {
				name = op + "/vectored"
			}
			b.Run(name, func(b *testing.B) { benchSequential(b, paths, op, vectored) })
		}
	}
}

func benchSequential(b *testing.B, paths []string, op string, vectored bool) {
	disks := make([]blockdev.Device, len(paths))
	for i, p := range paths {
		f, err := blockdev.OpenFile(p, blockdev.FileOptions{})
		if err != nil {
			b.Fatal(err)
		}
		disks[i] = f
		if !vectored {
			disks[i] = scalar{f}
		}
	}
	s, err := New(disks, benchChunk)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	buf := blockdev.GetBuffer(benchIO, 4096)
	defer blockdev.PutBuffer(buf)
	copy(buf, devtest.Pattern(9, 0, benchIO))
	io := s.ReadAt
	if op == "write" {
		io = s.WriteAt
	}
	b.SetBytes(benchIO)
	var off int64
	for b.Loop() {
		if n, err := io(buf, off); err != nil || n != benchIO {
			b.Fatalf("%s at %d = %d, %v", op, off, n, err)
		}
		if off += benchIO; off == s.Size() {
			off = 0
		}
	}
}

// diskDir returns a directory on a disk file system, where O_DIRECT works:
// the test's temporary directory, unless that is on tmpfs, in which case a
// directory under /var/tmp removed when the benchmark ends.
func diskDir(b *testing.B) string {
	dir := b.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		b.Fatal(err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		return dir
	}
	dir, err := os.MkdirTemp("/var/tmp", "netraid-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fillFile creates a member file written in full (so that reads reach the
// disk rather than a hole), flushed.
func fillFile(b *testing.B, path string, seed int64) {
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(path, benchMember); err != nil {
		b.Fatal(err)
	}
	f, err := blockdev.OpenFile(path, blockdev.FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := blockdev.GetBuffer(benchIO, 4096)
	defer blockdev.PutBuffer(buf)
	for off := int64(0); off < benchMember; off += benchIO {
		copy(buf, devtest.Pattern(seed, off, benchIO))
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Flush(); err != nil {
		b.Fatal(err)
	}
}
