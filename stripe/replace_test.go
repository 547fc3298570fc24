package stripe

import (
	"bytes"
	"errors"
	"testing"

	"github.com/netraid/netraid/blockdev"
)

// TestReplace: after Replace, member i's chunks come from the new device
// and the other members' from the old ones; a wrong-sized device is
// refused.
func TestReplace(t *testing.T) {
	const chunk, member = 4096, 64 << 10
	mems := []*blockdev.Mem{blockdev.NewMem(member), blockdev.NewMem(member)}
	s, err := New([]blockdev.Device{mems[0], mems[1]}, chunk)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := bytes.Repeat([]byte{7}, 4*chunk)
	if _, err := s.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replace(1, blockdev.NewMem(member/2)); !errors.Is(err, ErrGeometry) {
		t.Fatalf("replace with a smaller device: %v", err)
	}
	fresh := blockdev.NewMem(member)
	old, err := s.Replace(1, fresh)
	if err != nil || old != mems[1] {
		t.Fatalf("Replace = %v, %v", old, err)
	}
	got := make([]byte, 4*chunk)
	if _, err := s.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for c := range 4 {
		want := byte(7)
		if c%2 == 1 {
			want = 0 // member 1 is the fresh, zeroed device now
		}
		if got[c*chunk] != want {
			t.Fatalf("chunk %d reads %d, want %d", c, got[c*chunk], want)
		}
	}
}
