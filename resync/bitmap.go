package resync

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// Sentinel errors. Callers test with errors.Is.
var (
	ErrGeometry = errors.New("resync: bad bitmap geometry")
	ErrClosed   = errors.New("resync: bitmap closed")
	ErrSnapshot = errors.New("resync: bitmap snapshot does not match")
	ErrRunning  = errors.New("resync: engine already running")
)

// DefaultFlushInterval is how long cleared bits wait in memory before they
// are written, when BitmapOptions does not say.
const DefaultFlushInterval = 5 * time.Second

// BitmapOptions tunes a Bitmap.
type BitmapOptions struct {
	// FlushInterval is how often bits cleared by Clean and Trimmed are
	// written to the store; DefaultFlushInterval if zero.
	FlushInterval time.Duration
}

// BitmapStats counts what the bitmap did, for status and for tests.
type BitmapStats struct {
	// Marks counts Mark calls that had to wait for a metadata write;
	// FastMarks those whose bits were already durable.
	Marks, FastMarks int64
	// MarkedAhead counts regions MarkAhead set dirty beyond the writes
	// that asked.
	MarkedAhead int64
	// Commits counts metadata writes: changed blocks written and the
	// store flushed. Errors counts the ones that failed.
	Commits, Errors int64
	// Waiting is how many callers wait for a metadata write now.
	Waiting int
}

// Bitmap is the persistent write-intent bitmap of a volume, with a second
// bitmap of the regions ever written ("used"). See the package
// documentation for its invariants.
type Bitmap struct {
	store      blockdev.Device
	volSize    int64
	regionSize int64
	nregions   int64
	half       int64 // bytes of one bitmap in the store; the used one starts here
	nblocks    int64 // store blocks per bitmap
	interval   time.Duration

	mu sync.Mutex
	// dirty and used are the bitmaps as they are now; ddirty and dused
	// are what the store holds durably (a lower bound while a commit is
	// being written). Each has half/8 words.
	dirty, used   []uint64
	ddirty, dused []uint64
	ndirty        int64
	// pending marks the store blocks (dirty bitmap's, then used's) that
	// differ from what was last written.
	pending  []bool
	npending int
	next     *commit // the commit that carries changes made now
	writing  *commit // the commit being written, if any
	closed   bool
	closeErr error
	stats    BitmapStats

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// commit is one metadata write that callers wait for.
type commit struct {
	done    chan struct{}
	err     error
	waiters int
}

func newCommit() *commit { return &commit{done: make(chan struct{})} }

// OpenBitmap loads the dirty and used bitmaps of a volume of volSize bytes
// cut into regions of regionSize bytes (a power of two, at least 4 KiB)
// from store, which holds StoreSize(volSize, regionSize) bytes or more,
// and starts the background writer of cleared bits. The store stays the
// caller's: Close does not close it.
func OpenBitmap(store blockdev.Device, volSize, regionSize int64, o BitmapOptions) (*Bitmap, error) {
	if err := checkGeometry(volSize, regionSize); err != nil {
		return nil, err
	}
	half := BitmapBytes(volSize, regionSize)
	if store.Size() < 2*half {
		return nil, fmt.Errorf("%w: store of %d bytes, need %d", ErrGeometry, store.Size(), 2*half)
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	b := &Bitmap{
		store: store, volSize: volSize, regionSize: regionSize,
		nregions: NumRegions(volSize, regionSize),
		half:     half, nblocks: half / storeBlock, interval: o.FlushInterval,
		dirty: make([]uint64, half/8), used: make([]uint64, half/8),
		ddirty: make([]uint64, half/8), dused: make([]uint64, half/8),
		pending: make([]bool, 2*half/storeBlock),
		next:    newCommit(),
		kick:    make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if err := b.load(); err != nil {
		return nil, err
	}
	go b.run()
	return b, nil
}

// load reads both bitmaps and drops bits beyond the last region.
func (b *Bitmap) load() error {
	const chunk = 1 << 20
	buf := blockdev.GetBuffer(int(min(b.half, chunk)), storeBlock)
	defer blockdev.PutBuffer(buf)
	for i, ws := range [][]uint64{b.dirty, b.used} {
		base := int64(i) * b.half
		for off := int64(0); off < b.half; off += chunk {
			n := min(b.half-off, chunk)
			if _, err := b.store.ReadAt(buf[:n], base+off); err != nil {
				return fmt.Errorf("resync: read bitmap at %d: %w", base+off, err)
			}
			decodeWords(ws[off/8:(off+n)/8], buf[:n])
		}
	}
	tail := int64(len(b.dirty))*64 - 1
	clearBits(b.dirty, b.nregions, tail)
	clearBits(b.used, b.nregions, tail)
	copy(b.ddirty, b.dirty)
	copy(b.dused, b.used)
	b.ndirty = countBits(b.dirty, 0, b.nregions-1)
	return nil
}

// RegionSize returns the size of a region in bytes.
func (b *Bitmap) RegionSize() int64 { return b.regionSize }

// Regions returns the number of regions.
func (b *Bitmap) Regions() int64 { return b.nregions }

// VolumeSize returns the size of the volume the bitmap describes.
func (b *Bitmap) VolumeSize() int64 { return b.volSize }

// Span returns the byte range of region r.
func (b *Bitmap) Span(r int64) (off, n int64) { return RegionSpan(r, b.regionSize, b.volSize) }

// Dirty reports whether region r's dirty bit is set (in memory).
func (b *Bitmap) Dirty(r int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return r >= 0 && r < b.nregions && getBit(b.dirty, r)
}

// Used reports whether region r was ever written (and not trimmed whole
// since).
func (b *Bitmap) Used(r int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return r >= 0 && r < b.nregions && getBit(b.used, r)
}

// NextDirty returns the first dirty region at or after from.
func (b *Bitmap) NextDirty(from int64) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return nextSet(b.dirty, from, b.nregions)
}

// DirtyCount returns the number of dirty regions.
func (b *Bitmap) DirtyCount() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ndirty
}

// DirtyBytes returns the bytes covered by dirty regions.
func (b *Bitmap) DirtyBytes() int64 {
	_, n := b.CountDirty(0, b.nregions-1)
	return n
}

// CountDirty returns how many regions in [first, last] are dirty and the
// bytes they cover.
func (b *Bitmap) CountDirty(first, last int64) (regions, bytes int64) {
	first, last = max(first, 0), min(last, b.nregions-1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if first == 0 && last == b.nregions-1 {
		regions = b.ndirty
	} else {
		regions = countBits(b.dirty, first, last)
	}
	bytes = regions * b.regionSize
	if last == b.nregions-1 && regions > 0 && getBit(b.dirty, last) {
		_, n := b.Span(last)
		bytes -= b.regionSize - n
	}
	return regions, bytes
}

// Stats returns counters of the bitmap's activity.
func (b *Bitmap) Stats() BitmapStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	return s
}

// Snapshot returns the dirty bitmap as it is in memory: bit r%8 of byte
// r/8 is region r, (Regions()+7)/8 bytes. Merge takes it on another node.
func (b *Bitmap) Snapshot() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := make([]byte, len(b.dirty)*8)
	encodeWords(p, b.dirty)
	return p[:(b.nregions+7)/8]
}

