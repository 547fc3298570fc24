package stripe

import (
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// TestConformance runs the Device conformance suite on stripes of Mem
// devices: the shape the brief asks for, one member, and a narrow chunk
// over many members so that every request crosses several of them; with
// the members' vectored I/O and, hidden, with one call per chunk piece.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name  string
		disks int
		chunk int64
		hide  bool
	}{
		{"3x64KiB", 3, 64 * kib, false},
		{"1x64KiB", 1, 64 * kib, false},
		{"5x4KiB", 5, 4 * kib, false},
		{"3x64KiB per extent", 3, 64 * kib, true},
		{"5x4KiB per extent", 5, 4 * kib, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
				stripe := int64(c.disks) * c.chunk
				member := (size + stripe - 1) / stripe * c.chunk
				disks := make([]blockdev.Device, c.disks)
				for i := range disks {
					disks[i] = blockdev.NewMem(member)
					if c.hide {
						disks[i] = scalar{disks[i]}
					}
				}
				return mustNew(t, disks, c.chunk)
			}, devtest.Options{Unaligned: true, TrimZeroes: true})
		})
	}
}
