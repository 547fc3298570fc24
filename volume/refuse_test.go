package volume

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// TestOpenRefuses checks every reason Open refuses a set of disks, that the
// error names the disk and what to do, and that no disk changed.
func TestOpenRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		// setup returns the paths to open, the disk the error must name
		// ("" for none), and, if the test must keep it alive during Open,
		// a volume to close afterwards.
		setup func(t *testing.T) (paths []string, blame string, hold *Volume)
		want  error
		says  []string
	}{
		{"blank disk", func(t *testing.T) ([]string, string, *Volume) {
			a, blank := createVol(t, "a", 2), sparseDisks(t, 1, 8*mib)[0]
			return []string{a[0], blank, a[1]}, blank, nil
		}, ErrNotMember, []string{"not a netraid member", "run netraid create"}},

		{"garbled superblock", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "a", 2)
			writeAt(t, a[1], 100, []byte("garbage"))
			writeAt(t, a[1], meta.SlotSize+100, []byte("garbage"))
			return a, a[1], nil
		}, meta.ErrBadChecksum, []string{"damaged netraid superblock", "bad checksum"}},

		{"disk of another volume", func(t *testing.T) ([]string, string, *Volume) {
			a, b := createVol(t, "alpha", 2), createVol(t, "beta", 2)
			return []string{a[0], b[1], a[1]}, b[1], nil
		}, ErrForeign, []string{`volume "beta"`, `volume "alpha"`, "give the disks of one volume only"}},

		{"member index twice", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "a", 2)
			dup := filepath.Join(t.TempDir(), "copy")
			copyFile(t, a[1], dup)
			return []string{a[0], a[1], dup}, dup, nil
		}, ErrDuplicate, []string{"claims to be member 1", "one is a copy of the other"}},

		{"same path twice", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "a", 2)
			return []string{a[0], a[1], a[0]}, "", nil
		}, ErrDuplicate, []string{"given twice"}},

		{"same disk through a symlink", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "a", 2)
			link := filepath.Join(t.TempDir(), "link")
			if err := os.Symlink(a[1], link); err != nil {
				t.Fatal(err)
			}
			return []string{a[0], a[1], link}, link, nil
		}, ErrDuplicate, []string{"is the same disk as"}},

		{"missing member", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "gamma", 3)
			return []string{a[2], a[0]}, "", nil
		}, ErrMissing, []string{`member 1 of 3 of volume "gamma"`, "give all member disks"}},

		{"two missing members", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "gamma", 4)
			return []string{a[2], a[0]}, "", nil
		}, ErrMissing, []string{`members 1, 3 of 4`}},

		{"shrunk disk", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "a", 2)
			if err := os.Truncate(a[0], 4*mib); err != nil {
				t.Fatal(err)
			}
			return a, a[0], nil
		}, ErrTooSmall, []string{"was the disk shrunk"}},

		{"disk in use", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "a", 2)
			v := mustOpen(t, a, OpenOptions{})
			return a, a[0], v
		}, blockdev.ErrBusy, []string{"in use"}},

		{"newer format", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "a", 2)
			for slot := range meta.Slots {
				off := meta.SlotOffset(slot)
				writeAt(t, a[1], off, futureSuper(readAt(t, a[1], off, meta.SlotSize)))
			}
			return a, a[1], nil
		}, meta.ErrVersion, []string{"newer netraid format", "use a newer netraid"}},

		{"missing file", func(t *testing.T) ([]string, string, *Volume) {
			a := createVol(t, "a", 2)
			gone := filepath.Join(t.TempDir(), "gone")
			return []string{a[0], gone}, gone, nil
		}, os.ErrNotExist, []string{"cannot use the disk"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			paths, blame, hold := c.setup(t)
			existing := slices.DeleteFunc(slices.Clone(paths), func(p string) bool { _, err := os.Stat(p); return err != nil })
			before := hashes(t, existing)
			v, err := Open(paths, OpenOptions{})
			if err == nil {
				v.Close()
				t.Fatal("Open succeeded")
			}
			if hold != nil {
				mustClose(t, hold)
			}
			refused(t, err, blame, c.want, c.says...)
			checkUnchanged(t, existing, before)
			// Nothing stays locked after a refusal.
			for _, p := range existing {
				f, err := blockdev.OpenFile(p, blockdev.FileOptions{Exclusive: true})
				if err != nil {
					t.Fatalf("%s still held after a refused Open: %v", p, err)
				}
				f.Close()
			}
		})
	}
}

