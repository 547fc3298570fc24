package harness

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
)

// DiskCheckResult is what Verify found, block by block.
type DiskCheckResult struct {
	Blocks   int         // blocks read
	Current  int         // holding their last acknowledged record
	InFlight int         // holding a record that was in flight, not acknowledged (allowed)
	Torn     int         // unreadable where a record was in flight (allowed: it was never acknowledged)
	Lost     []BlockLoss // holding less than their last acknowledged record
}

// BlockLoss is one block that lost an acknowledged record.
type BlockLoss struct {
	Block int
	Want  uint64 // the generation acknowledged last
	Got   string // what the block holds instead
}

func (l BlockLoss) String() string {
	return fmt.Sprintf("block %d: want generation %d, found %s", l.Block, l.Want, l.Got)
}

// OK reports whether no acknowledged record was lost.
func (r DiskCheckResult) OK() bool { return len(r.Lost) == 0 }

func (r DiskCheckResult) String() string {
	s := fmt.Sprintf("%d blocks: %d current, %d with an unacknowledged write, %d torn unacknowledged, %d lost",
		r.Blocks, r.Current, r.InFlight, r.Torn, len(r.Lost))
	var sb strings.Builder
	for i, l := range r.Lost {
		if i == 10 {
			fmt.Fprintf(&sb, "\n  … and %d more", len(r.Lost)-i)
			break
		}
		sb.WriteString("\n  " + l.String())
	}
	return s + sb.String()
}

// Verify reads the checker's file at path (the same file, seen through
// another mount after recovery) and compares every block with what was
// acknowledged. The workload must have stopped. A block may hold its last
// acknowledged record or, if one was in flight, that one (whole or torn);
// anything else is a loss. The error is for failing to read at all.
func (c *DiskChecker) Verify(path string) (DiskCheckResult, error) {
	select {
	case <-c.done:
	default:
		return DiskCheckResult{}, errors.New("diskcheck: Verify while the workload runs")
	}
	f, err := os.Open(path)
	if err != nil {
		return DiskCheckResult{}, fmt.Errorf("diskcheck: %w", err)
	}
	defer f.Close()
	var r DiskCheckResult
	got := make([]byte, c.o.BlockSize)
	want := make([]byte, c.o.BlockSize)
	for b, st := range c.blocks {
		if _, err := f.ReadAt(got, int64(b)*int64(c.o.BlockSize)); err != nil {
			if errors.Is(err, io.EOF) {
				clear(got) // a short file: the block is gone
			} else {
				return r, fmt.Errorf("diskcheck: read block %d: %w", b, err)
			}
		}
		r.Blocks++
		c.record(want, uint64(b), st.acked)
		if bytes.Equal(got, want) {
			r.Current++
			continue
		}
		if st.inFlight {
			c.record(want, uint64(b), st.acked+1)
			if bytes.Equal(got, want) {
				r.InFlight++
			} else {
				r.Torn++
			}
			continue
		}
		r.Lost = append(r.Lost, BlockLoss{Block: b, Want: st.acked, Got: c.describe(got, uint64(b))})
	}
	return r, nil
}

// describe says what a block holds that is not the record expected.
func (c *DiskChecker) describe(buf []byte, b uint64) string {
	end := len(buf) - 4
	switch {
	case !bytes.HasPrefix(buf, []byte(recordMagic)):
		if bytes.Count(buf, []byte{0}) == len(buf) {
			return "zeros"
		}
		return fmt.Sprintf("no record (starts %x)", buf[:16])
	case binary.LittleEndian.Uint32(buf[end:]) != crc32.Checksum(buf[:end], castagnoli):
		return "a record with a bad checksum (torn)"
	case binary.LittleEndian.Uint64(buf[8:]) != c.run:
		return "a record of another run"
	case binary.LittleEndian.Uint64(buf[16:]) != b:
		return fmt.Sprintf("the record of block %d", binary.LittleEndian.Uint64(buf[16:]))
	}
	return fmt.Sprintf("generation %d", binary.LittleEndian.Uint64(buf[24:]))
}
