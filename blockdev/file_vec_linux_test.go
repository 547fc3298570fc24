package blockdev_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// carve cuts n aligned pieces of bs bytes out of one aligned buffer, in
// reverse order, so that consecutive buffers of the vector are not
// consecutive in memory. Its pieces hold Pattern(seed, off, n*bs) in
// vector order, or zeroes if seed is 0.
func carve(n, bs int, seed, off int64) [][]byte {
	back := blockdev.GetBuffer(n*bs, 4096)
	clear(back)
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = back[(n-1-i)*bs : (n-i)*bs : (n-i)*bs]
		if seed != 0 {
			devtest.FillPattern(bufs[i], seed, off+int64(i*bs))
		}
	}
	return bufs
}

// TestFileVector round-trips vectors through an O_DIRECT file, one of
// them longer than IOV_MAX, and checks them against plain reads.
func TestFileVector(t *testing.T) {
	eachEngine(t, testFileVector)
}

func testFileVector(t *testing.T, e blockdev.Engine) {
	f := openFile(t, sparseFile(t, 16<<20), blockdev.FileOptions{Engine: e})
	t.Cleanup(func() { f.Close() })
	bs := f.BlockSize()
	for _, c := range []struct {
		name string
		n    int   // buffers
		off  int64 // in blocks
		fua  bool
	}{
		{"one buffer", 1, 3, false},
		{"chunk pieces", 8, 128, false},
		{"chunk pieces FUA", 8, 1000, true},
		{"over IOV_MAX", 2500, 5, false},
		{"over IOV_MAX FUA", 1100, 2700, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			off, seed := c.off*int64(bs), c.off+1
			bufs := carve(c.n, bs, seed, off)
			write := f.WriteAtv
			if c.fua {
				write = f.WriteAtvFUA
			}
			if n, err := write(bufs, off); err != nil || n != c.n*bs {
				t.Fatalf("write of %d buffers = %d, %v", c.n, n, err)
			}
			want := devtest.Pattern(seed, off, c.n*bs)
			plain := blockdev.GetBuffer(c.n*bs, 4096)
			defer blockdev.PutBuffer(plain)
			if _, err := f.ReadAt(plain, off); err != nil || !bytes.Equal(plain, want) {
				t.Fatalf("ReadAt after vectored write: %v, data equal %v", err, bytes.Equal(plain, want))
			}
			got := carve(c.n, bs, 0, 0)
			if n, err := f.ReadAtv(got, off); err != nil || n != c.n*bs {
				t.Fatalf("ReadAtv of %d buffers = %d, %v", c.n, n, err)
			}
			if !bytes.Equal(bytes.Join(got, nil), want) {
				t.Fatal("ReadAtv read other data than was written")
			}
		})
	}
}

// TestFileVectorRefuses checks that File refuses a vector with any
// unaligned buffer, out of range, read-only or closed, before writing any
// of it, with an error naming the op, path and range.
func TestFileVectorRefuses(t *testing.T) {
	path := sparseFile(t, 1<<20)
	f := openFile(t, path, blockdev.FileOptions{})
	bs := f.BlockSize()
	back := blockdev.GetBuffer(4*bs+1, 4096)
	defer blockdev.PutBuffer(back)
	devtest.FillPattern(back, 1, 0)
	good := back[:bs]
	cases := []struct {
		name string
		bufs [][]byte
		off  int64
		want error
		msg  string
	}{
		{"address", [][]byte{good, back[bs+1 : 2*bs+1]}, 0, blockdev.ErrUnaligned, "buffer 1 of"},
		{"length", [][]byte{back[:bs/2], back[bs : 2*bs+bs/2]}, 0, blockdev.ErrUnaligned, "buffer 0 of"},
		{"offset", [][]byte{good, back[2*bs : 3*bs]}, int64(bs / 2), blockdev.ErrUnaligned, ""},
		{"range", [][]byte{good, back[2*bs : 3*bs]}, f.Size() - int64(bs), blockdev.ErrOutOfRange, ""},
	}
	for _, c := range cases {
		for what, call := range map[string]func([][]byte, int64) (int, error){
			"read": f.ReadAtv, "write": f.WriteAtv, "write-fua": f.WriteAtvFUA,
		} {
			n, err := call(c.bufs, c.off)
			if n != 0 || !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("%s: %s = %d, %v; want 0, %v saying %q", c.name, what, n, err, c.want, c.msg)
			}
			if c.want == blockdev.ErrUnaligned && !strings.Contains(err.Error(), what+" "+path+" off ") {
				t.Errorf("%s: %s error %q does not name the op, path and range", c.name, what, err)
			}
		}
	}
	plain := blockdev.GetBuffer(2*bs, 4096)
	defer blockdev.PutBuffer(plain)
	if _, err := f.ReadAt(plain, 0); err != nil || !bytes.Equal(plain, make([]byte, 2*bs)) {
		t.Fatalf("a refused vector wrote something (%v)", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAtv([][]byte{good}, 0); !errors.Is(err, blockdev.ErrClosed) {
		t.Errorf("ReadAtv after Close = %v", err)
	}

	ro := openFile(t, path, blockdev.FileOptions{ReadOnly: true})
	defer ro.Close()
	if _, err := ro.WriteAtv([][]byte{good}, 0); !errors.Is(err, blockdev.ErrReadOnly) {
		t.Errorf("WriteAtv on a read-only file = %v", err)
	}
	if _, err := ro.WriteAtvFUA([][]byte{good}, 0); !errors.Is(err, blockdev.ErrReadOnly) {
		t.Errorf("WriteAtvFUA on a read-only file = %v", err)
	}
}

// TestSectionFileConformance runs the suite on a window of an O_DIRECT
// file, whose vectored I/O the section forwards.
func TestSectionFileConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		const base = 1 << 20
		f := openFile(t, sparseFile(t, base+size+1<<20), blockdev.FileOptions{})
		t.Cleanup(func() { f.Close() })
		s, err := blockdev.NewSection(f, base, size)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, devtest.Options{TrimZeroes: true})
}
