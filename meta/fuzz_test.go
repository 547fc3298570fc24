package meta

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode checks that Decode never panics, that what it accepts is
// valid and encodes back to the same bytes, and that anything it rejects
// is rejected with one of the documented sentinels. Each input is tried as
// given, then padded with zeroes to a whole block with the magic and CRC
// fixed up, so that the fuzzer gets past the checksum into the field
// checks (and so that minimizing an input does not change its meaning).
//
// Run it with a bounded minimization, or minimizing each new 4 KiB input
// stalls the fuzzer for a minute:
//
//	go test ./meta -run '^$' -fuzz FuzzDecode -fuzzminimizetime 100x
func FuzzDecode(f *testing.F) {
	f.Add(sample(f).Encode())
	f.Add(rebuilding(f).Encode())
	f.Add(make([]byte, SlotSize))
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b)
		c := make([]byte, SlotSize)
		copy(c, b)
		copy(c, Magic)
		check(t, reseal(c))
	})
}

func check(t *testing.T, b []byte) {
	sb, err := Decode(b)
	if err != nil {
		if sb != nil {
			t.Fatalf("Decode returned a superblock with error %v", err)
		}
		for _, s := range []error{ErrNoSuperblock, ErrBadMagic, ErrBadChecksum, ErrVersion, ErrInvalid} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("Decode error %v wraps no sentinel", err)
	}
	if err := sb.Validate(); err != nil {
		t.Fatalf("Decode accepted an invalid superblock: %v", err)
	}
	if out := sb.Encode(); !bytes.Equal(out, b[:SlotSize]) {
		t.Fatalf("Encode(Decode(b)) differs from b at byte %d", firstDiff(out, b[:SlotSize]))
	}
}
