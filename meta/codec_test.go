package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden superblock in testdata")

func TestRoundTrip(t *testing.T) {
	sb := sample(t)
	b := sb.Encode()
	if len(b) != SlotSize {
		t.Fatalf("Encode returned %d bytes, want %d", len(b), SlotSize)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if *got != *sb {
		t.Fatalf("round trip changed the superblock:\n got %+v\nwant %+v", got, sb)
	}
}

// TestGolden pins the byte layout: a change of any offset fails it, which
// a round trip alone would not catch.
func TestGolden(t *testing.T) {
	b := sample(t).Encode()
	path := filepath.Join("testdata", "superblock-v1.golden")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(b, want); i >= 0 {
		t.Fatalf("encoding differs from %s at byte %d: the on-disk format changed", path, i)
	}
	// Spot checks against the documented offsets.
	for _, c := range []struct {
		off  int
		want []byte
	}{
		{0, []byte("NETRAID\x00")},
		{8, []byte{1, 0, 0, 0}},                 // version
		{16, []byte{7, 0, 0, 0, 0, 0, 0, 0}},    // seq
		{64, []byte{2, 0, 0, 0, 3, 0, 0, 0}},    // member, members
		{72, []byte{0, 0, 1, 0, 0, 0, 0, 0}},    // chunk 64 KiB
		{132, []byte{1, 3}},                     // role, disk state
		{216, []byte{4, 0, 0, 0, 0, 0, 0, 0}},   // failed members
		{224, []byte("vol-0.data_x\x00")},       // name
		{offRebuild - 1, []byte{0, 0, 0, 0, 0}}, // name padding, rebuild record
	} {
		if got := b[c.off : c.off+len(c.want)]; !bytes.Equal(got, c.want) {
			t.Errorf("bytes at %d = %x, want %x", c.off, got, c.want)
		}
	}
}

// tear makes b look like a write cut off inside its first sector, on a
// device whose sector writes are not atomic: the rest is left-over junk.
// (All fields sit in the first 512 bytes, so a tear at a sector boundary
// leaves either the old or the new superblock whole.)
func tear(b []byte) []byte {
	for i := 100; i < len(b); i++ {
		b[i] = 0xa5
	}
	return b
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func TestDecodeRejects(t *testing.T) {
	good := sample(t).Encode()
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:SlotSize-1], ErrNoSuperblock},
		{"empty", nil, ErrNoSuperblock},
		{"zeroes", make([]byte, SlotSize), ErrBadMagic},
		{"magic", edit(func(b []byte) { b[7] = 'X' }), ErrBadMagic},
		{"bit flip in seq", edit(func(b []byte) { b[offSeq] ^= 1 }), ErrBadChecksum},
		{"bit flip in reserved", edit(func(b []byte) { b[SlotSize-1] ^= 0x80 }), ErrBadChecksum},
		{"bit flip in crc", edit(func(b []byte) { b[offCRC+3] ^= 0x10 }), ErrBadChecksum},
		{"torn inside first sector", edit(func(b []byte) { tear(b) }), ErrBadChecksum},
		{"newer version", edit(func(b []byte) { b[offVersion] = 2; reseal(b) }), ErrVersion},
		{"newer version, damaged", edit(func(b []byte) { b[offVersion] = 2 }), ErrBadChecksum},
		{"version zero", edit(func(b []byte) { b[offVersion] = 0; reseal(b) }), ErrInvalid},
		{"bytes after name NUL", edit(func(b []byte) { b[offName+20] = 'z'; reseal(b) }), ErrInvalid},
		{"bad name byte", edit(func(b []byte) { b[offName] = '/'; reseal(b) }), ErrInvalid},
		{"empty name", edit(func(b []byte) { clear(b[offName:offReserved]); reseal(b) }), ErrInvalid},
		{"member beyond members", edit(func(b []byte) { b[offMember] = 3; reseal(b) }), ErrInvalid},
		{"unknown role", edit(func(b []byte) { b[offRole] = 2; reseal(b) }), ErrInvalid},
		{"unknown disk state", edit(func(b []byte) { b[offDiskState] = 5; reseal(b) }), ErrInvalid},
		{"odd chunk", edit(func(b []byte) { b[offChunk] = 1; reseal(b) }), ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			sb, err := Decode(c.b)
			if !errors.Is(err, c.want) || sb != nil {
				t.Fatalf("Decode = %v, %v; want nil, %v", sb, err, c.want)
			}
		})
	}
}

func TestDecodeAcceptsLongerBuffer(t *testing.T) {
	b := append(sample(t).Encode(), 0xff, 0xff)
	if _, err := Decode(b); err != nil {
		t.Fatalf("Decode of a block followed by other bytes: %v", err)
	}
}

