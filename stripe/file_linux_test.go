package stripe

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// TestFileConformance runs the conformance suite on a stripe of two
// O_DIRECT files, whose pieces go to the kernel as preadv and pwritev.
func TestFileConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		const chunk, disks = 64 * kib, 2
		member := (size + disks*chunk - 1) / (disks * chunk) * chunk
		ds := make([]blockdev.Device, disks)
		for i := range ds {
			path := filepath.Join(t.TempDir(), "member")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, member); err != nil {
				t.Fatal(err)
			}
			f, err := blockdev.OpenFile(path, blockdev.FileOptions{Exclusive: true})
			if err != nil {
				t.Fatal(err)
			}
			ds[i] = f
		}
		return mustNew(t, ds, chunk)
	}, devtest.Options{TrimZeroes: true})
}
