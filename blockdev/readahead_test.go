package blockdev_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
)

// smallReadahead reads 256 KiB ahead in 64 KiB reads once a stream has
// read 128 KiB: small enough that the conformance suite's sequential
// cases read ahead.
var smallReadahead = blockdev.ReadaheadOptions{Window: 256 << 10, Chunk: 64 << 10, Trigger: 128 << 10}

func TestReadaheadConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		return blockdev.NewReadahead(blockdev.NewMem(size), smallReadahead)
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}

// patterned returns a Mem of size bytes filled with pattern seed.
func patterned(t *testing.T, size, seed int64) *blockdev.Mem {
	t.Helper()
	m := blockdev.NewMem(size)
	if _, err := m.WriteAt(devtest.Pattern(seed, 0, int(size)), 0); err != nil {
		t.Fatal(err)
	}
	return m
}

// faultyReadahead is a Readahead with smallReadahead's sizes over a
// fault-injecting Mem of size bytes holding pattern 7 (see old).
func faultyReadahead(t *testing.T, size int64) (*fault.Device, *blockdev.Readahead) {
	t.Helper()
	dev := fault.Wrap(patterned(t, size, 7))
	r := blockdev.NewReadahead(dev, smallReadahead)
	t.Cleanup(func() { r.Close() })
	return dev, r
}

// old is what faultyReadahead's device holds at first.
func old(off int64, n int) []byte { return devtest.Pattern(7, off, n) }

// readSeq reads [from, to) through r in pieces of n bytes and checks each
// against want(off, n).
func readSeq(t *testing.T, r blockdev.Device, from, to int64, n int, want func(off int64, n int) []byte) {
	t.Helper()
	p := make([]byte, n)
	for off := from; off < to; off += int64(n) {
		if _, err := r.ReadAt(p, off); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if !bytes.Equal(p, want(off, n)) {
			t.Fatalf("read at %d returned other data than the device holds", off)
		}
	}
}

// TestReadaheadServesSequentialReads: a sequential reader is served from
// data read ahead, in fewer and larger device reads than its own; a
// random reader is not.
func TestReadaheadServesSequentialReads(t *testing.T) {
	const size = 8 << 20
	dev, r := faultyReadahead(t, size)
	readSeq(t, r, 0, size, 16<<10, old)
	st := r.Stats()
	reads := int64(size / (16 << 10))
	if st.Hits < reads*3/4 {
		t.Errorf("%d of %d sequential reads were served from data read ahead; want most", st.Hits, reads)
	}
	if got := int64(dev.Count(fault.Read)); got >= reads/2 {
		t.Errorf("the device saw %d reads for %d sequential reads of the client; want far fewer", got, reads)
	}
	if limit := smallReadahead.Window + 4*smallReadahead.Chunk; st.Held > limit {
		t.Errorf("holds %d bytes of buffers, more than the window and its spares (%d)", st.Held, limit)
	}

	before := r.Stats()
	p := make([]byte, 4096)
	for i := range 64 {
		off := int64((i*7919)%(size/4096)) * 4096
		if _, err := r.ReadAt(p, off); err != nil || !bytes.Equal(p, old(off, 4096)) {
			t.Fatalf("random read at %d: %v", off, err)
		}
	}
	if after := r.Stats(); after.Hits != before.Hits || after.ReadAhead > before.ReadAhead+int64(smallReadahead.Window) {
		t.Errorf("random reads: %d hits and %d bytes read ahead; want none", after.Hits-before.Hits, after.ReadAhead-before.ReadAhead)
	}
}

