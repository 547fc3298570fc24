package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNetnsProcessHoldsNoMount: a process the harness runs in a machine's
// network namespace does not keep a filesystem mounted here alive after
// it is unmounted: its device can be opened exclusively (e2fsck's check
// that nothing has it mounted). Started with `ip netns exec`, the process
// got a mount namespace of its own, a copy of every mount at its start,
// and a daemon started while another test's filesystem was mounted kept
// it mounted and its loop device busy.
func TestNetnsProcessHoldsNoMount(t *testing.T) {
	RequireRoot(t, "mkfs.ext4", "nsenter")
	a, _ := MachinePair(t)
	dir := t.TempDir()
	dev, _ := LoopDevice(t, dir, "disk", 32<<20)
	Run(t, "mkfs.ext4", "-q", dev)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	Run(t, "mount", dev, mnt)
	argv := NetnsArgv(a.Name, "sleep", "60")
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Once it runs sleep, whatever namespaces it would copy are made.
	deadline := time.Now().Add(time.Minute)
	for {
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/exe"); filepath.Base(exe) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the process in the namespace did not start sleep within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	Run(t, "umount", mnt)
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL, 0)
	if err != nil {
		t.Fatalf("%s unmounted here, but still busy while a process runs in %s: %v", dev, a.Name, err)
	}
	unix.Close(fd)
}
