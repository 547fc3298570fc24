package tests

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netraid/netraid/tests/harness"
)

// serveFiles creates a volume over two sparse files and serves it on TCP
// loopback; it returns the node and the export's nbd:// URI.
func serveFiles(t *testing.T, name string, size int64) (*harness.Node, string) {
	t.Helper()
	dir := t.TempDir()
	var disks []string
	for i := range 2 {
		p := filepath.Join(dir, "disk"+string(rune('0'+i)))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, p)
	}
	n := harness.NewNode(t, name, dir, nil, disks)
	n.CLI("create", "--name", name, disks[0], disks[1])
	n.Socket = "127.0.0.1:0"
	n.Start()
	st, err := n.Status()
	if err != nil || st.Export == nil {
		t.Fatalf("status: %v %+v", err, st)
	}
	return n, "nbd://" + st.Export.Address + "/" + name
}

func TestInteropNbdinfo(t *testing.T) {
	requireTools(t, "nbdinfo")
	_, uri := serveFiles(t, "info", 64<<20)
	out := harness.Run(t, "nbdinfo", "--json", uri)
	var info struct {
		Exports []struct {
			Name         string `json:"export-name"`
			Size         int64  `json:"export-size"`
			CanFlush     bool   `json:"can_flush"`
			CanFUA       bool   `json:"can_fua"`
			CanTrim      bool   `json:"can_trim"`
			CanZero      bool   `json:"can_zero"`
			CanFastZero  bool   `json:"can_fast_zero"`
			CanMultiConn bool   `json:"can_multi_conn"`
			CanCache     bool   `json:"can_cache"`
			CanDF        bool   `json:"can_df"`
			ReadOnly     bool   `json:"is_read_only"`
			MinBlock     int    `json:"block_size_minimum"`
			PrefBlock    int    `json:"block_size_preferred"`
			MaxBlock     int    `json:"block_size_maximum"`
		} `json:"exports"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("nbdinfo --json: %v\n%s", err, out)
	}
	if len(info.Exports) != 1 {
		t.Fatalf("nbdinfo saw %d exports:\n%s", len(info.Exports), out)
	}
	e := info.Exports[0]
	if e.Name != "info" || e.Size <= 0 || e.Size > 2*64<<20 || e.Size%(64<<10) != 0 {
		t.Errorf("export name %q size %d: want \"info\" and a multiple of the chunk below the disks' size", e.Name, e.Size)
	}
	if !e.CanFlush || !e.CanFUA || !e.CanTrim || !e.CanZero || !e.CanMultiConn || !e.CanCache || !e.CanDF || e.ReadOnly {
		t.Errorf("flags: %+v", e)
	}
	if e.MinBlock < 1 || e.MaxBlock < e.PrefBlock || e.PrefBlock < e.MinBlock {
		t.Errorf("block sizes min %d preferred %d max %d", e.MinBlock, e.PrefBlock, e.MaxBlock)
	}
	list := harness.Run(t, "nbdinfo", "--list", "--json", uri)
	if !strings.Contains(list, `"info"`) {
		t.Errorf("nbdinfo --list does not show the export:\n%s", list)
	}
}

func TestInteropQemuIO(t *testing.T) {
	requireTools(t, "qemu-io")
	_, uri := serveFiles(t, "qio", 64<<20)
	cmds := []string{
		"write -P 0xab 0 1M",
		"write -P 0xcd 1M 64k",
		"write -P 0x11 3000 5000", // unaligned, across a sector
		"aio_write -P 0x22 8M 128k",
		"aio_write -P 0x33 9M 4k",
		"aio_flush",
		"read -P 0xab 0 3000",
		"read -P 0x11 3000 5000",
		"read -P 0xab 8000 1040576",
		"read -P 0xcd 1M 64k",
		"read -P 0x22 8M 128k",
		"read -P 0x33 9M 4k",
		"discard 1M 64k",
		"write -z 0 64k",
		"read -P 0 0 64k",
		"write -z -u 2M 1M",
		"read -P 0 2M 1M",
		"flush",
	}
	args := []string{"-f", "raw", uri}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out := harness.Run(t, "qemu-io", args...)
	if strings.Contains(out, "Pattern verification failed") || strings.Contains(out, "failed:") {
		t.Fatalf("qemu-io:\n%s", out)
	}
	if n := strings.Count(out, "read "); n < 8 {
		t.Fatalf("qemu-io ran %d reads, want 8:\n%s", n, out)
	}
}

func TestInteropNbdcopy(t *testing.T) {
	requireTools(t, "nbdcopy")
	// The default read-ahead (16 MiB), which the copy back checks.
	n, uri := serveFiles(t, "copy", 64<<20)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	data := make([]byte, 48<<20)
	rand.Read(data)
	// A run of zeroes lets nbdcopy use zeroing and sparse paths too.
	clear(data[8<<20 : 16<<20])
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	harness.Run(t, "nbdcopy", "--flush", in, uri)
	// One connection and one thread: a single sequential reader, which the
	// export reads ahead of.
	out := filepath.Join(dir, "out")
	harness.Run(t, "nbdcopy", "--connections=1", "--threads=1", uri, out)
	st, err := n.Status()
	if err != nil || st.Export == nil || st.Export.Readahead == nil {
		t.Fatalf("status after the copy: %v %+v", err, st.Export)
	}
	if ra := st.Export.Readahead; ra.Hits == 0 || ra.ReadAhead == 0 {
		t.Errorf("a sequential copy of the export was not read ahead of: %+v", *ra)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(data) || sha256.Sum256(got[:len(data)]) != sha256.Sum256(data) {
		t.Fatalf("copied back %d bytes whose first %d differ from what was copied in", len(got), len(data))
	}
	if !bytes.Equal(got[len(data):], make([]byte, len(got)-len(data))) {
		t.Fatal("the rest of the export is not zero")
	}
}

func TestInteropFioVerify(t *testing.T) {
	requireTools(t, "fio")
	if !fioHasNBD() {
		t.Skip("fio has no nbd engine")
	}
	_, uri := serveFiles(t, "fio", 64<<20)
	out := harness.Run(t, "fio", "--name=verify", "--ioengine=nbd", "--uri="+uri,
		"--rw=randwrite", "--bs=4k", "--iodepth=32", "--size=32M", "--verify=crc32c",
		"--verify_fatal=1", "--do_verify=1", "--number_ios=4096", "--output-format=json", "--verify_state_save=0")
	var res struct {
		Jobs []struct {
			Error int `json:"error"`
			Write struct {
				IOs int64 `json:"total_ios"`
			} `json:"write"`
			Read struct {
				IOs int64 `json:"total_ios"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(jsonPart(out)), &res); err != nil {
		t.Fatalf("fio output: %v\n%s", err, out)
	}
	if len(res.Jobs) != 1 || res.Jobs[0].Error != 0 || res.Jobs[0].Write.IOs == 0 || res.Jobs[0].Read.IOs == 0 {
		t.Fatalf("fio verify: %+v\n%s", res, out)
	}
	t.Logf("fio wrote %d and verified %d blocks", res.Jobs[0].Write.IOs, res.Jobs[0].Read.IOs)
}

