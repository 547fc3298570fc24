package blockdev

import "golang.org/x/sys/unix"

// mapBuffer returns n bytes of anonymous memory outside the Go heap, page
// aligned, or nil if the kernel has none to give.
func mapBuffer(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil
	}
	return b
}

// unmapBuffer gives back a buffer from mapBuffer.
func unmapBuffer(b []byte) { unix.Munmap(b[:cap(b)]) }
