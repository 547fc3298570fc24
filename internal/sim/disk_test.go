package sim

import (
	"bytes"
	"errors"
	"testing"
)

// TestSeverIsOneInstant: a process that, on an error from one disk,
// records it on the other (as a volume records a failed member) records
// nothing when its disks are severed: a power loss or a kill takes every
// disk at the same instant, never one before the other.
func TestSeverIsOneInstant(t *testing.T) {
	for round := range 200 {
		d0, d1 := NewDisk("d0", 1<<20), NewDisk("d1", 1<<20)
		h0, h1 := d0.Open(), d1.Open()
		done := make(chan error, 1)
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := h0.WriteAt(buf, 0); err != nil {
					_, err = h1.WriteAt([]byte("d0 failed"), 0)
					done <- err
					return
				}
			}
		}()
		Sever([]*Disk{d0, d1}, round%2 == 0)
		if err := <-done; !errors.Is(err, ErrSevered) {
			t.Fatalf("round %d: the record of d0's failure on d1: %v, want ErrSevered", round, err)
		}
		got := make([]byte, 9)
		d1.ReadAt(got, 0)
		if string(got) == "d0 failed" {
			t.Fatalf("round %d: d1 holds the record of d0's failure, written after d0 was cut", round)
		}
	}
}

// TestDiskDurable: Durable shows what a crash would leave, and leaves
// the disk as it was: the unflushed write still reads, a crash still
// drops it, a flush still keeps it.
func TestDiskDurable(t *testing.T) {
	for _, flush := range []bool{false, true} {
		d := NewDisk("d", 1<<20)
		h := d.Open()
		old, unflushed := bytes.Repeat([]byte{1}, 6000), bytes.Repeat([]byte{2}, 6000)
		if _, err := h.WriteAtFUA(old, 3000); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(unflushed, 5000); err != nil {
			t.Fatal(err)
		}
		now := make([]byte, 1<<20)
		d.ReadAt(now, 0)
		want := make([]byte, 1<<20)
		copy(want[3000:], old)
		if got := d.Durable(); !bytes.Equal(got, want) {
			t.Fatal("Durable holds more or less than what was flushed")
		}
		after := make([]byte, 1<<20)
		if d.ReadAt(after, 0); !bytes.Equal(after, now) {
			t.Fatal("Durable changed what the disk holds now")
		}
		if flush {
			if err := h.Flush(); err != nil {
				t.Fatal(err)
			}
			want = now
		}
		Sever([]*Disk{d}, true)
		if d.ReadAt(after, 0); !bytes.Equal(after, want) {
			t.Fatalf("flush %v: after a crash the disk does not hold what was flushed", flush)
		}
	}
}
