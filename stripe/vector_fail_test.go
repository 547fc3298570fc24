package stripe

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
)

var errBadSector = errors.New("bad sector")

// badSector is a member over a Mem whose bytes from member offset bad on
// cannot be read or written: a request that reaches them moves the bytes
// before them, then fails, as a disk reports a partial transfer.
type badSector struct {
	m   *blockdev.Mem
	bad int64
}

// badSectorVec is a badSector with vectored I/O, which fails the same way
// at the same byte, however the range is split into buffers.
type badSectorVec struct{ *badSector }

func (d *badSector) Size() int64  { return d.m.Size() }
func (d *badSector) Flush() error { return d.m.Flush() }
func (d *badSector) Close() error { return d.m.Close() }

// good is how many of n bytes at off lie before the bad ones.
func (d *badSector) good(off, n int64) int64 { return max(0, min(n, d.bad-off)) }

func (d *badSector) ReadAt(p []byte, off int64) (int, error) {
	k := d.good(off, int64(len(p)))
	n, err := d.m.ReadAt(p[:k], off)
	if err == nil && k < int64(len(p)) {
		err = errBadSector
	}
	return n, err
}

func (d *badSector) WriteAt(p []byte, off int64) (int, error) {
	k := d.good(off, int64(len(p)))
	n, err := d.m.WriteAt(p[:k], off)
	if err == nil && k < int64(len(p)) {
		err = errBadSector
	}
	return n, err
}

func (d badSectorVec) ReadAtv(bufs [][]byte, off int64) (int, error) {
	total := blockdev.VecLen(bufs)
	k := d.good(off, total)
	n, err := d.m.ReadAtv(blockdev.VecHead(bufs, k), off)
	if err == nil && k < total {
		err = errBadSector
	}
	return n, err
}

func (d badSectorVec) WriteAtv(bufs [][]byte, off int64) (int, error) {
	total := blockdev.VecLen(bufs)
	k := d.good(off, total)
	n, err := d.m.WriteAtv(blockdev.VecHead(bufs, k), off)
	if err == nil && k < total {
		err = errBadSector
	}
	return n, err
}

// transferPerExtent is the Set's transfer as it was before vectored I/O,
// the reference the tests hold it to: one call per extent, through run.
func (s *Set) transferPerExtent(x xfer, p []byte, off int64) (int, error) {
	ext := Map(off, int64(len(p)), s.chunk, len(s.disks))
	n, err := s.run(x.op, ext, len(s.disks), func(d blockdev.Device, e Extent) (int64, error) {
		n, err := x.one(d, p[e.BufOff:e.BufOff+e.Len], e.DiskOff)
		return int64(n), err
	})
	return int(n), err
}

// How TestVectorFailsLikePerExtent does a request: the reference
// per-extent transfer, the Set over members without vectored I/O (the
// helpers' fallback), the Set over members with it.
const (
	modeReference = iota
	modeFallback
	modeVectored
)

// TestVectorFailsLikePerExtent puts bad sectors on members and checks that
// reads, writes and FUA writes crossing them report the same count and the
// same errors, and leave the same bytes, as one call per extent did.
func TestVectorFailsLikePerExtent(t *testing.T) {
	const chunk, disks, member = 4 * kib, 3, 8 * 4 * kib
	offsets := []int64{0, 512, chunk, chunk + 1536, 3*chunk - 512, member} // member: no bad sector
	requests := [][2]int64{{0, 3 * member}, {chunk / 2, 10 * chunk}, {5*chunk + 512, 9*chunk + 1024}, {2 * chunk, chunk}}
	type result struct {
		n    int
		err  string
		mems [][]byte
	}
	do := func(bad [disks]int64, mode int, x xfer, r [2]int64) result {
		ds := make([]blockdev.Device, disks)
		ms := make([]*blockdev.Mem, disks)
		for i := range ds {
			ms[i] = blockdev.NewMem(member)
			ms[i].WriteAt(bytes.Repeat([]byte{byte(0xe0 + i)}, member), 0)
			b := &badSector{m: ms[i], bad: bad[i]}
			ds[i] = b
			if mode == modeVectored {
				ds[i] = badSectorVec{b}
			}
		}
		s := mustNew(t, ds, chunk)
		defer s.Close()
		p := bytes.Repeat([]byte{0x5a}, int(r[1]))
		var n int
		var err error
		if mode == modeReference {
			n, err = s.transferPerExtent(x, p, r[0])
		} else {
			n, err = s.transfer(x, p, r[0])
		}
		res := result{n: n, err: fmt.Sprint(err)}
		if err != nil && !errors.Is(err, errBadSector) {
			t.Fatalf("%s %v with bad sectors %v: error %v does not wrap errBadSector", x.op, r, bad, err)
		}
		for _, m := range ms {
			res.mems = append(res.mems, m.Bytes())
		}
		return res
	}
	failures := 0
	for _, b0 := range offsets {
		for _, b1 := range offsets {
			for _, b2 := range []int64{chunk + 1536, member} {
				bad := [disks]int64{b0, b1, b2}
				for _, r := range requests {
					for _, x := range []xfer{xRead, xWrite, xFUA} {
						ref := do(bad, modeReference, x, r)
						for _, mode := range []int{modeFallback, modeVectored} {
							got := do(bad, mode, x, r)
							if got.n != ref.n || got.err != ref.err {
								t.Fatalf("%s %v, bad sectors %v, mode %d:\n per extent %d, %s\n got        %d, %s",
									x.op, r, bad, mode, ref.n, ref.err, got.n, got.err)
							}
							for d := range ref.mems {
								if !bytes.Equal(ref.mems[d], got.mems[d]) {
									t.Fatalf("%s %v, bad sectors %v, mode %d: member %d differs", x.op, r, bad, mode, d)
								}
							}
						}
						if ref.err != "<nil>" {
							failures++
						}
					}
				}
			}
		}
	}
	if failures == 0 {
		t.Fatal("no request crossed a bad sector")
	}
}

// TestTornVector tears a member's vectored write inside its second extent:
// the first counts as done, the second is the failed piece.
func TestTornVector(t *testing.T) {
	const chunk = 4 * kib
	f, disks := faultMembers(2, 8*chunk, false)
	s := mustNew(t, disks, chunk)
	defer s.Close()
	// Volume chunks 1, 3, 5, 7 are member 1's 0..4 at member offsets 0, 4K, 8K, 12K.
	f[1].TearNextWrite(chunk + 1000)
	n, err := s.WriteAt(bytes.Repeat([]byte{1}, 8*chunk), 0)
	var de *DiskError
	if !errors.As(err, &de) || !errors.Is(err, fault.ErrTorn) || de.Disk != 1 || de.Off != chunk || de.Len != chunk {
		t.Fatalf("torn vectored write: error %v (%+v), want a DiskError for disk 1 off %d len %d", err, de, chunk, chunk)
	}
	if n != 3*chunk+1000 {
		t.Fatalf("torn vectored write reported %d bytes done, want %d", n, 3*chunk+1000)
	}
}
