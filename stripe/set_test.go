package stripe

import (
	"bytes"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
)

func TestNewRejects(t *testing.T) {
	mems := func(sizes ...int64) []blockdev.Device {
		var ds []blockdev.Device
		for _, s := range sizes {
			ds = append(ds, blockdev.NewMem(s))
		}
		return ds
	}
	big := &probe{m: blockdev.NewMem(64 * kib), bs: 8192}
	for _, c := range []struct {
		name  string
		disks []blockdev.Device
		chunk int64
		msg   string
	}{
		{"no members", nil, 4096, "no members"},
		{"zero chunk", mems(8192), 0, "chunk size 0"},
		{"negative chunk", mems(8192), -4096, "chunk size -4096"},
		{"sizes differ", mems(8192, 8192, 12288), 4096, "member 2 is 12288 bytes"},
		{"not a chunk multiple", mems(12288, 12288), 8192, "not a positive multiple"},
		{"empty members", mems(0, 0), 4096, "not a positive multiple"},
		{"chunk below block size", []blockdev.Device{blockdev.NewMem(64 * kib), big}, 4096, "member 1's block size 8192"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(c.disks, c.chunk)
			if !errors.Is(err, ErrGeometry) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("New = %v, %v; want ErrGeometry saying %q", s, err, c.msg)
			}
		})
	}
}

func TestGeometry(t *testing.T) {
	p := newProbes(3, 64*kib)
	p[1].bs = 4096
	s := mustNew(t, devices(p), 16*kib)
	defer s.Close()
	if s.Size() != 3*64*kib || s.BlockSize() != 4096 || s.Chunk() != 16*kib || s.Disks() != 3 {
		t.Fatalf("Size %d BlockSize %d Chunk %d Disks %d", s.Size(), s.BlockSize(), s.Chunk(), s.Disks())
	}
}

// TestPlacement writes the whole volume and checks that chunk i landed on
// member i%3 at (i/3)*chunk, and that unaligned pieces round-trip.
func TestPlacement(t *testing.T) {
	const chunk, perDisk = 4 * kib, 4
	mems := []*blockdev.Mem{blockdev.NewMem(perDisk * chunk), blockdev.NewMem(perDisk * chunk), blockdev.NewMem(perDisk * chunk)}
	s := mustNew(t, devices(mems), chunk)
	defer s.Close()
	vol := make([]byte, s.Size())
	for i := range vol {
		vol[i] = byte(i*7 + i/chunk)
	}
	if n, err := s.WriteAt(vol, 0); n != len(vol) || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	for i := range int64(3 * perDisk) {
		disk, at := i%3, i/3*chunk
		got := mems[disk].Bytes()[at : at+chunk]
		if !bytes.Equal(got, vol[i*chunk:(i+1)*chunk]) {
			t.Fatalf("chunk %d is not on disk %d at %d", i, disk, at)
		}
	}
	for _, r := range [][2]int64{{0, 1}, {chunk - 1, 2}, {chunk + 17, 3*chunk + 5}, {s.Size() - 3, 3}, {5, s.Size() - 10}} {
		off, n := r[0], r[1]
		p := bytes.Repeat([]byte{byte(off)}, int(n))
		if _, err := s.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(vol[off:], p)
		got := make([]byte, n)
		if k, err := s.ReadAt(got, off); k != int(n) || err != nil || !bytes.Equal(got, p) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v, equal %v", off, n, k, err, bytes.Equal(got, p))
		}
	}
	all := make([]byte, s.Size())
	if _, err := s.ReadAt(all, 0); err != nil || !bytes.Equal(all, vol) {
		t.Fatalf("whole volume differs after unaligned writes (err %v)", err)
	}
}

func TestOutOfRange(t *testing.T) {
	s := mustNew(t, devices(newProbes(2, 8*kib)), 4*kib)
	defer s.Close()
	for _, r := range [][2]int64{{-1, 1}, {16 * kib, 1}, {16*kib - 1, 2}, {1 << 62, 1 << 62}} {
		if r[1] < 1<<20 {
			if _, err := s.ReadAt(make([]byte, r[1]), r[0]); !errors.Is(err, blockdev.ErrOutOfRange) {
				t.Errorf("ReadAt(%v) = %v", r, err)
			}
		}
		if err := s.Trim(r[0], r[1]); !errors.Is(err, blockdev.ErrOutOfRange) {
			t.Errorf("Trim(%v) = %v", r, err)
		}
		if err := s.WriteZeroes(r[0], r[1], false); !errors.Is(err, blockdev.ErrOutOfRange) {
			t.Errorf("WriteZeroes(%v) = %v", r, err)
		}
		if _, err := s.Map(r[0], r[1]); !errors.Is(err, blockdev.ErrOutOfRange) {
			t.Errorf("Map(%v) = %v", r, err)
		}
	}
}

