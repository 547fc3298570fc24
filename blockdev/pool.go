package blockdev

import (
	"fmt"
	"math/bits"
	"sync"
	"unsafe"
)

// Buffer pool geometry. Pooled buffers come in power-of-two size classes
// from poolMinClass to poolMaxClass bytes, each aligned to poolAlign, which
// covers every logical block size a disk reports (512 or 4096). Larger
// sizes and larger alignments are allocated on demand and left to the GC.
const (
	poolAlign    = 4096
	poolMinShift = 12 // 4 KiB
	poolMaxShift = 23 // 8 MiB
)

// pools[i] holds buffers of 1<<(poolMinShift+i) bytes, stored as a pointer
// to their first byte so that Put and Get do not allocate. An interior
// pointer keeps the whole backing array alive.
var pools [poolMaxShift - poolMinShift + 1]sync.Pool

// GetBuffer returns a slice of length n whose first byte is aligned to
// align, which must be a power of two no smaller than 512. Its contents are
// unspecified. Return it with PutBuffer once no one refers to it any more.
//
// The pool only holds what the GC has not reclaimed: sync.Pool drops idle
// buffers across collections, so it never grows without bound.
func GetBuffer(n, align int) []byte {
	if n < 0 {
		panic(fmt.Sprintf("blockdev: GetBuffer(%d): negative length", n))
	}
	if align < 512 || align&(align-1) != 0 {
		panic(fmt.Sprintf("blockdev: GetBuffer alignment %d is not a power of two >= 512", align))
	}
	class, ok := sizeClass(n)
	if !ok || align > poolAlign {
		return alignedAlloc(n, max(n, 1), align)
	}
	size := 1 << (poolMinShift + class)
	if b := hugeGet(poolMinShift + class); b != nil {
		return b[:n]
	}
	if p, _ := pools[class].Get().(unsafe.Pointer); p != nil {
		return unsafe.Slice((*byte)(p), size)[:n]
	}
	return alignedAlloc(n, size, poolAlign)
}

// PutBuffer returns b, obtained from GetBuffer, to the pool. The caller must
// not use b afterwards. Slices that do not have the shape of a pooled buffer
// (resliced, or too large) are dropped.
func PutBuffer(b []byte) {
	c := cap(b)
	if c == 0 {
		return
	}
	class, ok := sizeClass(c)
	if !ok || 1<<(poolMinShift+class) != c {
		return
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%poolAlign != 0 || hugePut(b, poolMinShift+class) {
		return
	}
	pools[class].Put(p)
}

// sizeClass returns the index of the smallest pooled class that holds n
// bytes, and false if n is larger than every class.
func sizeClass(n int) (int, bool) {
	if n <= 1<<poolMinShift {
		return 0, true
	}
	shift := bits.Len(uint(n - 1))
	if shift > poolMaxShift {
		return 0, false
	}
	return shift - poolMinShift, true
}

// alignedAlloc returns a fresh slice of length n and capacity c >= n whose
// first byte is aligned to align.
func alignedAlloc(n, c, align int) []byte {
	raw := make([]byte, c+align)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & uintptr(align-1)); r != 0 {
		skip = align - r
	}
	return raw[skip : skip+n : skip+c]
}

// IsAligned reports whether b's first byte is aligned to align (a power of
// two). An empty slice is aligned.
func IsAligned(b []byte, align int) bool {
	if len(b) == 0 {
		return true
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))&uintptr(align-1) == 0
}

// bufferAlign is the buffer address alignment for direct I/O on d: its
// block size if that is a usable power of two, and never less than a page.
func bufferAlign(d Device) int {
	if b := BlockSize(d); b > poolAlign && b&(b-1) == 0 {
		return b
	}
	return poolAlign
}