// createVol creates a volume of n sparse 8 MiB disks.
func createVol(t *testing.T, name string, n int) []string {
	t.Helper()
	paths := sparseDisks(t, n, 8*mib)
	mustCreate(t, paths, CreateOptions{Name: name})
	return paths
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// futureSuper turns a superblock into one of format version 2, with a
// valid checksum.
func futureSuper(b []byte) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[8:], meta.FormatVersion+1)
	binary.LittleEndian.PutUint32(b[12:], 0)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// TestTornSuperblock corrupts the newest slot, as a write torn by a crash
// would, and checks that Open falls back to the older copy.
func TestTornSuperblock(t *testing.T) {
	paths := sparseDisks(t, 3, 8*mib)
	mustCreate(t, paths, CreateOptions{})
	v := mustOpen(t, paths, OpenOptions{})
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.DiskState = meta.UpToDate }); err != nil {
		t.Fatal(err)
	}
	mustClose(t, v)
	junk := bytes.Repeat([]byte{0xa5}, 3000)

	// Torn on one member: the others still hold seq 2, which wins.
	writeAt(t, paths[1], meta.SlotOffset(1)+200, junk)
	var logs bytes.Buffer
	v = mustOpen(t, paths, OpenOptions{Logger: newLogger(&logs)})
	if sb := v.Super(); sb.Seq != 2 || sb.DiskState != meta.UpToDate {
		t.Fatalf("with one torn slot: seq %d state %v, want 2 up-to-date", sb.Seq, sb.DiskState)
	}
	for _, s := range []string{"superblock slot damaged", paths[1], "member superblock is behind"} {
		if !bytes.Contains(logs.Bytes(), []byte(s)) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}
	// The next update rewrites the torn slot of member 1.
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.Flags = 1 }); err != nil {
		t.Fatal(err)
	}
	mustClose(t, v)
	for i, p := range paths {
		sb, slot, err := Examine(p)
		if err != nil || sb.Seq != 3 {
			t.Fatalf("disk %d after update: %v, %v", i, sb, err)
		}
		if want := map[int]int{0: 0, 1: 1, 2: 0}[i]; slot != want {
			t.Fatalf("disk %d: seq 3 in slot %d, want %d", i, slot, want)
		}
	}

	// Torn on every member: the older copy (seq 2) is the state.
	for _, p := range paths {
		sb, slot, _ := Examine(p)
		if sb.Seq != 3 {
			t.Fatal("setup")
		}
		writeAt(t, p, meta.SlotOffset(slot)+200, junk)
	}
	v = mustOpen(t, paths, OpenOptions{})
	defer mustClose(t, v)
	if sb := v.Super(); sb.Seq != 2 || sb.Flags != 0 || sb.DiskState != meta.UpToDate {
		t.Fatalf("with every newest slot torn: seq %d flags %d, want the seq 2 copy", sb.Seq, sb.Flags)
	}
}