// TestParallel checks that the pieces of a request go to the members at the
// same time: each member holds its read until all three are held.
func TestParallel(t *testing.T) {
	const chunk = 4 * kib
	f := []*fault.Device{
		fault.Wrap(blockdev.NewMem(4 * chunk)),
		fault.Wrap(blockdev.NewMem(4 * chunk)),
		fault.Wrap(blockdev.NewMem(4 * chunk)),
	}
	s := mustNew(t, devices(f), chunk)
	defer s.Close()
	for _, d := range f {
		d.Hang(fault.Read)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ReadAt(make([]byte, 6*chunk), 0)
		done <- err
	}()
	waitFor(t, "every member to hold a read", func() bool {
		return f[0].Blocked() == 1 && f[1].Blocked() == 1 && f[2].Blocked() == 1
	})
	for _, d := range f {
		d.Release()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Each member's two chunks lie end to end on it: one vectored read.
	for i, d := range f {
		if got := d.Count(fault.Read); got != 1 {
			t.Errorf("disk %d saw %d reads, want 1", i, got)
		}
	}
}

// TestGoroutines checks how many goroutines a request starts: none for one
// piece, one per member beyond the first otherwise.
func TestGoroutines(t *testing.T) {
	const chunk = 4 * kib
	p := newProbes(4, 8*chunk)
	s := mustNew(t, devices(p), chunk)
	defer s.Close()
	var peak int
	for _, d := range p {
		d.onIO = func(string) {
			p[0].mu.Lock()
			peak = max(peak, runtime.NumGoroutine())
			p[0].mu.Unlock()
		}
	}
	for _, c := range []struct {
		off, n int64
		extra  int
	}{
		{100, chunk - 100, 0}, // one piece
		{0, 2 * chunk, 1},     // two members
		{0, 8 * chunk, 3},     // four members, two pieces each
		{chunk, 30 * chunk, 3},
	} {
		peak = 0
		base := runtime.NumGoroutine()
		if _, err := s.WriteAt(make([]byte, c.n), c.off); err != nil {
			t.Fatal(err)
		}
		if peak > base+c.extra {
			t.Errorf("write %d+%d: %d goroutines during the call, %d before; want at most %d more",
				c.off, c.n, peak, base, c.extra)
		}
	}
}

// TestFanOut checks which calls reach the members for the operations that
// are not split by chunk.
func TestFanOut(t *testing.T) {
	const chunk = 4 * kib
	p := newProbes(3, 100*chunk)
	s := mustNew(t, devices(p), chunk)
	defer s.Close()
	reset := func() {
		for _, d := range p {
			d.mu.Lock()
			d.calls = nil
			d.mu.Unlock()
		}
	}
	check := func(what string, want ...[]call) {
		t.Helper()
		for i, d := range p {
			if got := d.seen(); !slices.Equal(got, want[i]) {
				t.Errorf("%s: disk %d saw %v, want %v", what, i, got, want[i])
			}
		}
		reset()
	}

	if err := s.Trim(0, s.Size()); err != nil {
		t.Fatal(err)
	}
	whole := call{off: 0, n: 100 * chunk}
	trim := whole
	trim.op = "trim"
	check("Trim of the volume", []call{trim}, []call{trim}, []call{trim})

	if err := s.WriteZeroes(chunk+1, 2*chunk, true); err != nil {
		t.Fatal(err)
	}
	// Chunk 1 from its second byte, chunk 2, the first byte of chunk 3
	// (disk 0's second chunk).
	check("WriteZeroes of chunks 1 to 3",
		[]call{{op: "zero", off: chunk, n: 1, mayTrim: true}},
		[]call{{op: "zero", off: 1, n: chunk - 1, mayTrim: true}},
		[]call{{op: "zero", off: 0, n: chunk, mayTrim: true}},
	)
	if err := s.WriteZeroes(3*chunk, 0, false); err != nil {
		t.Fatal(err)
	}
	check("empty WriteZeroes", nil, nil, nil)

	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	fl := []call{{op: "flush"}}
	check("Flush", fl, fl, fl)

	if _, err := s.WriteAtFUA(make([]byte, 2*chunk), 2*chunk); err != nil {
		t.Fatal(err)
	}
	check("WriteAtFUA of chunks 2 and 3", []call{{op: "fua", off: chunk, n: chunk}}, nil, []call{{op: "fua", off: 0, n: chunk}})
}

// TestAllocationMap weaves the members' maps back into volume order.
func TestAllocationMap(t *testing.T) {
	const chunk = 4 * kib
	p := newProbes(2, 4*chunk)
	hole := func(off, n int64) blockdev.Extent { return blockdev.Extent{Off: off, Len: n, Hole: true, Zero: true} }
	data := func(off, n int64) blockdev.Extent { return blockdev.Extent{Off: off, Len: n} }
	// Disk 0 holds volume chunks 0, 2, 4, 6; disk 1 chunks 1, 3, 5, 7.
	p[0].maps = []blockdev.Extent{data(0, chunk), hole(chunk, 2*chunk+100), data(3*chunk+100, chunk-100)}
	p[1].maps = []blockdev.Extent{data(0, 2*chunk), hole(2*chunk, 2*chunk)}
	s := mustNew(t, devices(p), chunk)
	defer s.Close()

	for _, c := range []struct {
		off, n int64
		want   []blockdev.Extent
	}{
		{0, 8 * chunk, []blockdev.Extent{
			data(0, 2*chunk),           // chunk 0 (disk 0), chunk 1 (disk 1)
			hole(2*chunk, chunk),       // chunk 2: disk 0's second chunk
			data(3*chunk, chunk),       // chunk 3: disk 1's second chunk
			hole(4*chunk, 2*chunk+100), // chunks 4 (disk 0), 5 (disk 1), 6's head
			data(6*chunk+100, chunk-100),
			hole(7*chunk, chunk),
		}},
		{chunk - 10, 20, []blockdev.Extent{data(chunk-10, 20)}},
		{5 * chunk, 2*chunk + 200, []blockdev.Extent{hole(5*chunk, chunk+100), data(6*chunk+100, chunk-100), hole(7*chunk, 200)}},
		{3 * chunk, 0, nil},
	} {
		got, err := s.Map(c.off, c.n)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Map(%d, %d) =\n %+v\nwant\n %+v", c.off, c.n, got, c.want)
		}
	}

	// A member whose map does not cover what was asked is an error.
	p[1].maps = []blockdev.Extent{data(0, chunk)}
	var de *DiskError
	if _, err := s.Map(0, 8*chunk); !errors.As(err, &de) || de.Disk != 1 || de.Op != "map" {
		t.Fatalf("Map with a bad member map = %v", err)
	}
}

