package devtest_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPattern(t *testing.T) {
	a := devtest.Pattern(1, 1000, 5000)
	if !bytes.Equal(a, devtest.Pattern(1, 1000, 5000)) {
		t.Fatal("Pattern is not deterministic")
	}
	for _, sub := range [][2]int{{0, 1}, {3, 17}, {7, 8}, {4999, 1}, {1234, 2345}} {
		if !bytes.Equal(a[sub[0]:sub[0]+sub[1]], devtest.Pattern(1, 1000+int64(sub[0]), sub[1])) {
			t.Fatalf("sub-range %v of a pattern differs from the pattern of the sub-range", sub)
		}
	}
	if bytes.Equal(a, devtest.Pattern(2, 1000, 5000)) {
		t.Fatal("different seeds give the same data")
	}
	if bytes.Equal(a[:8], make([]byte, 8)) || bytes.Equal(devtest.Pattern(0, 0, 8), make([]byte, 8)) {
		t.Fatal("pattern starts with zeroes, which a zero-filled device would pass")
	}
	p := make([]byte, 100)
	devtest.FillPattern(p, 1, 1000)
	if !bytes.Equal(p, a[:100]) {
		t.Fatal("FillPattern differs from Pattern")
	}
}

func TestMem(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		return blockdev.NewMem(size)
	}, devtest.Options{Unaligned: true, TrimZeroes: true, Size: 2 << 20})
}

// TestSuiteCatchesBrokenDevices runs the suite, in a child process, on
// devices broken in one way each, and checks that the subtest meant to
// catch that way fails.
func TestSuiteCatchesBrokenDevices(t *testing.T) {
	for kind, sub := range map[string]string{
		"none":           "",
		"keeps-p":        "NoRetain",
		"no-range-check": "OutOfRange",
		"drops-tail":     "RoundTrip",
		"zeroes-noop":    "WriteZeroes",
		"fua-lost":       "FUA",
		"vector-one-off": "Vector",
		"trim-garbage":   "Trim",
		"map-gap":        "Map",
		"checksum-wrong": "Checksum",
		"close-noop":     "Close",
	} {
		t.Run(kind, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenDevice$", "-test.v")
			cmd.Env = append(os.Environ(), "DEVTEST_BROKEN="+kind)
			out, err := cmd.CombinedOutput()
			if sub == "" {
				if err != nil {
					t.Fatalf("the suite failed a sound device: %v\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(string(out), "--- FAIL: TestBrokenDevice/"+sub+" ") {
				t.Fatalf("device %q: subtest %s did not fail (%v):\n%s", kind, sub, err, out)
			}
		})
	}
}

// TestBrokenDevice is the child side of TestSuiteCatchesBrokenDevices.
func TestBrokenDevice(t *testing.T) {
	kind := os.Getenv("DEVTEST_BROKEN")
	if kind == "" {
		t.Skip("only run as a child of TestSuiteCatchesBrokenDevices")
	}
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		return &broken{Mem: blockdev.NewMem(size), kind: kind}
	}, devtest.Options{Unaligned: true, TrimZeroes: true, Size: 1 << 20})
}

// broken is a Mem that breaks the contract in the way kind names.
type broken struct {
	*blockdev.Mem
	kind string

	mu      sync.Mutex
	pending []pendingWrite // keeps-p: writes applied later from p
}

type pendingWrite struct {
	p   []byte
	off int64
}

func (b *broken) apply() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range b.pending {
		b.Mem.WriteAt(w.p, w.off)
	}
	b.pending = nil
}

func (b *broken) ReadAt(p []byte, off int64) (int, error) {
	b.apply()
	return b.Mem.ReadAt(p, off)
}

func (b *broken) WriteAt(p []byte, off int64) (int, error) {
	size := b.Size()
	switch {
	case b.kind == "keeps-p" && blockdev.CheckRange(size, off, int64(len(p))) == nil:
		b.mu.Lock()
		b.pending = append(b.pending, pendingWrite{p, off})
		b.mu.Unlock()
		return len(p), nil
	case b.kind == "no-range-check" && off >= 0 && off < size && int64(len(p)) > size-off:
		b.Mem.WriteAt(p[:size-off], off)
		return len(p), nil
	case b.kind == "drops-tail" && off >= 0 && off+int64(len(p)) == size && len(p) > 1:
		return b.Mem.WriteAt(p[:len(p)-1], off)
	}
	return b.Mem.WriteAt(p, off)
}

func (b *broken) WriteAtFUA(p []byte, off int64) (int, error) {
	if b.kind == "fua-lost" {
		return len(p), blockdev.CheckRange(b.Size(), off, int64(len(p)))
	}
	b.apply()
	return b.Mem.WriteAtFUA(p, off)
}

func (b *broken) ReadAtv(bufs [][]byte, off int64) (int, error) {
	b.apply()
	return b.Mem.ReadAtv(bufs, off)
}

// WriteAtv, for vector-one-off, writes every buffer at off, as a loop that
// forgets to advance would.
func (b *broken) WriteAtv(bufs [][]byte, off int64) (int, error) {
	b.apply()
	if b.kind != "vector-one-off" {
		return b.Mem.WriteAtv(bufs, off)
	}
	if err := blockdev.CheckRange(b.Size(), off, blockdev.VecLen(bufs)); err != nil {
		return 0, err
	}
	n := 0
	for _, p := range bufs {
		k, err := b.Mem.WriteAt(p, off)
		if n += k; err != nil {
			return n, err
		}
	}
	return n, nil
}

func (b *broken) Flush() error {
	b.apply()
	return b.Mem.Flush()
}

func (b *broken) WriteZeroes(off, n int64, mayTrim bool) error {
	if b.kind == "zeroes-noop" {
		return blockdev.CheckRange(b.Size(), off, n)
	}
	b.apply()
	return b.Mem.WriteZeroes(off, n, mayTrim)
}

func (b *broken) Trim(off, n int64) error {
	if b.kind == "trim-garbage" && blockdev.CheckRange(b.Size(), off, n) == nil {
		_, err := b.Mem.WriteAt(bytes.Repeat([]byte{0xff}, int(n)), off)
		return err
	}
	b.apply()
	return b.Mem.Trim(off, n)
}

func (b *broken) Map(off, n int64) ([]blockdev.Extent, error) {
	ext, err := blockdev.Map(b.Mem, off, n)
	if b.kind == "map-gap" && err == nil && n > 1 {
		ext[0].Len = n / 2
	}
	return ext, err
}

func (b *broken) Checksum(off, n int64) (blockdev.Sum, error) {
	b.apply()
	s, err := blockdev.Checksum(b.Mem, off, n)
	if b.kind == "checksum-wrong" && n > 0 {
		s[0] ^= 1
	}
	return s, err
}

func (b *broken) Close() error {
	if b.kind == "close-noop" {
		return nil
	}
	return b.Mem.Close()
}