func TestCreateRefuses(t *testing.T) {
	t.Run("existing member", func(t *testing.T) {
		a := createVol(t, "old-vol", 2)
		blank := sparseDisks(t, 1, 8*mib)[0]
		paths := []string{blank, a[1]}
		before := hashes(t, paths)
		_, err := Create(paths, CreateOptions{Name: "new"})
		refused(t, err, a[1], ErrHasSuperblock, `volume "old-vol"`, "member 1 of 2", "--force")
		checkUnchanged(t, paths, before)

		sb, err := Create(paths, CreateOptions{Name: "new", Force: true})
		if err != nil {
			t.Fatalf("Create with Force: %v", err)
		}
		v := mustOpen(t, paths, OpenOptions{})
		defer mustClose(t, v)
		if got := v.Super(); got.SetUUID != sb.SetUUID || got.Name != "new" {
			t.Fatalf("forced volume is %+v", got)
		}
	})
	t.Run("damaged superblock", func(t *testing.T) {
		a := createVol(t, "old", 1)
		writeAt(t, a[0], 50, []byte("x"))
		writeAt(t, a[0], meta.SlotSize+50, []byte("x"))
		before := hashes(t, a)
		_, err := Create(a, CreateOptions{Name: "new"})
		refused(t, err, a[0], ErrHasSuperblock, "damaged", "--force")
		checkUnchanged(t, a, before)
	})
	for _, c := range []struct {
		name  string
		setup func(t *testing.T) ([]string, string)
		want  error
		says  []string
	}{
		{"same path twice", func(t *testing.T) ([]string, string) {
			d := sparseDisks(t, 2, 8*mib)
			return []string{d[0], d[1], d[1]}, d[1]
		}, ErrDuplicate, []string{"given twice"}},
		{"too small", func(t *testing.T) ([]string, string) {
			d := sparseDisks(t, 3, 8*mib)
			if err := os.Truncate(d[1], mib); err != nil {
				t.Fatal(err)
			}
			return d, d[1]
		}, ErrTooSmall, []string{"is too small: 1.0 MiB", "at least 1.1 MiB"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			paths, blame := c.setup(t)
			before := hashes(t, paths)
			_, err := Create(paths, CreateOptions{Name: "v"})
			refused(t, err, blame, c.want, c.says...)
			checkUnchanged(t, paths, before)
		})
	}
	t.Run("in use", func(t *testing.T) {
		a := createVol(t, "a", 2)
		v := mustOpen(t, a, OpenOptions{})
		defer mustClose(t, v)
		before := hashes(t, a)
		_, err := Create(a, CreateOptions{Name: "b", Force: true})
		refused(t, err, a[0], blockdev.ErrBusy, "in use")
		checkUnchanged(t, a, before)
	})
	t.Run("bad options", func(t *testing.T) {
		d := sparseDisks(t, 2, 8*mib)
		before := hashes(t, d)
		for _, o := range []CreateOptions{{Name: "a/b"}, {Name: ""}, {Name: "v", Chunk: 3000}, {Name: "v", Region: 4096}} {
			if _, err := Create(d, o); err == nil {
				t.Errorf("Create(%+v) succeeded", o)
			}
		}
		if _, err := Create(nil, CreateOptions{Name: "v"}); err == nil {
			t.Error("Create of no disks succeeded")
		}
		checkUnchanged(t, d, before)
	})
}

// TestCreateZeroesMetadata checks that Create clears old bitmaps and
// leaves the data area alone.
func TestCreateZeroesMetadata(t *testing.T) {
	d := sparseDisks(t, 2, 8*mib)
	for _, p := range d {
		writeAt(t, p, 3*meta.SlotSize, bytes.Repeat([]byte{0xff}, 8192)) // where the bitmaps go
		writeAt(t, p, 2*mib, []byte("data"))
	}
	sb := mustCreate(t, d, CreateOptions{})
	for _, p := range d {
		bm := readAt(t, p, int64(sb.BitmapOffset), 2*int64(sb.BitmapBytes))
		if !bytes.Equal(bm, make([]byte, len(bm))) {
			t.Fatalf("%s: bitmap area not zeroed", p)
		}
		if got := readAt(t, p, 2*mib, 4); string(got) != "data" {
			t.Fatalf("%s: data area changed", p)
		}
	}
}