func TestClose(t *testing.T) {
	f := []*fault.Device{fault.Wrap(blockdev.NewMem(8 * kib)), fault.Wrap(blockdev.NewMem(8 * kib))}
	s := mustNew(t, devices(f), 4*kib)

	// Close waits for a read in flight before closing the members.
	f[1].Hang(fault.Read)
	done := make(chan error, 1)
	go func() {
		_, err := s.ReadAt(make([]byte, 8*kib), 0)
		done <- err
	}()
	waitFor(t, "the read to hang", func() bool { return f[1].Blocked() == 1 })
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitFor(t, "Close to wait for the lock", func() bool {
		if s.mu.TryRLock() {
			s.mu.RUnlock()
			return false
		}
		return true
	})
	f[1].Release()
	if err := <-done; err != nil {
		t.Fatalf("read in flight during Close = %v, want it to finish first", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}

	for _, d := range f {
		if _, err := d.ReadAt(make([]byte, 1), 0); !errors.Is(err, blockdev.ErrClosed) {
			t.Fatalf("member still open after Close: %v", err)
		}
	}
	if err := s.Close(); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := s.WriteAt(make([]byte, 1), 0); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("WriteAt after Close = %v", err)
	}
	if err := s.Flush(); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("Flush after Close = %v", err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) { devtest.WaitFor(t, what, cond) }
