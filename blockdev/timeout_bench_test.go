package blockdev_test

import (
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// BenchmarkTimeoutRead: the cost the time-out wrapper adds to a 4 KiB
// read of an in-memory device, with 32 callers at once.
func BenchmarkTimeoutRead(b *testing.B) {
	w := blockdev.WithTimeout(blockdev.NewMem(1<<20), time.Minute)
	defer w.Close()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, 4096)
		for pb.Next() {
			if _, err := w.ReadAt(p, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