// TestReadaheadWritesWin: data read ahead that a write, trim or
// write-zeroes overlaps is never returned afterwards.
func TestReadaheadWritesWin(t *testing.T) {
	for _, c := range []struct {
		name string
		op   func(r *blockdev.Readahead, off, n int64) error
		want func(off int64, n int) []byte
	}{
		{"write", func(r *blockdev.Readahead, off, n int64) error {
			_, err := r.WriteAt(devtest.Pattern(9, off, int(n)), off)
			return err
		}, func(off int64, n int) []byte { return devtest.Pattern(9, off, n) }},
		{"write-fua", func(r *blockdev.Readahead, off, n int64) error {
			_, err := r.WriteAtFUA(devtest.Pattern(9, off, int(n)), off)
			return err
		}, func(off int64, n int) []byte { return devtest.Pattern(9, off, n) }},
		{"trim", func(r *blockdev.Readahead, off, n int64) error { return r.Trim(off, n) },
			func(_ int64, n int) []byte { return make([]byte, n) }},
		{"write-zeroes", func(r *blockdev.Readahead, off, n int64) error { return r.WriteZeroes(off, n, false) },
			func(_ int64, n int) []byte { return make([]byte, n) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			const size = 4 << 20
			r := blockdev.NewReadahead(patterned(t, size, 7), smallReadahead)
			t.Cleanup(func() { r.Close() })
			// Read 256 KiB: the stream reads ahead to 512 KiB.
			readSeq(t, r, 0, 256<<10, 32<<10, old)
			// Change 300-340 KiB, inside what was read ahead.
			const woff, wlen = 300 << 10, 40 << 10
			if err := c.op(r, woff, wlen); err != nil {
				t.Fatal(err)
			}
			readSeq(t, r, 256<<10, 1<<20, 4<<10, func(off int64, n int) []byte {
				if off >= woff && off < woff+wlen {
					return c.want(off, n)
				}
				return old(off, n)
			})
		})
	}
}

