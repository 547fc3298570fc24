package tests

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netraid/netraid/tests/harness"
)

// TestSingleNodeCrashRestart: a volume striped over two loop devices,
// ext4 on the export through nbdfuse, files written with fsync; the
// server is killed with SIGKILL and restarted; every fsync'ed file is
// there with its contents and e2fsck is clean.
func TestSingleNodeCrashRestart(t *testing.T) {
	harness.RequireRoot(t, "nbdfuse", "losetup", "mkfs.ext4", "e2fsck")
	dir := t.TempDir()
	d0, _ := harness.LoopDevice(t, dir, "d0", 256<<20)
	d1, _ := harness.LoopDevice(t, dir, "d1", 256<<20)

	n := harness.NewNode(t, "solo", dir, nil, []string{d1, d0})
	n.CLI("create", "--name", "solo", d0, d1)
	n.Start()
	m := harness.MountNBD(t, filepath.Join(dir, "m1"), n.URI("solo"), true)

	sums := writeFiles(t, m.Dir, 40, 64<<10)
	n.Kill()
	m.Crash()

	n.Start()
	m = harness.MountNBD(t, filepath.Join(dir, "m2"), n.URI("solo"), false)
	checkFiles(t, m.Dir, sums)
	m.UnmountAndCheck()
	n.Stop()
}

// writeFiles writes count files of random sizes up to maxSize under dir,
// each fsync'ed (and the directory too), and returns their checksums.
func writeFiles(t testing.TB, dir string, count, maxSize int) map[string][32]byte {
	t.Helper()
	sums := map[string][32]byte{}
	rng := rand.New(rand.NewPCG(uint64(count), uint64(maxSize)))
	for i := range count {
		b := make([]byte, 1+rng.IntN(maxSize))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		name := filepath.Join(dir, fmt.Sprintf("file-%04d", i))
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync %s: %v", name, err)
		}
		f.Close()
		sums[filepath.Base(name)] = sha256.Sum256(b)
	}
	syncDir(t, dir)
	return sums
}

func syncDir(t testing.TB, dir string) {
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", dir, err)
	}
}

// checkFiles checks that every file in sums is under dir with its
// checksum.
func checkFiles(t testing.TB, dir string, sums map[string][32]byte) {
	t.Helper()
	var missing, wrong []string
	for name, want := range sums {
		b, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case err != nil:
			missing = append(missing, name)
		case sha256.Sum256(b) != want:
			wrong = append(wrong, name)
		}
	}
	if len(missing)+len(wrong) > 0 {
		t.Fatalf("of %d fsync'ed files, %d missing (%s) and %d with wrong contents (%s)",
			len(sums), len(missing), strings.Join(missing, " "), len(wrong), strings.Join(wrong, " "))
	}
	t.Logf("all %d fsync'ed files present with the right contents", len(sums))
}
