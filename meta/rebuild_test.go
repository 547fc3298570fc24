package meta

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestRebuildRoundTrip: the rebuild record survives an encode and a
// decode, sits at its documented offsets, and carries the block's Seq.
func TestRebuildRoundTrip(t *testing.T) {
	sb := rebuilding(t)
	b := sb.Encode()
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *sb {
		t.Fatalf("round trip changed the superblock:\n got %+v\nwant %+v", got, sb)
	}
	if m, c, ok := got.ResumableRebuild(); !ok || m != 1 || c != 3<<20 {
		t.Fatalf("ResumableRebuild = %d, %d, %v; want 1, %d, true", m, c, ok, 3<<20)
	}
	for _, c := range []struct {
		off  int
		want []byte
	}{
		{288, []byte{2, 0, 0, 0, 0, 0, 0, 0}},    // member 1, stored + 1; padding
		{296, []byte{0, 0, 0x30, 0, 0, 0, 0, 0}}, // cursor 3 MiB
		{304, []byte{7, 0, 0, 0, 0, 0, 0, 0}},    // stamp = seq
		{312, []byte{0, 0, 0, 0}},                // reserved
	} {
		if got := b[c.off : c.off+len(c.want)]; !bytes.Equal(got, c.want) {
			t.Errorf("bytes at %d = %x, want %x", c.off, got, c.want)
		}
	}
	// A superblock without a rebuild writes the record as zeroes, as the
	// builds before it did.
	if z := sample(t).Encode()[offRebuild:offRebuildEnd]; !bytes.Equal(z, make([]byte, len(z))) {
		t.Fatalf("no rebuild encodes as %x, want zeroes", z)
	}
	sb.ClearRebuild()
	if _, err := Decode(sb.Encode()); err != nil {
		t.Fatal(err)
	}
}

// TestRebuildStaleStamp: a build that predates the record rewrites the
// superblock with a higher Seq and the record's bytes unchanged; the
// record then reads as no rebuild, and its bytes are kept.
func TestRebuildStaleStamp(t *testing.T) {
	b := rebuilding(t).Encode()
	le.PutUint64(b[offSeq:], 8)
	reseal(b)
	sb, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Rebuilding || sb.RebuildMember != 0 || sb.RebuildCursor != 0 {
		t.Fatalf("a stale record was taken: %v %d %d", sb.Rebuilding, sb.RebuildMember, sb.RebuildCursor)
	}
	if _, _, ok := sb.ResumableRebuild(); ok {
		t.Fatal("a stale record is resumable")
	}
	if out := sb.Encode(); !bytes.Equal(out, b) {
		t.Fatalf("stale record bytes not kept: differs at %d", firstDiff(out, b))
	}
	sb.SetRebuild(0, 0)
	sb.Seq = 9
	got, err := Decode(sb.Encode())
	if err != nil || !got.Rebuilding || got.RebuildMember != 0 || got.RebuildCursor != 0 {
		t.Fatalf("a new record over a stale one: %+v, %v", got, err)
	}
}

// TestRebuildValidate: a record that names no member of the volume, a
// cursor that is no region boundary or beyond the volume, or a member or
// cursor without a rebuild is refused, by Validate and by Decode.
func TestRebuildValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(sb *Superblock)
		msg  string
	}{
		{"member beyond members", func(sb *Superblock) { sb.RebuildMember = 3 }, "rebuild of member 3 of 3"},
		{"cursor beyond volume", func(sb *Superblock) { sb.RebuildCursor = sb.VolumeSize + sb.RegionSize }, "rebuild cursor"},
		{"cursor inside a region", func(sb *Superblock) { sb.RebuildCursor = sb.RegionSize + 4096 }, "rebuild cursor"},
		{"member without rebuild", func(sb *Superblock) { sb.Rebuilding, sb.RebuildCursor = false, 0 }, "without a rebuild"},
		{"cursor without rebuild", func(sb *Superblock) { sb.Rebuilding, sb.RebuildMember = false, 0 }, "without a rebuild"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sb := rebuilding(t)
			c.edit(sb)
			err := sb.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Validate = %v, want ErrInvalid saying %q", err, c.msg)
			}
			if !sb.Rebuilding {
				return // not encodable as such: Encode writes no record
			}
			if got, err := Decode(sb.Encode()); !errors.Is(err, ErrInvalid) || got != nil {
				t.Fatalf("Decode = %v, %v; want nil, ErrInvalid", got, err)
			}
		})
	}
	sb := rebuilding(t)
	sb.RebuildCursor = sb.VolumeSize // done: the end of the volume is a boundary
	if err := sb.Validate(); err != nil {
		t.Fatalf("cursor at the end of the volume: %v", err)
	}
}

// TestResumableRebuild: a record is a rebuild to resume only with
// FlagNeedFullSync, an inconsistent copy and no failed member.
func TestResumableRebuild(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(sb *Superblock)
		ok   bool
	}{
		{"as recorded", func(*Superblock) {}, true},
		{"no full-sync flag", func(sb *Superblock) { sb.Flags &^= FlagNeedFullSync }, false},
		{"up to date", func(sb *Superblock) { sb.DiskState = UpToDate }, false},
		{"failed member", func(sb *Superblock) { sb.FailedMembers = 1 }, false},
		{"no record", func(sb *Superblock) { sb.ClearRebuild() }, false},
	} {
		sb := rebuilding(t)
		c.edit(sb)
		if _, _, ok := sb.ResumableRebuild(); ok != c.ok {
			t.Errorf("%s: ResumableRebuild ok = %v, want %v", c.name, ok, c.ok)
		}
	}
}
