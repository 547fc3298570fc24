package blockdev

import "sync"

var zeroOnce = sync.OnceValue(func() []byte { return alignedAlloc(zeroChunk, zeroChunk, poolAlign) })

// Zeroes returns a read-only zero-filled slice of length n (n <= 1 MiB
// shares one buffer, aligned for direct I/O; larger n allocates). Callers
// must not write to it.
func Zeroes(n int) []byte {
	if n <= zeroChunk {
		return zeroOnce()[:n]
	}
	return alignedAlloc(n, n, poolAlign)
}