func TestInteropMapAfterTrim(t *testing.T) {
	requireTools(t, "nbdinfo", "qemu-io")
	_, uri := serveFiles(t, "map", 64<<20)
	harness.Run(t, "qemu-io", "-f", "raw", uri, "-c", "write -P 0x5a 0 8M", "-c", "flush")
	before := mapOf(t, uri)
	harness.Run(t, "qemu-io", "-f", "raw", uri, "-c", "discard 2M 4M", "-c", "flush")
	after := mapOf(t, uri)
	if dataAt(before, 3<<20) != true {
		t.Fatalf("before the trim 3 MiB is not data: %+v", before)
	}
	if dataAt(after, 3<<20) || !dataAt(after, 1<<20) || !dataAt(after, 7<<20) {
		t.Fatalf("after trimming 2M..6M the map is %+v: want a hole at 3 MiB, data at 1 and 7 MiB", after)
	}
}

type mapExtent struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	Type   int   `json:"type"`
}

func mapOf(t *testing.T, uri string) []mapExtent {
	out := harness.Run(t, "nbdinfo", "--map", "--json", uri)
	var ext []mapExtent
	if err := json.Unmarshal([]byte(out), &ext); err != nil {
		t.Fatalf("nbdinfo --map --json: %v\n%s", err, out)
	}
	return ext
}

// dataAt reports whether off lies in an extent that is not a hole.
func dataAt(ext []mapExtent, off int64) bool {
	for _, e := range ext {
		if off >= e.Offset && off < e.Offset+e.Length {
			return e.Type&1 == 0
		}
	}
	return false
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, c := range tools {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s (run ./scripts/deps.sh)", c)
		}
	}
}

func fioHasNBD() bool {
	out, _ := exec.Command("fio", "--enghelp").CombinedOutput()
	return strings.Contains(string(out), "nbd")
}

// jsonPart skips anything fio prints before its JSON.
func jsonPart(s string) string {
	if i := strings.Index(s, "{"); i >= 0 {
		return s[i:]
	}
	return s
}

// TestInteropNbdcopyUnaligned: a file whose size is not a multiple of 512
// copies into the export and back: the server takes any request size
// (minimum block size 1) and read-modify-writes the partial sector.
func TestInteropNbdcopyUnaligned(t *testing.T) {
	requireTools(t, "nbdcopy", "nbdinfo")
	_, uri := serveFiles(t, "odd", 16<<20)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	data := make([]byte, 5<<20+1234)
	rand.Read(data)
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	harness.Run(t, "nbdcopy", "--flush", in, uri)
	if out := harness.Run(t, "nbdinfo", "--json", uri); !strings.Contains(out, `"block_size_minimum": 1,`) {
		t.Fatalf("the export does not advertise a minimum block size of 1:\n%s", out)
	}
	out := filepath.Join(dir, "out")
	harness.Run(t, "nbdcopy", uri, out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(data) || sha256.Sum256(got[:len(data)]) != sha256.Sum256(data) {
		t.Fatalf("copied back %d bytes whose first %d differ from the %d copied in", len(got), len(data), len(data))
	}
	if !bytes.Equal(got[len(data):], make([]byte, len(got)-len(data))) {
		t.Fatal("the export past the copied file is not zero")
	}
}