// TestReadaheadReadAfterWrite races a sequential reader, which keeps data
// read ahead, with writers that each read back what they wrote once the
// write returned: a read that starts after a write returned must see it.
func TestReadaheadReadAfterWrite(t *testing.T) {
	const size, block, writers, rounds = 2 << 20, 4096, 4, 200
	r := blockdev.NewReadahead(blockdev.NewMem(size), blockdev.ReadaheadOptions{Window: 512 << 10, Chunk: 32 << 10, Trigger: 64 << 10})
	t.Cleanup(func() { r.Close() })
	stop := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() {
		p := make([]byte, 16<<10)
		for off := int64(0); ; off = (off + int64(len(p))) % size {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := r.ReadAt(p, off); err != nil {
				t.Errorf("sequential read at %d: %v", off, err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			got := make([]byte, block)
			for i := range rounds {
				// Each writer owns every writers-th block.
				off := int64(((i*37)%(size/block/writers))*writers+w) * block
				want := bytes.Repeat([]byte(fmt.Sprintf("%d-%d;", w, i)), block)[:block]
				if _, err := r.WriteAt(want, off); err != nil {
					errs <- err
					return
				}
				if _, err := r.ReadAt(got, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, want) {
					errs <- fmt.Errorf("writer %d round %d: a read after the write at %d returned older data", w, i, off)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	reader.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestReadaheadFailedReadAhead: reads ahead that failed are not used; the
// client's reads of their range go to the device.
func TestReadaheadFailedReadAhead(t *testing.T) {
	const size = 4 << 20
	dev, r := faultyReadahead(t, size)
	readSeq(t, r, 0, 96<<10, 32<<10, old)
	// The next read makes the stream sequential: it and the reads ahead
	// it starts (128-384 KiB) fail.
	boom := errors.New("injected")
	dev.FailAll(fault.Read, boom)
	p := make([]byte, 32<<10)
	if _, err := r.ReadAt(p, 96<<10); !errors.Is(err, boom) {
		t.Fatalf("read while the device fails reads = %v, want the device's error", err)
	}
	devtest.WaitFor(t, "the reads ahead to fail", func() bool { return r.Stats().ReadAhead >= 256<<10 })
	dev.Heal()
	readSeq(t, r, 128<<10, 1<<20, 32<<10, old)
}

// TestReadaheadStop: after Stop nothing is read ahead and reads and
// writes go on; Close waits for the reads ahead (TestMain checks that no
// goroutine is left).
func TestReadaheadStop(t *testing.T) {
	const size = 4 << 20
	r := blockdev.NewReadahead(patterned(t, size, 7), smallReadahead)
	readSeq(t, r, 0, 1<<20, 64<<10, old)
	r.Stop()
	if held := r.Stats().Held; held != 0 {
		t.Errorf("still holds %d bytes of buffers after Stop", held)
	}
	ahead := r.Stats().ReadAhead
	readSeq(t, r, 1<<20, 2<<20, 64<<10, old)
	if got := r.Stats().ReadAhead; got != ahead {
		t.Errorf("read %d bytes ahead after Stop", got-ahead)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); !errors.Is(err, blockdev.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, err := r.ReadAt(make([]byte, 512), 0); !errors.Is(err, blockdev.ErrClosed) {
		t.Errorf("ReadAt after Close = %v, want ErrClosed", err)
	}
}

// TestReadaheadDuringWrite: data read ahead while a write to the same
// range was in flight is dropped when the write returns, so a read after
// the write sees it even though the read ahead came back with old data.
func TestReadaheadDuringWrite(t *testing.T) {
	const size = 4 << 20
	dev, r := faultyReadahead(t, size)
	// A write to 600-640 KiB, held before it reaches the device.
	const woff, wlen = 600 << 10, 40 << 10
	dev.Hang(fault.Write)
	written := make(chan error, 1)
	go func() {
		_, err := r.WriteAt(devtest.Pattern(9, woff, wlen), woff)
		written <- err
	}()
	devtest.WaitFor(t, "the write to hang", func() bool { return dev.Blocked() == 1 })
	// Meanwhile a stream reads up to 512 KiB, reading ahead over the
	// write's range, and the reads ahead finish with the old data.
	readSeq(t, r, 0, 512<<10, 32<<10, old)
	devtest.WaitFor(t, "the reads ahead to finish", func() bool { return r.Stats().ReadAhead >= 768<<10-128<<10 })
	dev.Release()
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	readSeq(t, r, 512<<10, 1<<20, 8<<10, func(off int64, n int) []byte {
		if off >= woff && off < woff+wlen {
			return devtest.Pattern(9, off, n)
		}
		return old(off, n)
	})
}

// TestReadaheadHandsOverBuffers: a sequential reader asking ReadBuffer for
// whole chunks gets the buffers read ahead themselves, with the right
// data; one asking for pieces of chunks gets copies; a write drops what
// it overlaps either way; and every buffer is accounted for (Held goes
// back to 0 once the reader has taken or the stream has passed them).
func TestReadaheadHandsOverBuffers(t *testing.T) {
	const size = 4 << 20
	chunk := int(smallReadahead.Chunk)
	dev, r := faultyReadahead(t, size)
	readBuf := func(off int64, n int, want []byte) []byte {
		t.Helper()
		b, err := r.ReadBuffer(n, off)
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("ReadBuffer(%d, %d) = %d bytes, %v; want the device's data", n, off, len(b), err)
		}
		return b
	}
	// Whole chunks, in order: once the stream is sequential, buffers read
	// ahead are handed over; the device sees no more reads than chunks.
	var got [][]byte
	for off := int64(0); off < 1<<20; off += int64(chunk) {
		got = append(got, readBuf(off, chunk, old(off, chunk)))
	}
	st := r.Stats()
	if st.Hits < int64(len(got))/2 {
		t.Errorf("%d of %d whole-chunk reads served from data read ahead; want most", st.Hits, len(got))
	}
	// A buffer handed over is the caller's: a write to its range after
	// it was handed over does not change it, and later reads see the write.
	woff := int64(1<<20) + int64(chunk) // read ahead by now
	devtest.WaitFor(t, "the reads ahead past 1 MiB", func() bool { return r.Stats().ReadAhead >= woff+int64(chunk) })
	for _, off := range []int64{int64(chunk), woff} {
		if _, err := r.WriteAt(devtest.Pattern(9, off, chunk), off); err != nil {
			t.Fatal(err)
		}
	}
	readBuf(1<<20, chunk, old(1<<20, chunk))
	readBuf(woff, chunk, devtest.Pattern(9, woff, chunk))
	if !bytes.Equal(got[1], old(int64(chunk), chunk)) {
		t.Error("a buffer handed over changed when its range was written after the hand-over")
	}
	for _, b := range got {
		blockdev.PutBuffer(b)
	}
	// Pieces of chunks are copied out.
	for off := woff + int64(chunk); off < 2<<20; off += int64(chunk) / 4 {
		blockdev.PutBuffer(readBuf(off, chunk/4, old(off, chunk/4)))
	}
	if n := dev.Count(fault.Read); n > (2<<20)/chunk+int(smallReadahead.Window)/chunk+8 {
		t.Errorf("the device saw %d reads for 2 MiB read in chunks and pieces; want about one per chunk", n)
	}
	r.Stop()
	if held := r.Stats().Held; held != 0 {
		t.Errorf("holds %d bytes of buffers after Stop", held)
	}
}
