package volume

import (
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// TestDataConformance runs the Device conformance suite on Data of a
// volume of three sparse files: the whole stack of O_DIRECT files,
// sections, the stripe and the unaligned-I/O layer.
func TestDataConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		const members, chunk = 3, 64 * kib
		per := (size+members*chunk-1)/(members*chunk)*chunk + mib // data plus metadata
		paths := sparseDisks(t, members, per)
		mustCreate(t, paths, CreateOptions{Chunk: chunk})
		v := mustOpen(t, paths, OpenOptions{})
		t.Cleanup(func() { mustClose(t, v) })
		return v.Data()
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}
