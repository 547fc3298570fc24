package volume

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netraid/netraid/meta"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
)

// sparseDisks makes n sparse files of the given size in a fresh temporary
// directory and returns their paths.
func sparseDisks(t *testing.T, n int, size int64) []string {
	t.Helper()
	dir := t.TempDir()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("disk%d", i))
		f, err := os.Create(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := os.Truncate(paths[i], size); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

func mustCreate(t *testing.T, paths []string, o CreateOptions) *meta.Superblock {
	t.Helper()
	if o.Name == "" {
		o.Name = "vol"
	}
	sb, err := Create(paths, o)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return sb
}

func mustOpen(t *testing.T, paths []string, o OpenOptions) *Volume {
	t.Helper()
	v, err := Open(paths, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return v
}

func mustClose(t *testing.T, v *Volume) {
	t.Helper()
	if err := v.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// hashes returns the SHA-256 of each file, to show that a refusal wrote
// nothing.
func hashes(t *testing.T, paths []string) [][32]byte {
	t.Helper()
	out := make([][32]byte, len(paths))
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		h.Sum(out[i][:0])
	}
	return out
}

func checkUnchanged(t *testing.T, paths []string, before [][32]byte) {
	t.Helper()
	for i, h := range hashes(t, paths) {
		if h != before[i] {
			t.Errorf("%s changed", paths[i])
		}
	}
}

// refused checks that err is an *AssembleError for path (empty: any) that
// wraps want and says every one of says.
func refused(t *testing.T, err error, path string, want error, says ...string) {
	t.Helper()
	var ae *AssembleError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an *AssembleError", err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %v", err, want)
	}
	if path != "" && ae.Path != path {
		t.Fatalf("error %q names %q, want %q", err, ae.Path, path)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}

// readAt reads n bytes at off of a file, bypassing netraid.
func readAt(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeAt writes b at off of a file, bypassing netraid.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func pattern(seed byte, n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*31+i/4096)
	}
	return b
}

// newLogger logs text to w.
func newLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
