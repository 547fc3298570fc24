package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Mount is an ext4 filesystem on an NBD export: nbdfuse presents the
// export as a file, a loop device is attached to that file, and the loop
// device is mounted.
type Mount struct {
	t      T
	Dir    string // where the filesystem is mounted
	fuse   string // nbdfuse mount point
	loop   string
	nbdPid int
	nbdEnd chan struct{} // closed when nbdfuse has exited
}

// MountNBD presents the export at uri as a file with nbdfuse, attaches a
// loop device to it and, if mkfs, makes ext4 on it; then mounts it under
// dir. Unmount (or the test's cleanup) undoes it all.
func MountNBD(t T, dir, uri string, mkfs bool) *Mount {
	t.Helper()
	m := &Mount{t: t, Dir: filepath.Join(dir, "mnt"), fuse: filepath.Join(dir, "fuse")}
	for _, d := range []string{m.Dir, m.fuse} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("nbdfuse", m.fuse, uri)
	logf, err := os.Create(filepath.Join(dir, "nbdfuse.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("nbdfuse: %v", err)
	}
	m.nbdPid, m.nbdEnd = cmd.Process.Pid, make(chan struct{})
	go func() { cmd.Wait(); close(m.nbdEnd) }()
	file := filepath.Join(m.fuse, "nbd")
	WaitFor(t, 20*time.Second, "nbdfuse to present "+file, func() bool {
		_, err := os.Stat(file)
		return err == nil
	})
	m.loop = strings.TrimSpace(Run(t, "losetup", "--find", "--show", "--direct-io=on", file))
	if mkfs {
		Run(t, "mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", m.loop)
	}
	Run(t, "mount", "-o", "data=ordered", m.loop, m.Dir)
	t.Cleanup(func() { m.Unmount() })
	return m
}

// Unmount unmounts the filesystem, detaches the loop device and stops
// nbdfuse. It is safe to call more than once.
func (m *Mount) Unmount() {
	if m.loop == "" {
		return
	}
	Try("umount", m.Dir)
	Try("losetup", "-d", m.loop)
	Try("fusermount3", "-u", m.fuse)
	if m.nbdPid > 0 {
		syscall.Kill(m.nbdPid, syscall.SIGTERM)
		m.waitNBD()
	}
	m.loop, m.nbdPid = "", 0
}

// Crash tears the mount down the way a dying machine does: nbdfuse is
// killed first, so nothing more reaches the export, then the dead mount
// is cleaned up.
func (m *Mount) Crash() {
	if m.nbdPid > 0 {
		syscall.Kill(m.nbdPid, syscall.SIGKILL)
		m.waitNBD()
		m.nbdPid = 0
	}
	Try("umount", "-l", m.Dir)
	Try("losetup", "-d", m.loop)
	Try("fusermount3", "-u", "-z", m.fuse)
	m.loop = ""
}

// UnmountAndCheck unmounts the filesystem, runs e2fsck -fn on it, and
// then tears the rest down; a filesystem that is not clean fails the test.
func (m *Mount) UnmountAndCheck() {
	m.t.Helper()
	Run(m.t, "umount", m.Dir)
	out, err := Try("e2fsck", "-fn", m.loop)
	m.Unmount()
	if err != nil {
		m.t.Fatalf("e2fsck is not clean: %v\n%s", err, out)
	}
}

// waitNBD waits for nbdfuse to exit (and so to close its connections),
// killing it if a clean exit takes too long.
func (m *Mount) waitNBD() {
	select {
	case <-m.nbdEnd:
	case <-time.After(20 * time.Second):
		syscall.Kill(m.nbdPid, syscall.SIGKILL)
		<-m.nbdEnd
	}
}
