package harness

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DiskChecker is a diskchecker-style workload (after Brad Fitzpatrick's
// diskchecker.pl): workers overwrite blocks of one file with
// self-describing records, each write followed by fdatasync, and the
// checker remembers, in this process and so outside the fault domain, for
// every block the generation of the last record whose fdatasync returned
// and whether a newer one was in flight. After a fault and its recovery,
// Verify reads the file back through whatever copy serves it then and
// finds every block that lost an acknowledged record.
//
// Each worker owns the blocks b with b % Workers == its index and writes
// them one at a time, so a block has at most one record in flight. Each
// worker has its own open file: a writeback error is reported to every
// file that was open when it happened, so no fdatasync can succeed on the
// strength of another worker having been told of the error. A worker
// stops at its first error; that block's record stays "in flight".
type DiskChecker struct {
	o      DiskCheckerOptions
	run    uint64
	blocks []blockState // by block; a worker writes only its own
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	writes atomic.Int64 // records written (pwrite issued)
	acked  atomic.Int64 // records whose fdatasync returned

	mu       sync.Mutex // guards the fields below
	lastAck  time.Time
	maxStall time.Duration
	stallEnd time.Time // when the longest stall ended
	errs     []error
}

type blockState struct {
	acked    uint64 // generation of the last acknowledged record (0: the prefill)
	inFlight bool   // generation acked+1 was written but not acknowledged
}

// DiskCheckerOptions shape and bound the workload.
type DiskCheckerOptions struct {
	Path      string        // the file, created and prefilled by StartDiskChecker
	Blocks    int           // default 4096
	BlockSize int           // default 4096 (at least recordHeader+4)
	Workers   int           // default 4
	MaxWrites int64         // stop after this many records in all (default 1,000,000)
	Duration  time.Duration // stop after this long (default 5 minutes)
	Seed      uint64        // seeds the block choice (0: random)
}

func (o *DiskCheckerOptions) setDefaults() {
	if o.Blocks <= 0 {
		o.Blocks = 4096
	}
	if o.BlockSize <= 0 {
		o.BlockSize = 4096
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	o.Workers = min(o.Workers, o.Blocks)
	if o.MaxWrites <= 0 {
		o.MaxWrites = 1_000_000
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Minute
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
}

// DiskCheckReport is what the workload did.
type DiskCheckReport struct {
	Writes   int64         // records written
	Acked    int64         // of them acknowledged by fdatasync
	Unknown  int           // blocks left with a record in flight
	MaxStall time.Duration // the longest time without an acknowledgement while it ran
	StallEnd time.Time     // when that stall ended (the acknowledgement that ended it)
	Errors   []error       // the error that stopped each worker that failed
}

// StartDiskChecker creates o.Path, fills every block with its generation
// 0 record, syncs the file and its directory, and starts the workers. The
// test's cleanup stops them.
func StartDiskChecker(t T, o DiskCheckerOptions) *DiskChecker {
	t.Helper()
	o.setDefaults()
	if o.BlockSize < recordHeader+4 {
		t.Fatalf("diskcheck: block size %d below %d", o.BlockSize, recordHeader+4)
	}
	c := &DiskChecker{o: o, run: rand.Uint64(), blocks: make([]blockState, o.Blocks), done: make(chan struct{})}
	if err := c.prefill(); err != nil {
		t.Fatal(err)
	}
	files := make([]*os.File, 0, o.Workers)
	for range o.Workers {
		f, err := os.OpenFile(o.Path, os.O_RDWR, 0)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			t.Fatalf("diskcheck: %v", err)
		}
		files = append(files, f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Duration)
	c.cancel = cancel
	c.lastAck = time.Now()
	for w, f := range files {
		c.wg.Add(1)
		go c.worker(ctx, w, f)
	}
	go func() { c.wg.Wait(); cancel(); close(c.done) }()
	t.Cleanup(func() { c.Stop(time.Minute) })
	return c
}

func (c *DiskChecker) prefill() error {
	f, err := os.OpenFile(c.o.Path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("diskcheck: %w", err)
	}
	defer f.Close()
	buf := make([]byte, c.o.BlockSize)
	for b := range c.o.Blocks {
		c.record(buf, uint64(b), 0)
		if _, err := f.WriteAt(buf, int64(b)*int64(c.o.BlockSize)); err != nil {
			return fmt.Errorf("diskcheck: prefill: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("diskcheck: prefill: %w", err)
	}
	return syncDir(filepath.Dir(c.o.Path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("diskcheck: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("diskcheck: sync %s: %w", dir, err)
	}
	return nil
}

// worker overwrites random blocks of its own until ctx ends, the write
// budget is spent, or an error.
func (c *DiskChecker) worker(ctx context.Context, w int, f *os.File) {
	defer c.wg.Done()
	defer f.Close()
	rng := rand.New(rand.NewPCG(c.o.Seed, uint64(w)))
	owned := (c.o.Blocks - w + c.o.Workers - 1) / c.o.Workers
	buf := make([]byte, c.o.BlockSize)
	for ctx.Err() == nil {
		if c.writes.Add(1) > c.o.MaxWrites {
			c.writes.Add(-1) // counted, not written
			return
		}
		b := w + rng.IntN(owned)*c.o.Workers
		st := &c.blocks[b]
		st.inFlight = true
		c.record(buf, uint64(b), st.acked+1)
		_, err := f.WriteAt(buf, int64(b)*int64(c.o.BlockSize))
		if err == nil {
			err = unix.Fdatasync(int(f.Fd()))
		}
		if err != nil {
			c.fail(fmt.Errorf("diskcheck: worker %d block %d generation %d: %w", w, b, st.acked+1, err))
			return
		}
		st.acked++
		st.inFlight = false
		c.ack()
	}
}

func (c *DiskChecker) ack() {
	c.acked.Add(1)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := now.Sub(c.lastAck); d > c.maxStall {
		c.maxStall, c.stallEnd = d, now
	}
	c.lastAck = now
}

func (c *DiskChecker) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

// Acked is the number of records acknowledged so far.
func (c *DiskChecker) Acked() int64 { return c.acked.Load() }

// Failed reports whether a worker stopped on an error.
func (c *DiskChecker) Failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.errs) > 0
}

// Done is closed once every worker stopped.
func (c *DiskChecker) Done() <-chan struct{} { return c.done }

// ErrCheckerStuck: workers did not return from I/O within Stop's time-out.
var ErrCheckerStuck = errors.New("diskcheck: workers stuck in I/O")

// Stop ends the workload and waits at most timeout for the workers, which
// finish the write in hand first. It is safe to call more than once.
func (c *DiskChecker) Stop(timeout time.Duration) (DiskCheckReport, error) {
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(timeout):
		return DiskCheckReport{}, fmt.Errorf("%w after %v", ErrCheckerStuck, timeout)
	}
	r := DiskCheckReport{Writes: c.writes.Load(), Acked: c.acked.Load()}
	for _, st := range c.blocks {
		if st.inFlight {
			r.Unknown++
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r.MaxStall, r.StallEnd, r.Errors = c.maxStall, c.stallEnd, append([]error(nil), c.errs...)
	return r, nil
}

// WaitAcked waits until at least n records were acknowledged in all, or
// fails the test after timeout or when every worker stopped first.
func (c *DiskChecker) WaitAcked(t T, n int64, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("%d acknowledged writes (have %d)", n, c.Acked()), func() bool {
		if c.Acked() >= n {
			return true
		}
		select {
		case <-c.done:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("diskcheck: the workload ended with %d of %d writes acknowledged: %v", c.Acked(), n, c.errs)
		default:
		}
		return false
	})
}

// record fills buf with the record of block b, generation gen: a header,
// a filler derived from both, and a CRC-32C of the rest.
func (c *DiskChecker) record(buf []byte, b, gen uint64) {
	copy(buf, recordMagic)
	binary.LittleEndian.PutUint64(buf[8:], c.run)
	binary.LittleEndian.PutUint64(buf[16:], b)
	binary.LittleEndian.PutUint64(buf[24:], gen)
	fill := rand.NewPCG(c.run^b, gen)
	end := len(buf) - 4
	for i := recordHeader; i < end; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], fill.Uint64())
		copy(buf[i:end], w[:])
	}
	binary.LittleEndian.PutUint32(buf[end:], crc32.Checksum(buf[:end], castagnoli))
}

const (
	recordMagic  = "NRDCHK01"
	recordHeader = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
