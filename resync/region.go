package resync

import "fmt"

// Region arithmetic: the volume is cut into regions of a power-of-two
// size, the last one possibly short, and each region has one bit in each
// of the two bitmaps. These functions do no I/O.

const (
	// storeBlock is the unit in which the bitmaps are written to the
	// store: a changed bit costs a write of the 4 KiB block holding it.
	storeBlock = 4096
	// wordsPerBlock is how many in-memory words one store block holds.
	wordsPerBlock = storeBlock / 8
	// MinRegion is the smallest region size a Bitmap accepts.
	MinRegion = 4096
)

// NumRegions returns how many regions of regionSize cover volSize bytes.
func NumRegions(volSize, regionSize int64) int64 {
	if volSize <= 0 || regionSize <= 0 {
		return 0
	}
	return (volSize-1)/regionSize + 1
}

// BitmapBytes returns the size of one bitmap in the store: one bit per
// region, rounded up to a whole 4 KiB block.
func BitmapBytes(volSize, regionSize int64) int64 {
	bytes := (NumRegions(volSize, regionSize) + 7) / 8
	return (bytes + storeBlock - 1) / storeBlock * storeBlock
}

// StoreSize returns the size of the store OpenBitmap needs: the dirty
// bitmap followed by the used bitmap, BitmapBytes each.
func StoreSize(volSize, regionSize int64) int64 {
	return 2 * BitmapBytes(volSize, regionSize)
}

// Regions returns the first and last region that [off, off+n) touches. For
// n <= 0 the result is empty: last == first-1.
func Regions(off, n, regionSize int64) (first, last int64) {
	first = off / regionSize
	if n <= 0 {
		return first, first - 1
	}
	return first, (off + n - 1) / regionSize
}

// WholeRegions returns the regions that lie entirely inside [off, off+n)
// of a volume of volSize bytes; the short last region is whole when the
// range reaches the end of the volume. The result is empty when last <
// first.
func WholeRegions(off, n, regionSize, volSize int64) (first, last int64) {
	end := off + n
	first = (off + regionSize - 1) / regionSize
	if n <= 0 {
		return first, first - 1
	}
	if end >= volSize {
		return first, NumRegions(volSize, regionSize) - 1
	}
	return first, end/regionSize - 1
}

// RegionSpan returns the byte range of region r in a volume of volSize
// bytes: regionSize bytes, less for the last region.
func RegionSpan(r, regionSize, volSize int64) (off, n int64) {
	off = r * regionSize
	return off, min(regionSize, volSize-off)
}

// checkGeometry validates a volume size and region size.
func checkGeometry(volSize, regionSize int64) error {
	if volSize <= 0 {
		return fmt.Errorf("%w: volume size %d", ErrGeometry, volSize)
	}
	if regionSize < MinRegion || regionSize&(regionSize-1) != 0 {
		return fmt.Errorf("%w: region size %d is not a power of two >= %d", ErrGeometry, regionSize, MinRegion)
	}
	return nil
}