// TestReservedKept checks that bytes a later version may put in the
// reserved area survive a decode, an update and an encode.
func TestReservedKept(t *testing.T) {
	b := sample(t).Encode()
	b[offPad] = 0x42
	b[offReserved] = 0x99
	b[SlotSize-1] = 0x77
	reseal(b)
	sb, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	sb.Seq++
	out := sb.Encode()
	if out[offPad] != 0x42 || out[offReserved] != 0x99 || out[SlotSize-1] != 0x77 {
		t.Fatalf("reserved bytes lost: %x %x %x", out[offPad], out[offReserved], out[SlotSize-1])
	}
}

func TestEncodeLongNamePanics(t *testing.T) {
	sb := sample(t)
	sb.Name = string(bytes.Repeat([]byte{'a'}, MaxNameLen+1))
	defer func() {
		if recover() == nil {
			t.Fatal("Encode of a 65-byte name did not panic")
		}
	}()
	sb.Encode()
}

func TestPick(t *testing.T) {
	older := sample(t)
	newer := sample(t)
	newer.Seq = older.Seq + 1
	newer.DiskState = Outdated
	o, n := older.Encode(), newer.Encode()
	torn := tear(bytes.Clone(n))
	future := bytes.Clone(n)
	future[offVersion] = 2
	reseal(future)
	zero := make([]byte, SlotSize)

	for _, c := range []struct {
		name     string
		a, b     []byte
		wantSeq  uint64
		wantSlot int
		wantErr  []error
	}{
		{"b newer", o, n, newer.Seq, 1, nil},
		{"a newer", n, o, newer.Seq, 0, nil},
		{"tie picks slot 0", o, o, older.Seq, 0, nil},
		{"a torn", torn, o, older.Seq, 1, nil},
		{"b torn", o, torn, older.Seq, 0, nil},
		{"b blank", o, zero, older.Seq, 0, nil},
		{"both blank", zero, zero, 0, 0, []error{ErrNoSuperblock}},
		{"both torn", torn, torn, 0, 0, []error{ErrBadChecksum}},
		{"torn and blank", zero, torn, 0, 0, []error{ErrBadChecksum, ErrBadMagic}},
		{"newer format in a", future, o, 0, 0, []error{ErrVersion}},
		{"newer format in b", o, future, 0, 1, []error{ErrVersion}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sb, slot, err := Pick(c.a, c.b)
			if c.wantErr != nil {
				for _, w := range c.wantErr {
					if !errors.Is(err, w) {
						t.Errorf("Pick error %v, want it to wrap %v", err, w)
					}
				}
				if sb != nil {
					t.Errorf("Pick returned a superblock with error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pick: %v", err)
			}
			if sb.Seq != c.wantSeq || slot != c.wantSlot {
				t.Fatalf("Pick = seq %d slot %d, want seq %d slot %d", sb.Seq, slot, c.wantSeq, c.wantSlot)
			}
		})
	}
}

func TestUUID(t *testing.T) {
	a, b := NewUUID(), NewUUID()
	if a == b || a.IsZero() {
		t.Fatalf("NewUUID returned %v and %v", a, b)
	}
	if a[6]>>4 != 4 || a[8]>>6 != 2 {
		t.Fatalf("%v is not a version 4 variant 1 UUID", a)
	}
	p, err := ParseUUID(a.String())
	if err != nil || p != a {
		t.Fatalf("ParseUUID(%q) = %v, %v", a.String(), p, err)
	}
	u := UUID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 1, 2, 3, 4, 5, 6, 0xff}
	if s := u.String(); s != "01234567-89ab-cdef-0001-0203040506ff" {
		t.Fatalf("String = %q", s)
	}
	for _, bad := range []string{"", "01234567-89ab-cdef-0001-0203040506f", "0123456789ab-cdef-0001-0203040506ff-", "0123456z-89ab-cdef-0001-0203040506ff"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) succeeded", bad)
		}
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Primary.String(), "primary"},
		{Secondary.String(), "secondary"},
		{Role(9).String(), "role(9)"},
		{JustCreated.String(), "just-created"},
		{Inconsistent.String(), "inconsistent"},
		{Outdated.String(), "outdated"},
		{UpToDate.String(), "up-to-date"},
		{Failed.String(), "failed"},
		{DiskState(7).String(), "disk-state(7)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestJSON checks that identifiers and states read well in JSON and come
// back the same.
func TestJSON(t *testing.T) {
	sb := sample(t)
	b, err := json.Marshal(sb)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"SetUUID":"01020304-0506-0708-090a-0b0c0d0e0f10"`, `"Role":"primary"`, `"DiskState":"up-to-date"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back Superblock
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != *sb {
		t.Fatalf("JSON round trip:\n got %+v\nwant %+v", back, *sb)
	}
	for _, bad := range []string{`{"Role":"boss"}`, `{"DiskState":"fine"}`, `{"SetUUID":"x"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}
