package blockdev_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// sparseFile creates a zero-filled sparse file of the given size under
// t.TempDir() and returns its path.
func sparseFile(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

// openFile opens path with OpenFile, failing the test on error.
func openFile(t *testing.T, path string, o blockdev.FileOptions) *blockdev.File {
	t.Helper()
	f, err := blockdev.OpenFile(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// loopDevice attaches a fresh sparse file of the given size to a loop
// device with direct I/O and detaches it when the test ends. It skips the
// test when not root or when loop devices are unavailable.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	backing := sparseFile(t, size)
	out, err := exec.Command("losetup", "--find", "--show", "--direct-io=on", backing).CombinedOutput()
	if err != nil {
		t.Skipf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// engines are the I/O engines a File can run on; each File test that
// moves data runs on both. EngineAIO skips where the kernel has no AIO.
var engines = []blockdev.Engine{blockdev.EngineSync, blockdev.EngineAIO}

// eachEngine runs fn as a subtest per engine.
func eachEngine(t *testing.T, fn func(t *testing.T, e blockdev.Engine)) {
	for _, e := range engines {
		t.Run(e.String(), func(t *testing.T) {
			if e == blockdev.EngineAIO {
				if err := blockdev.AIOAvailable(); err != nil {
					t.Skipf("no native AIO: %v", err)
				}
			}
			fn(t, e)
		})
	}
}

func TestFileConformance(t *testing.T) {
	eachEngine(t, func(t *testing.T, e blockdev.Engine) {
		devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
			return openFile(t, sparseFile(t, size), blockdev.FileOptions{Exclusive: true, Engine: e})
		}, devtest.Options{TrimZeroes: true})
	})
}

func TestAlignedFileConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		return blockdev.NewAligned(openFile(t, sparseFile(t, size), blockdev.FileOptions{}))
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}

func TestAlignedMemConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		return blockdev.NewAligned(blockdev.NewMem(size))
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}

func TestLoopConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		f := openFile(t, loopDevice(t, size), blockdev.FileOptions{Exclusive: true})
		if !f.IsBlockDevice() {
			t.Fatalf("%s: IsBlockDevice() = false", f.Path())
		}
		return blockdev.NewAligned(f)
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}

func TestLoopRawConformance(t *testing.T) {
	eachEngine(t, func(t *testing.T, e blockdev.Engine) {
		devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
			return openFile(t, loopDevice(t, size), blockdev.FileOptions{Engine: e})
		}, devtest.Options{TrimZeroes: true})
	})
}

func TestFileUnaligned(t *testing.T) {
	f := openFile(t, sparseFile(t, 1<<20), blockdev.FileOptions{})
	t.Cleanup(func() { f.Close() })
	bs := f.BlockSize()
	buf := blockdev.GetBuffer(2*bs+1, 4096)
	defer blockdev.PutBuffer(buf)
	cases := []struct {
		name string
		p    []byte
		off  int64
	}{
		{"offset", buf[:bs], 1},
		{"offset half block", buf[:bs], int64(bs / 2)},
		{"length", buf[:bs+1], 0},
		{"short length", buf[:bs-1], 0},
		{"address", buf[1 : bs+1], 0},
	}
	for _, c := range cases {
		if _, err := f.ReadAt(c.p, c.off); !errors.Is(err, blockdev.ErrUnaligned) {
			t.Errorf("%s: ReadAt = %v, want ErrUnaligned", c.name, err)
		}
		if _, err := f.WriteAt(c.p, c.off); !errors.Is(err, blockdev.ErrUnaligned) {
			t.Errorf("%s: WriteAt = %v, want ErrUnaligned", c.name, err)
		}
		if _, err := f.WriteAtFUA(c.p, c.off); !errors.Is(err, blockdev.ErrUnaligned) {
			t.Errorf("%s: WriteAtFUA = %v, want ErrUnaligned", c.name, err)
		}
	}
	for _, r := range [][2]int64{{1, int64(bs)}, {0, int64(bs) + 1}, {int64(bs), 1}} {
		if err := f.Trim(r[0], r[1]); !errors.Is(err, blockdev.ErrUnaligned) {
			t.Errorf("Trim(%d, %d) = %v, want ErrUnaligned", r[0], r[1], err)
		}
		if err := f.WriteZeroes(r[0], r[1], false); !errors.Is(err, blockdev.ErrUnaligned) {
			t.Errorf("WriteZeroes(%d, %d) = %v, want ErrUnaligned", r[0], r[1], err)
		}
	}
}

func TestFileExclusive(t *testing.T) {
	path := sparseFile(t, 1<<20)
	testExclusive(t, path)
}

func TestLoopExclusive(t *testing.T) {
	testExclusive(t, loopDevice(t, 1<<20))
}

func testExclusive(t *testing.T, path string) {
	first := openFile(t, path, blockdev.FileOptions{Exclusive: true})
	for _, o := range []blockdev.FileOptions{{Exclusive: true}, {Exclusive: true, ReadOnly: true}} {
		second, err := blockdev.OpenFile(path, o)
		if err == nil {
			second.Close()
			t.Fatalf("second exclusive open (%+v) of %s succeeded", o, path)
		}
		if !errors.Is(err, blockdev.ErrBusy) || !strings.Contains(err.Error(), path) {
			t.Fatalf("second exclusive open: %v, want ErrBusy naming %s", err, path)
		}
	}
	// A shared open is not refused by the lock.
	shared := openFile(t, path, blockdev.FileOptions{ReadOnly: true})
	shared.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := openFile(t, path, blockdev.FileOptions{Exclusive: true})
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
