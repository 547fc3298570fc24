package resync

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/internal/lat"
)

// Mark sets the dirty and used bits of the regions [off, off+n) touches and
// returns once they are durable on the store: the changed blocks written
// and the store flushed. Marks that arrive while a metadata write is in
// progress share the next one (group commit); a Mark whose bits are
// already durable returns at once without I/O. If the write fails the
// error is returned and the caller must not write the data.
func (b *Bitmap) Mark(off, n int64) error { return b.mark(off, n, true) }

// MarkRegions sets the dirty and used bits of regions and returns once
// they are durable: Mark for a list of regions (a repair's), in one
// metadata write however many they are.
func (b *Bitmap) MarkRegions(regions []int64) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	for _, r := range regions {
		if r < 0 || r >= b.nregions {
			b.mu.Unlock()
			return fmt.Errorf("%w: region %d of %d", ErrGeometry, r, b.nregions)
		}
	}
	for _, r := range regions {
		b.setLocked(false, r, r)
		b.setLocked(true, r, r)
	}
	return b.waitLocked()
}

// MarkDiscard is Mark for a discard (Trim): it sets the dirty bits only,
// since a discard adds no data worth copying to a blank leg.
func (b *Bitmap) MarkDiscard(off, n int64) error { return b.mark(off, n, false) }

func (b *Bitmap) mark(off, n int64, used bool) error {
	_, err := b.markAhead(off, n, used, 0)
	return err
}

// MarkAhead is Mark, and when the range has to wait for a metadata write
// anyway, it also sets the dirty and used bits of up to ahead regions
// after the range's last, in the same write: a sequential stream then
// crosses those regions without a metadata write of its own (a used bit
// set early only means a full sync copies a region that may still be
// blank). It returns the regions it marked ahead, [first, last] (last <
// first if none), which the caller must treat as written for the cleaning
// of dirty bits (Clean them once they are the same on every copy), since
// no write of the caller's will.
func (b *Bitmap) MarkAhead(off, n, ahead int64) (first, last int64, err error) {
	r, err := b.markAhead(off, n, true, ahead)
	return r[0], r[1], err
}

func (b *Bitmap) markAhead(off, n int64, used bool, ahead int64) ([2]int64, error) {
	none := [2]int64{0, -1}
	if err := blockdev.CheckRange(b.volSize, off, n); err != nil {
		return none, fmt.Errorf("resync: mark: %w", err)
	}
	first, last := Regions(off, n, b.regionSize)
	if last < first {
		return none, nil
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return none, ErrClosed
	}
	if allSet(b.ddirty, first, last) && (!used || allSet(b.dused, first, last)) {
		// Durable already; memory may have been cleaned since, and a
		// pending write of the cleaned block now carries the set bit.
		b.ndirty += setBits(b.dirty, first, last)
		if used {
			setBits(b.used, first, last)
		}
		b.stats.FastMarks++
		b.mu.Unlock()
		return none, nil
	}
	b.setLocked(false, first, last)
	if used {
		b.setLocked(true, first, last)
	}
	spec := none
	if end := min(last+ahead, b.nregions-1); end > last {
		spec = [2]int64{last + 1, end}
		b.setLocked(false, last+1, end)
		if used {
			b.setLocked(true, last+1, end)
		}
		b.stats.MarkedAhead += end - last
	}
	b.stats.Marks++
	return spec, b.waitLocked()
}

// setLocked sets bits [first, last] of the dirty bitmap, or of the used
// one, and marks pending the blocks in which they are not yet durable.
func (b *Bitmap) setLocked(used bool, first, last int64) {
	eachWord(first, last, func(w int64, m uint64) { b.setMask(used, w, m) })
}

// setMask sets the bits m of word w of the dirty (or used) bitmap, keeping
// the dirty count, and marks the word's block pending unless the bits are
// durable already.
func (b *Bitmap) setMask(used bool, w int64, m uint64) {
	mem, durable, base := b.dirty, b.ddirty, int64(0)
	if used {
		mem, durable, base = b.used, b.dused, b.nblocks
	} else {
		b.ndirty += int64(bits.OnesCount64(m &^ mem[w]))
	}
	mem[w] |= m
	if durable[w]&m != m {
		b.pend(base + w/wordsPerBlock)
	}
}

// SetAll marks every region dirty, durably, for a full resync. Used bits
// are left alone, so that a full sync can still skip unused regions.
func (b *Bitmap) SetAll() error { return b.setAll(false) }

// SetAllUsed sets the used bit of every region and returns once that is
// durable: for a copy whose used bitmap may lack regions written to it
// (a secondary takes its primary's writes without marking them), before
// it is the source of a sync or a rebuild that skips unused regions.
func (b *Bitmap) SetAllUsed() error { return b.setAll(true) }

// setAll sets every bit of the dirty bitmap, or of the used one, and
// returns once they are durable.
func (b *Bitmap) setAll(used bool) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.setLocked(used, 0, b.nregions-1)
	return b.waitLocked()
}

