package volume

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/netraid/netraid/blockdev"
)

// loopDevices attaches n sparse files of the given size to loop devices,
// detached when the test ends, and returns the devices and the files. It
// skips the test when not root or when losetup fails.
func loopDevices(t *testing.T, n int, size int64) (devs, files []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("no losetup")
	}
	files = sparseDisks(t, n, size)
	for _, f := range files {
		out, err := exec.Command("losetup", "--find", "--show", f).CombinedOutput()
		if err != nil {
			t.Skipf("losetup --find --show %s: %v: %s", f, err, out)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() {
			if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v: %s", dev, err, out)
			}
		})
		devs = append(devs, dev)
	}
	return devs, files
}

func TestLoopDevices(t *testing.T) {
	devs, files := loopDevices(t, 2, 32*mib)
	sb := mustCreate(t, devs, CreateOptions{Name: "loopvol", Chunk: 16 * kib})
	v := mustOpen(t, []string{devs[1], devs[0]}, OpenOptions{})
	if v.Data().Size() != int64(sb.VolumeSize) {
		t.Fatalf("Data is %d bytes, superblock says %d", v.Data().Size(), sb.VolumeSize)
	}
	data := pattern(5, 100*kib)
	if _, err := v.Data().WriteAt(data, 16*kib-7); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Bitmap().WriteAt([]byte{0xff}, 0); err != nil {
		t.Fatal(err)
	}

	// Held exclusively: neither a second Open nor Create gets the disks.
	if _, err := Open(devs, OpenOptions{}); err == nil {
		t.Fatal("second Open of busy loop devices succeeded")
	} else {
		refused(t, err, devs[0], blockdev.ErrBusy, "in use")
	}
	mustClose(t, v)

	v = mustOpen(t, devs, OpenOptions{})
	got := make([]byte, len(data))
	if _, err := v.Data().ReadAt(got, 16*kib-7); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back after reopen: %v, equal %v", err, bytes.Equal(got, data))
	}
	mustClose(t, v)

	// Bypassing the loop devices: member 1 holds chunk 1 at its data
	// offset, and both members hold the bitmap byte.
	if got := readAt(t, files[1], int64(sb.DataOffset), 16*kib); !bytes.Equal(got, data[7:7+16*kib]) {
		t.Fatal("chunk 1 is not at member 1's data offset")
	}
	for _, f := range files {
		if readAt(t, f, int64(sb.BitmapOffset), 1)[0] != 0xff {
			t.Fatalf("%s: bitmap byte missing", f)
		}
	}

	// A loop device and its backing file are the same disk.
	_, err := Open([]string{devs[0], files[0]}, OpenOptions{})
	refused(t, err, files[0], ErrDuplicate, "is the same disk as "+devs[0])
}
