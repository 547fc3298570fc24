package blockdev

import (
	"testing"
	"unsafe"
)

// TestHugePoolBuffers: 1 MiB buffers come from 2 MiB-aligned regions,
// two to a region, each whole in one region; a buffer given back is the
// next one handed out; and past hugeLimit buffers still come, from the Go
// heap.
func TestHugePoolBuffers(t *testing.T) {
	addr := func(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
	a := GetBuffer(1<<20, poolAlign)
	if base := addr(a) &^ (hugePage - 1); !hugeRegion(base) || addr(a)+1<<20 > base+hugePage {
		t.Skipf("no huge-page region for a 1 MiB buffer at %#x (the kernel refused the mapping?)", addr(a))
	}
	PutBuffer(a)
	b := GetBuffer(1<<20, poolAlign)
	if addr(b) != addr(a) {
		t.Errorf("a buffer given back was not handed out next: %#x then %#x", addr(a), addr(b))
	}
	// More than hugeLimit of 1 MiB buffers at once: the rest from the heap.
	held := [][]byte{b}
	for range hugeLimit>>20 + 8 {
		c := GetBuffer(1<<20, poolAlign)
		if len(c) != 1<<20 || !IsAligned(c, poolAlign) {
			t.Fatalf("GetBuffer(1 MiB) = %d bytes at %#x", len(c), addr(c))
		}
		c[0], c[len(c)-1] = 1, 2 // writable end to end
		held = append(held, c)
	}
	heap := 0
	for _, c := range held {
		if !hugeRegion(addr(c) &^ (hugePage - 1)) {
			heap++
		}
		PutBuffer(c)
	}
	if heap == 0 {
		t.Errorf("%d buffers held at once all came from huge pages, past the %d-byte limit", len(held), hugeLimit)
	}
}

func hugeRegion(base uintptr) bool {
	huge.mu.Lock()
	defer huge.mu.Unlock()
	return huge.regions[base]
}
