package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func checkerOn(t *testing.T, writes int64) (*DiskChecker, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dc")
	c := StartDiskChecker(t, DiskCheckerOptions{Path: path, Blocks: 64, BlockSize: 512, Workers: 3, MaxWrites: writes, Seed: 1})
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		t.Fatal("the workload did not finish its writes in a minute")
	}
	r, err := c.Stop(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Writes != writes || r.Acked != writes || r.Unknown != 0 || len(r.Errors) != 0 {
		t.Fatalf("report %+v: want %d writes, all acknowledged", r, writes)
	}
	return c, path
}

func TestDiskCheckerIntact(t *testing.T) {
	c, path := checkerOn(t, 500)
	res, err := c.Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Blocks != 64 || res.Current != 64 {
		t.Fatalf("an untouched file: %v", res)
	}
}

// overwrite puts raw bytes at block b of path.
func overwrite(t *testing.T, path string, b int, p []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, int64(b)*512); err != nil {
		t.Fatal(err)
	}
}

// Every way a block can lose its acknowledged record is a loss; what an
// unacknowledged write may leave is not.
func TestDiskCheckerFindsLosses(t *testing.T) {
	c, path := checkerOn(t, 2000)
	old := func(b int) []byte { // the record before the last acknowledged one
		buf := make([]byte, 512)
		c.record(buf, uint64(b), c.blocks[b].acked-1)
		return buf
	}
	var written []int // blocks written at least once, so an older record exists
	for b, st := range c.blocks {
		if st.acked > 0 {
			written = append(written, b)
		}
	}
	if len(written) < 6 {
		t.Fatalf("only %d blocks written", len(written))
	}
	stale, zeroed, torn, swapped := written[0], written[1], written[2], written[3]
	flight, flightTorn := written[4], written[5]
	overwrite(t, path, stale, old(stale))
	overwrite(t, path, zeroed, make([]byte, 512))
	tornBuf := old(torn)
	tornBuf[100] ^= 0xff
	overwrite(t, path, torn, tornBuf)
	other := make([]byte, 512)
	c.record(other, uint64(swapped+1), c.blocks[swapped].acked)
	overwrite(t, path, swapped, other)
	// An unacknowledged write that landed, and one that tore.
	c.blocks[flight].inFlight = true
	next := make([]byte, 512)
	c.record(next, uint64(flight), c.blocks[flight].acked+1)
	overwrite(t, path, flight, next)
	c.blocks[flightTorn].inFlight = true
	overwrite(t, path, flightTorn, tornBuf)

	res, err := c.Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	if res.InFlight != 1 || res.Torn != 1 || len(res.Lost) != 4 {
		t.Fatalf("want 1 in flight, 1 torn, 4 lost: %v", res)
	}
	want := map[int]string{
		stale:   "generation",
		zeroed:  "zeros",
		torn:    "bad checksum",
		swapped: "the record of block",
	}
	for _, l := range res.Lost {
		if !strings.Contains(l.Got, want[l.Block]) {
			t.Errorf("block %d: %q, want it to mention %q", l.Block, l.Got, want[l.Block])
		}
	}
	t.Log(res)

	// A file cut short loses what was beyond its end.
	if err := os.Truncate(path, 60*512); err != nil {
		t.Fatal(err)
	}
	res, err = c.Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Lost) < 4+4 {
		t.Fatalf("a truncated file: %v", res)
	}
}

// Stop mid-run reports what was written; every write was acknowledged.
func TestDiskCheckerStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dc")
	begin := time.Now()
	c := StartDiskChecker(t, DiskCheckerOptions{Path: path, Blocks: 16, BlockSize: 512, Workers: 2, Duration: time.Minute})
	c.WaitAcked(t, 50, time.Minute)
	if _, err := c.Verify(path); err == nil {
		t.Fatal("Verify while the workload runs")
	}
	r, err := c.Stop(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r.Acked < 50 || r.Writes != r.Acked || r.Unknown != 0 || r.MaxStall <= 0 {
		t.Fatalf("report %+v", r)
	}
	if start := r.StallEnd.Add(-r.MaxStall); start.Before(begin) || r.StallEnd.After(time.Now()) {
		t.Fatalf("the longest stall, %v to %v, is not within the run, from %v", start, r.StallEnd, begin)
	}
	if res, err := c.Verify(path); err != nil || !res.OK() || res.Current != 16 {
		t.Fatalf("verify: %v %v", res, err)
	}
}

// A worker stops at its first error and leaves that block in flight.
func TestDiskCheckerStopsOnError(t *testing.T) {
	c, path := checkerOn(t, 10)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // every write fails
	c.o.MaxWrites++
	c.wg.Add(1)
	c.worker(t.Context(), 0, f)
	if !c.Failed() {
		t.Fatal("a failed write did not stop the worker with an error")
	}
	inFlight := 0
	for _, st := range c.blocks {
		if st.inFlight {
			inFlight++
		}
	}
	if inFlight != 1 {
		t.Fatalf("%d blocks in flight after one failed write, want 1", inFlight)
	}
	res, err := c.Verify(path)
	if err != nil || !res.OK() || res.Current != 64 {
		t.Fatalf("verify: %v %v", res, err)
	}
}
