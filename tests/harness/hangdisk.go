package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HangDisk is a disk that can be made to hang as a dying drive does: a
// loop device (direct I/O) over the file nbdfuse presents for an nbdkit
// memory disk on a unix socket. Hang stops nbdkit with SIGSTOP: every I/O
// on the loop device then waits, in uninterruptible sleep, until Release.
type HangDisk struct {
	t   T
	Dev string // the loop device
	kit *exec.Cmd

	mu   sync.Mutex
	hung bool
}

// NewHangDisk makes a HangDisk of size bytes under dir and tears it down
// at cleanup: loop device, nbdfuse mount, nbdkit. A process that uses the
// disk must have ended before then (start it after NewHangDisk, so that
// its cleanup runs first).
func NewHangDisk(t T, dir, name string, size int64) *HangDisk {
	t.Helper()
	base := filepath.Join(dir, name)
	fuse := base + ".fuse"
	if err := os.MkdirAll(fuse, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := base + ".sock"
	d := &HangDisk{t: t}
	d.kit = startLogged(t, base+".nbdkit.log", "nbdkit", "--foreground", "--exit-with-parent", "--unix", sock,
		"memory", "size="+strconv.FormatInt(size, 10))
	WaitFor(t, 20*time.Second, "nbdkit to listen on "+sock, func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	startLogged(t, base+".nbdfuse.log", "nbdfuse", fuse, NBDURI(sock, ""))
	t.Cleanup(func() { Try("fusermount3", "-u", "-z", fuse) })
	file := filepath.Join(fuse, "nbd")
	WaitFor(t, 20*time.Second, "nbdfuse to present "+file, func() bool {
		_, err := os.Stat(file)
		return err == nil
	})
	d.Dev = strings.TrimSpace(Run(t, "losetup", "--find", "--show", "--direct-io=on", file))
	t.Cleanup(func() { Try("losetup", "-d", d.Dev) })
	return d
}

// startLogged starts a helper process with its output in logPath, and
// ends it (SIGTERM, then SIGKILL) at cleanup.
func startLogged(t T, logPath, name string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// Hang stops the server behind the disk: from now on its I/O waits. The
// disk is released at cleanup before anything else registered so far is
// torn down (a process in uninterruptible sleep cannot be killed).
func (d *HangDisk) Hang() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.kit.Process.Signal(syscall.SIGSTOP); err != nil {
		d.t.Fatalf("stopping nbdkit: %v", err)
	}
	d.hung = true
	d.t.Cleanup(d.Release)
}

// Release lets the disk's server run again; the I/O that waited
// completes. It is safe to call more than once.
func (d *HangDisk) Release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hung {
		d.kit.Process.Signal(syscall.SIGCONT)
		d.hung = false
	}
}
