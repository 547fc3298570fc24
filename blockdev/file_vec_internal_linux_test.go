package blockdev

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeDisk is a vectored syscall over memory that moves at most max bytes
// a call (0: no limit) and fails every call whose number is in eintr with
// EINTR. It checks each call against what vecLoop promises.
type fakeDisk struct {
	t     *testing.T
	data  []byte
	max   int
	eintr map[int]bool
	write bool

	calls int
	next  int64 // the offset the next call must start at
}

func (d *fakeDisk) sys(iov [][]byte, at int64) (int, error) {
	d.calls++
	if len(iov) == 0 || len(iov) > iovMax {
		d.t.Fatalf("call %d got %d buffers, want 1 to %d", d.calls, len(iov), iovMax)
	}
	if at != d.next {
		d.t.Fatalf("call %d at offset %d, want %d (where the last one stopped)", d.calls, at, d.next)
	}
	if d.eintr[d.calls] {
		return -1, unix.EINTR
	}
	n := 0
	for _, b := range iov {
		if len(b) == 0 {
			d.t.Fatalf("call %d got an empty buffer", d.calls)
		}
		if d.max > 0 {
			b = b[:min(len(b), d.max-n)]
		}
		if d.write {
			n += copy(d.data[at+int64(n):], b)
		} else {
			n += copy(b, d.data[at+int64(n):])
		}
		if n == d.max {
			break
		}
	}
	d.next += int64(n)
	return n, nil
}

// TestVecLoop checks that vecLoop resumes short transfers at the right
// buffer and offset, retries EINTR, splits vectors over iovMax, and leaves
// the caller's vector alone.
func TestVecLoop(t *testing.T) {
	for _, c := range []struct {
		name  string
		sizes []int
		max   int
		eintr []int
		calls int
	}{
		{"whole", []int{512, 1024, 512}, 0, nil, 1},
		{"short inside a buffer", []int{4096, 4096}, 1536, nil, 6},
		{"short at buffer ends", []int{512, 512, 512, 512}, 1024, nil, 2},
		{"short over several buffers", []int{512, 2048, 512, 1024}, 1536, nil, 3},
		{"EINTR", []int{512, 512}, 512, []int{1, 3}, 4},
		{"empty buffers skipped", []int{0, 512, 0, 0, 512, 0}, 0, nil, 1},
		{"over iovMax", slices.Repeat([]int{8}, 2*iovMax+5), 0, nil, 3},
		{"over iovMax, short", slices.Repeat([]int{8}, iovMax+1), 8*iovMax - 4, []int{2}, 3},
	} {
		for _, write := range []bool{false, true} {
			total := 0
			for _, s := range c.sizes {
				total += s
			}
			const off = 1000
			disk := make([]byte, off+total+100)
			for i := range disk {
				disk[i] = byte(i*7 + 1)
			}
			bufs := make([][]byte, len(c.sizes))
			for i, s := range c.sizes {
				bufs[i] = bytes.Repeat([]byte{byte(i + 100)}, s)
			}
			want := slices.Clone(disk)
			if write {
				copy(want[off:], bytes.Join(bufs, nil))
			}
			orig := slices.Clone(bufs)
			d := &fakeDisk{t: t, data: disk, max: c.max, write: write, next: off, eintr: map[int]bool{}}
			for _, k := range c.eintr {
				d.eintr[k] = true
			}
			n, err := vecLoop(bufs, off, io.ErrUnexpectedEOF, d.sys)
			if err != nil || n != int64(total) || d.calls != c.calls {
				t.Fatalf("%s (write %v): vecLoop = %d, %v in %d calls; want %d, nil in %d", c.name, write, n, err, d.calls, total, c.calls)
			}
			for i := range bufs {
				if len(bufs[i]) != len(orig[i]) || (len(bufs[i]) > 0 && &bufs[i][0] != &orig[i][0]) {
					t.Fatalf("%s: vecLoop changed the caller's buffer %d", c.name, i)
				}
			}
			if !write {
				if got := bytes.Join(bufs, nil); !bytes.Equal(got, disk[off:off+total]) {
					t.Fatalf("%s: read data differs", c.name)
				}
			}
			if !bytes.Equal(disk, want) {
				t.Fatalf("%s (write %v): device contents differ", c.name, write)
			}
		}
	}
}

// TestVecLoopStops checks what vecLoop reports when a call fails or
// moves nothing after part of the vector moved.
func TestVecLoopStops(t *testing.T) {
	bufs := [][]byte{make([]byte, 512), make([]byte, 512), make([]byte, 512)}
	errDisk := errors.New("disk error")
	for _, c := range []struct {
		name string
		last error // what the second call returns
		want error
	}{
		{"error", errDisk, errDisk},
		{"no progress", nil, io.ErrShortWrite},
	} {
		calls := 0
		n, err := vecLoop(bufs, 0, io.ErrShortWrite, func(iov [][]byte, at int64) (int, error) {
			calls++
			if calls == 1 {
				return 700, nil
			}
			if c.last != nil {
				return -1, c.last
			}
			return 0, nil
		})
		if n != 700 || !errors.Is(err, c.want) || calls != 2 {
			t.Errorf("%s: vecLoop = %d, %v after %d calls; want 700, %v after 2", c.name, n, err, calls, c.want)
		}
	}
}

func TestAdvance(t *testing.T) {
	mk := func(sizes ...int) [][]byte {
		var v [][]byte
		for _, s := range sizes {
			v = append(v, make([]byte, s))
		}
		return v
	}
	lens := func(v [][]byte) []int {
		var l []int
		for _, b := range v {
			l = append(l, len(b))
		}
		return l
	}
	for _, c := range []struct {
		sizes   []int
		n       int
		left    []int
		dropped int
	}{
		{[]int{10, 20}, 0, []int{10, 20}, 0},
		{[]int{10, 20}, 4, []int{6, 20}, 4},
		{[]int{10, 20}, 10, []int{20}, 10},
		{[]int{10, 20}, 25, []int{5}, 25},
		{[]int{10, 20}, 30, nil, 30},
		{[]int{10, 20}, 99, nil, 30},
	} {
		left, dropped := advance(mk(c.sizes...), c.n)
		if !slices.Equal(lens(left), c.left) || dropped != c.dropped {
			t.Errorf("advance(%v, %d) = %v, %d; want %v, %d", c.sizes, c.n, lens(left), dropped, c.left, c.dropped)
		}
	}
}

// TestFileVectorFUAFallback writes a vector with FUA after the kernel
// refused RWF_DSYNC: pwritev and fdatasync.
func TestFileVectorFUAFallback(t *testing.T) {
	f := openTempFile(t, 1<<20)
	f.noFUA.Store(true)
	a, b := GetBuffer(8192, poolAlign), GetBuffer(4096, poolAlign)
	defer PutBuffer(a)
	defer PutBuffer(b)
	for i := range a {
		a[i] = byte(i%251 + 1)
	}
	for i := range b {
		b[i] = byte(i%13 + 2)
	}
	if n, err := f.WriteAtvFUA([][]byte{a, b}, 4096); err != nil || n != len(a)+len(b) {
		t.Fatalf("WriteAtvFUA fallback = %d, %v", n, err)
	}
	got := GetBuffer(len(a)+len(b), poolAlign)
	defer PutBuffer(got)
	if _, err := f.ReadAt(got, 4096); err != nil || !bytes.Equal(got, append(slices.Clone(a), b...)) {
		t.Fatalf("fallback wrote the wrong data (%v)", err)
	}
}