// Clean clears the dirty bits of regions [first, last] in memory and
// schedules them to be written within the flush interval (or at Sync or
// Close). The caller guarantees that the regions' data is durable on every
// leg, and stays so until it sets the bits again with Mark: a cleared bit
// on the store is only safe under that guarantee.
func (b *Bitmap) Clean(first, last int64) {
	first, last = max(first, 0), min(last, b.nregions-1)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ndirty -= clearBits(b.dirty, first, last)
	b.pendCleared(b.dirty, b.ddirty, 0, first, last)
}

// ClearAll clears every dirty bit and returns once that is durable. The
// caller guarantees what Clean requires, for the whole volume: every leg
// (and the peer) holds the same data durably, and no write is in flight.
func (b *Bitmap) ClearAll() error {
	b.Clean(0, b.nregions-1)
	return b.Sync()
}

// Trimmed records that [off, off+n) was discarded: the used bits of the
// regions it covers whole are cleared, lazily like Clean. Partly covered
// regions stay used.
func (b *Bitmap) Trimmed(off, n int64) {
	first, last := WholeRegions(off, n, b.regionSize, b.volSize)
	first, last = max(first, 0), min(last, b.nregions-1)
	b.mu.Lock()
	defer b.mu.Unlock()
	clearBits(b.used, first, last)
	b.pendCleared(b.used, b.dused, b.nblocks, first, last)
}

// pendCleared marks pending the store blocks in which bits [first, last]
// are now clear in mem but set in the durable copy. base is the index of
// the bitmap's first block in pending.
func (b *Bitmap) pendCleared(mem, durable []uint64, base, first, last int64) {
	eachWord(first, last, func(w int64, m uint64) {
		if durable[w]&m&^mem[w] != 0 {
			b.pend(base + w/wordsPerBlock)
		}
	})
}

// pend marks store block i as needing a write.
func (b *Bitmap) pend(i int64) {
	if !b.pending[i] {
		b.pending[i] = true
		b.npending++
	}
}

// UsedBytes returns the bytes covered by used regions.
func (b *Bitmap) UsedBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := countBits(b.used, 0, b.nregions-1) * b.regionSize
	if last := b.nregions - 1; getBit(b.used, last) {
		_, size := b.Span(last)
		n -= b.regionSize - size
	}
	return n
}
