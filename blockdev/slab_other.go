//go:build !linux

package blockdev

// mapBuffer returns n bytes aligned to poolAlign; outside Linux it comes
// from the Go heap.
func mapBuffer(n int) []byte { return alignedAlloc(n, n, poolAlign) }

// unmapBuffer drops a buffer from mapBuffer to the GC.
func unmapBuffer([]byte) {}
