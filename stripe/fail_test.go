package stripe

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
)

var errBoom = errors.New("boom")

// TestFailedMember checks that a member's failure comes back as a
// *DiskError naming it, with the bytes before it counted as done.
func TestFailedMember(t *testing.T) {
	const chunk = 64 * kib
	f := []*fault.Device{
		fault.Wrap(blockdev.NewMem(4 * chunk)),
		fault.Wrap(blockdev.NewMem(4 * chunk)),
		fault.Wrap(blockdev.NewMem(4 * chunk)),
	}
	s := mustNew(t, devices(f), chunk)
	defer s.Close()
	f[2].FailAll(fault.Write, errBoom)

	// Chunks 1..4 live on disks 1, 2, 0, 1; disk 2's chunk 2 fails.
	p := make([]byte, 4*chunk)
	n, err := s.WriteAt(p, chunk)
	var de *DiskError
	if !errors.As(err, &de) || !errors.Is(err, errBoom) {
		t.Fatalf("WriteAt error %v is not a *DiskError wrapping errBoom", err)
	}
	if de.Disk != 2 || de.Op != "write" || de.Off != 0 || de.Len != chunk {
		t.Fatalf("DiskError = %+v", de)
	}
	if want := "stripe: write disk 2 off 0 len 65536: "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q, want prefix %q", err, want)
	}
	if n != chunk {
		t.Fatalf("WriteAt reported %d bytes done, want %d (the chunk before disk 2's)", n, chunk)
	}

	// FUA writes, flushes and zeroing name the member too.
	if _, err := s.WriteAtFUA(p[:4096], 2*chunk+4096); !errors.As(err, &de) || de.Disk != 2 || de.Op != "fua write" || de.Off != 4096 {
		t.Fatalf("WriteAtFUA error %v (%+v)", err, de)
	}
	f[0].FailAll(fault.Flush, errBoom)
	if err := s.Flush(); !errors.As(err, &de) || de.Disk != 0 || !strings.HasPrefix(err.Error(), "stripe: flush disk 0: ") {
		t.Fatalf("Flush error %v", err)
	}
	f[1].FailAll(fault.Zero, errBoom)
	if err := s.WriteZeroes(0, s.Size(), false); !errors.As(err, &de) || de.Disk != 1 || de.Op != "write zeroes" || de.Len != 4*chunk {
		t.Fatalf("WriteZeroes error %v (%+v)", err, de)
	}
}

// TestTwoFailedMembers checks that each failed member is reported once,
// the one earliest in the request first.
func TestTwoFailedMembers(t *testing.T) {
	const chunk = 4 * kib
	var f []*fault.Device
	for range 4 {
		f = append(f, fault.Wrap(blockdev.NewMem(8*chunk)))
	}
	s := mustNew(t, devices(f), chunk)
	defer s.Close()
	f[3].FailAll(fault.Read, errBoom)
	f[1].FailAll(fault.Read, io.ErrNoProgress)
	n, err := s.ReadAt(make([]byte, 8*chunk), 0)
	if n != chunk {
		t.Fatalf("ReadAt reported %d bytes, want %d", n, chunk)
	}
	var disks []int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var de *DiskError
		if !errors.As(e, &de) {
			t.Fatalf("joined error %v is not a *DiskError", e)
		}
		disks = append(disks, de.Disk)
	}
	if !slices.Equal(disks, []int{1, 3}) || !errors.Is(err, errBoom) || !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("ReadAt error %v names disks %v, want [1 3]", err, disks)
	}
}

func TestShortRead(t *testing.T) {
	p := newProbes(2, 8*kib)
	p[1].short = true
	s := mustNew(t, devices(p), 4*kib)
	defer s.Close()
	n, err := s.ReadAt(make([]byte, 8*kib), 0)
	var de *DiskError
	if !errors.As(err, &de) || de.Disk != 1 || !errors.Is(err, io.ErrUnexpectedEOF) || n != 8*kib-1 {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
}

// TestFailEachPiece fails the i-th write of each member in turn, for i =
// 0, 1, ... until the write succeeds, and checks that every failure names
// its member and piece and counts exactly the bytes before that piece.
// Members without vectored I/O see one write per piece; members with it
// see one write in all, whose failure is charged to their first piece.
func TestFailEachPiece(t *testing.T) {
	for _, hide := range []bool{true, false} {
		t.Run(fmt.Sprintf("hide vectors %v", hide), func(t *testing.T) { testFailEachPiece(t, hide) })
	}
}

func testFailEachPiece(t *testing.T, hide bool) {
	const chunk = 4 * kib
	off, n := int64(chunk/2), int64(7*chunk)
	ext := Map(off, n, chunk, 3)
	for disk := range 3 {
		for i := 0; ; i++ {
			f, disks := faultMembers(3, 4*chunk, hide)
			s := mustNew(t, disks, chunk)
			f[disk].FailNth(fault.Write, i, errBoom)
			got, err := s.WriteAt(make([]byte, n), off)
			s.Close()
			if err == nil {
				if got != int(n) || i == 0 || (!hide && i != 1) {
					t.Fatalf("disk %d: write with failure %d armed = %d, nil", disk, i, got)
				}
				break
			}
			// The failing piece is disk's i-th.
			var want Extent
			for k, seen := 0, 0; k < len(ext); k++ {
				if ext[k].Disk == disk {
					if seen == i {
						want = ext[k]
						break
					}
					seen++
				}
			}
			var de *DiskError
			if !errors.As(err, &de) || de.Disk != disk || de.Off != want.DiskOff || de.Len != want.Len {
				t.Fatalf("disk %d failure %d: error %v, want one for piece %+v", disk, i, err, want)
			}
			if got != int(want.BufOff) {
				t.Fatalf("disk %d failure %d: %d bytes done, want %d", disk, i, got, want.BufOff)
			}
		}
	}
}
