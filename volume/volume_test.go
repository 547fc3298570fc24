package volume

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

func TestCreateThenOpenShuffled(t *testing.T) {
	paths := sparseDisks(t, 4, 64*mib)
	if err := os.Truncate(paths[2], 80*mib); err != nil {
		t.Fatal(err)
	}
	set := meta.NewUUID()
	sb := mustCreate(t, paths, CreateOptions{Name: "data.vol-1", Chunk: 128 * kib, SetUUID: set})
	if sb.Member != 0 || sb.Members != 4 || sb.SetUUID != set || sb.Seq != 1 || sb.DiskState != meta.JustCreated ||
		sb.Role != meta.Secondary || sb.Chunk != uint64(128*kib) || sb.RegionSize != uint64(mib) {
		t.Fatalf("Create returned %+v", sb)
	}
	// The smallest disk decides: 64 MiB less 1 MiB of metadata.
	if sb.DataOffset != uint64(mib) || sb.MemberDataSize != uint64(63*mib) || sb.VolumeSize != uint64(4*63*mib) {
		t.Fatalf("geometry %+v", sb.Layout())
	}

	r := rand.New(rand.NewPCG(5, 6))
	for range 3 {
		shuffled := slices.Clone(paths)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		v := mustOpen(t, shuffled, OpenOptions{})
		got := v.Super()
		if got != *sb {
			t.Fatalf("Super after Open =\n %+v\nwant\n %+v", got, *sb)
		}
		if v.Data().Size() != int64(sb.VolumeSize) || v.Bitmap().Size() != 2*int64(sb.BitmapBytes) {
			t.Fatalf("Data %d bytes, Bitmap %d bytes", v.Data().Size(), v.Bitmap().Size())
		}
		for i, m := range v.Members() {
			if m.Index != i || m.Path != paths[i] || m.Failed {
				t.Fatalf("member %d = %+v", i, m)
			}
			if want := int64(64 * mib); i == 2 {
				if m.Size != 80*mib {
					t.Fatalf("member 2 size %d", m.Size)
				}
			} else if m.Size != want {
				t.Fatalf("member %d size %d", i, m.Size)
			}
		}
		mustClose(t, v)
	}
	// Each disk records its own place and identity.
	uuids := map[meta.UUID]bool{}
	for i, p := range paths {
		e, slot, err := Examine(p)
		if err != nil {
			t.Fatal(err)
		}
		if e.Member != uint32(i) || e.SetUUID != set || slot != 0 || uuids[e.DiskUUID] {
			t.Fatalf("disk %d: member %d set %s slot %d disk %s", i, e.Member, e.SetUUID, slot, e.DiskUUID)
		}
		uuids[e.DiskUUID] = true
	}
}

// TestDataPersists writes through Data, reopens, and reads back; it also
// checks where the bytes landed on the members.
func TestDataPersists(t *testing.T) {
	paths := sparseDisks(t, 3, 16*mib)
	sb := mustCreate(t, paths, CreateOptions{Chunk: 64 * kib})
	v := mustOpen(t, paths, OpenOptions{})
	writes := []struct {
		off int64
		b   []byte
	}{
		{0, pattern(1, 4096)},
		{64*kib - 100, pattern(2, 300)},        // unaligned, across chunks 0 and 1
		{3*64*kib + 1, pattern(3, 2*64*kib)},   // unaligned, three chunks
		{v.Data().Size() - 10, pattern(4, 10)}, // the very end
	}
	for _, w := range writes {
		if n, err := v.Data().WriteAt(w.b, w.off); n != len(w.b) || err != nil {
			t.Fatalf("WriteAt(%d, %d) = %d, %v", w.off, len(w.b), n, err)
		}
	}
	if err := v.Data().Flush(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, v)

	v = mustOpen(t, []string{paths[2], paths[0], paths[1]}, OpenOptions{})
	defer mustClose(t, v)
	for _, w := range writes {
		got := make([]byte, len(w.b))
		if _, err := v.Data().ReadAt(got, w.off); err != nil || !bytes.Equal(got, w.b) {
			t.Fatalf("ReadAt(%d, %d) after reopen: %v, equal %v", w.off, len(w.b), err, bytes.Equal(got, w.b))
		}
	}
	// Chunk 0 is member 0's first chunk; the 200 bytes that spill into
	// chunk 1 start member 1's data area.
	data := int64(sb.DataOffset)
	if got := readAt(t, paths[0], data, 4096); !bytes.Equal(got, writes[0].b) {
		t.Fatal("chunk 0 is not at the start of member 0's data area")
	}
	if got := readAt(t, paths[1], data, 200); !bytes.Equal(got, writes[1].b[100:]) {
		t.Fatal("chunk 1 is not at the start of member 1's data area")
	}
}