// Merge ORs another node's dirty bitmap (from its Snapshot) into this one,
// as dirty and used, and returns once the result is durable.
func (b *Bitmap) Merge(snap []byte) error {
	if int64(len(snap)) != (b.nregions+7)/8 {
		return fmt.Errorf("%w: %d bytes, want %d for %d regions", ErrSnapshot, len(snap), (b.nregions+7)/8, b.nregions)
	}
	words := make([]uint64, len(b.dirty))
	buf := make([]byte, 8*len(words))
	copy(buf, snap)
	decodeWords(words, buf)
	clearBits(words, b.nregions, int64(len(words))*64-1)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	for w, m := range words {
		if m != 0 {
			b.setMask(false, int64(w), m)
			b.setMask(true, int64(w), m)
		}
	}
	return b.waitLocked()
}

// Sync writes every change made so far (bits cleared by Clean and
// Trimmed included) and returns once it is durable.
func (b *Bitmap) Sync() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	return b.waitLocked()
}

// waitLocked waits, with b.mu held on entry and released on return, for a
// commit that carries every change made so far.
func (b *Bitmap) waitLocked() error {
	c := b.next
	if b.npending == 0 {
		// Nothing new; wait for the write in progress, if any.
		c = b.writing
		if c == nil {
			b.mu.Unlock()
			return nil
		}
	}
	c.waiters++
	b.stats.Waiting++
	select {
	case b.kick <- struct{}{}:
	default:
	}
	b.mu.Unlock()
	t := lat.Start()
	<-c.done
	lat.Since(lat.BitmapWait, t)
	b.mu.Lock()
	b.stats.Waiting--
	b.mu.Unlock()
	return c.err
}

// Close writes what is pending, stops the background writer and waits for
// it. It does not close the store.
func (b *Bitmap) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("%w: closed twice", ErrClosed)
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closeErr
}

// run is the background writer: it commits when a caller waits (kick) and
// every flush interval for cleared bits, and once more when stopped.
func (b *Bitmap) run() {
	defer close(b.done)
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			err := b.commitPending()
			b.mu.Lock()
			b.closeErr = err
			b.mu.Unlock()
			return
		case <-b.kick:
		case <-t.C:
		}
		b.commitPending()
	}
}

// commitPending writes pending blocks, commit after commit, while there
// are any. After a failed write it goes on only if callers wait for the
// next commit, so that a dead store is retried on demand, not in a loop.
func (b *Bitmap) commitPending() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	for b.npending > 0 {
		c := b.next
		b.next = newCommit()
		blocks, words := b.snapshotLocked()
		b.writing = c
		b.mu.Unlock()
		t := lat.Start()
		err = b.writeBlocks(blocks, words)
		lat.Since(lat.BitmapCommit, t)
		b.mu.Lock()
		b.writing = nil
		b.finishLocked(c, blocks, words, err)
		if err != nil && b.next.waiters == 0 {
			break
		}
	}
	return err
}

// snapshotLocked takes the pending blocks and a copy of their words, and
// lowers the durable copy to what the store may hold while they are being
// written: bits being cleared are no longer durably set.
func (b *Bitmap) snapshotLocked() (blocks []int64, words []uint64) {
	for i, p := range b.pending {
		if !p {
			continue
		}
		b.pending[i] = false
		mem, durable := b.blockWords(int64(i))
		blocks = append(blocks, int64(i))
		words = append(words, mem...)
		for w := range mem {
			durable[w] &= mem[w]
		}
	}
	b.npending = 0
	return blocks, words
}

// blockWords returns the in-memory and durable words of store block i.
func (b *Bitmap) blockWords(i int64) (mem, durable []uint64) {
	mem, durable = b.dirty, b.ddirty
	if i >= b.nblocks {
		mem, durable, i = b.used, b.dused, i-b.nblocks
	}
	w := i * wordsPerBlock
	return mem[w : w+wordsPerBlock], durable[w : w+wordsPerBlock]
}

// finishLocked records the outcome of a commit and releases its waiters.
func (b *Bitmap) finishLocked(c *commit, blocks []int64, words []uint64, err error) {
	for k, i := range blocks {
		if err != nil {
			b.pend(i)
			continue
		}
		_, durable := b.blockWords(i)
		copy(durable, words[k*wordsPerBlock:])
	}
	if err != nil {
		b.stats.Errors++
		c.err = fmt.Errorf("resync: bitmap write: %w", err)
	} else {
		b.stats.Commits++
	}
	close(c.done)
}

// maxRun bounds the blocks written with one WriteAt.
const maxRun = 64

// writeBlocks writes the blocks (store block i lives at i*storeBlock: the
// used bitmap follows the dirty one) in runs of adjacent blocks, then
// flushes the store.
func (b *Bitmap) writeBlocks(blocks []int64, words []uint64) error {
	buf := blockdev.GetBuffer(min(len(blocks), maxRun)*storeBlock, storeBlock)
	defer blockdev.PutBuffer(buf)
	for k := 0; k < len(blocks); {
		n := 1
		for k+n < len(blocks) && n < maxRun && blocks[k+n] == blocks[k]+int64(n) {
			n++
		}
		p := buf[:n*storeBlock]
		encodeWords(p, words[k*wordsPerBlock:(k+n)*wordsPerBlock])
		if _, err := b.store.WriteAt(p, blocks[k]*storeBlock); err != nil {
			return fmt.Errorf("block %d: %w", blocks[k], err)
		}
		k += n
	}
	if err := b.store.Flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}