func TestUpdateSuperSurvivesReopen(t *testing.T) {
	paths := sparseDisks(t, 3, 8*mib)
	created := mustCreate(t, paths, CreateOptions{})
	v := mustOpen(t, paths, OpenOptions{})
	gens := meta.Generations{Current: 0xabc, Bitmap: 0xdef, History: [4]uint64{1, 2}}
	peer := meta.NewUUID()
	for i := range 3 {
		err := v.UpdateSuper(func(sb *meta.Superblock) {
			sb.Role = meta.Primary
			sb.DiskState = meta.UpToDate
			sb.Generations = gens
			sb.PeerSetUUID = peer
			sb.ResyncCursor = uint64(int64(i) * mib)
			sb.Seq = 999    // ignored
			sb.Member = 2   // per-member: kept
			sb.Name = "new" // a rename is allowed
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	want := v.Super()
	if want.Seq != 4 || want.Role != meta.Primary || want.Generations != gens || want.Member != 0 || want.Name != "new" ||
		want.DiskUUID != created.DiskUUID || want.ResyncCursor != 2*uint64(mib) {
		t.Fatalf("Super after updates = %+v", want)
	}
	mustClose(t, v)

	v = mustOpen(t, paths, OpenOptions{})
	if got := v.Super(); got != want {
		t.Fatalf("Super after reopen =\n %+v\nwant\n %+v", got, want)
	}
	mustClose(t, v)
	for i, p := range paths {
		sb, slot, err := Examine(p)
		if err != nil {
			t.Fatal(err)
		}
		// Seq 1 in both slots, then 2 in slot 1, 3 in slot 0, 4 in slot 1.
		if sb.Seq != 4 || slot != 1 || sb.Member != uint32(i) || sb.Generations != gens {
			t.Fatalf("disk %d: seq %d slot %d member %d", i, sb.Seq, slot, sb.Member)
		}
		older, err := meta.Decode(readAt(t, p, 0, meta.SlotSize))
		if err != nil || older.Seq != 3 {
			t.Fatalf("disk %d slot 0: %v, %v; want seq 3", i, older, err)
		}
	}
}

func TestUpdateSuperRefusesIdentityChange(t *testing.T) {
	paths := sparseDisks(t, 2, 8*mib)
	mustCreate(t, paths, CreateOptions{})
	v := mustOpen(t, paths, OpenOptions{})
	defer mustClose(t, v)
	before := hashes(t, paths)
	for name, fn := range map[string]func(*meta.Superblock){
		"chunk":   func(sb *meta.Superblock) { sb.Chunk *= 2 },
		"set":     func(sb *meta.Superblock) { sb.SetUUID = meta.NewUUID() },
		"size":    func(sb *meta.Superblock) { sb.VolumeSize -= sb.Chunk },
		"created": func(sb *meta.Superblock) { sb.CreatedUnix++ },
	} {
		if err := v.UpdateSuper(fn); !errors.Is(err, ErrIdentity) {
			t.Errorf("%s: UpdateSuper = %v, want ErrIdentity", name, err)
		}
	}
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.Name = "bad name" }); !errors.Is(err, meta.ErrInvalid) {
		t.Errorf("invalid name: UpdateSuper = %v, want meta.ErrInvalid", err)
	}
	checkUnchanged(t, paths, before)
	if v.Super().Seq != 1 {
		t.Fatalf("a refused update moved Seq to %d", v.Super().Seq)
	}
}

func TestReadOnly(t *testing.T) {
	paths := sparseDisks(t, 2, 8*mib)
	mustCreate(t, paths, CreateOptions{})
	before := hashes(t, paths)
	v := mustOpen(t, paths, OpenOptions{ReadOnly: true})
	if _, err := v.Data().WriteAt(make([]byte, 4096), 0); !errors.Is(err, blockdev.ErrReadOnly) {
		t.Errorf("Data WriteAt = %v, want ErrReadOnly", err)
	}
	if _, err := v.Bitmap().WriteAt(make([]byte, 1), 0); !errors.Is(err, blockdev.ErrReadOnly) {
		t.Errorf("Bitmap WriteAt = %v, want ErrReadOnly", err)
	}
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.Role = meta.Primary }); !errors.Is(err, blockdev.ErrReadOnly) {
		t.Errorf("UpdateSuper = %v, want ErrReadOnly", err)
	}
	if _, err := v.Data().ReadAt(make([]byte, 100), 7); err != nil {
		t.Errorf("ReadAt = %v", err)
	}
	mustClose(t, v)
	checkUnchanged(t, paths, before)
}

func TestCloseReleases(t *testing.T) {
	paths := sparseDisks(t, 2, 8*mib)
	mustCreate(t, paths, CreateOptions{})
	v := mustOpen(t, paths, OpenOptions{})
	mustClose(t, v)
	if err := v.Close(); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := v.Data().ReadAt(make([]byte, 1), 0); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("Data ReadAt after Close = %v", err)
	}
	if err := v.UpdateSuper(func(*meta.Superblock) {}); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("UpdateSuper after Close = %v", err)
	}
	// The locks are gone: the disks open again.
	mustClose(t, mustOpen(t, paths, OpenOptions{}))
}
