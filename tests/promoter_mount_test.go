package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
	"github.com/netraid/netraid/tests/promoter"
)

// mountScript runs dist/promoter/netraid-mount as a node's promoter
// would, with env added to the environment.
type mountScript struct {
	t    *testing.T
	path string
	env  []string
}

// run returns the script's output and exit status.
func (m mountScript) run(args ...string) (string, int) {
	m.t.Helper()
	cmd := exec.Command(m.path, args...)
	cmd.Env = append(os.Environ(), m.env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		m.t.Fatalf("netraid-mount %v: %v", args, err)
	}
	return string(out), 0
}

// must runs the script and fails the test unless it exits with want and
// says what (if not "").
func (m mountScript) must(want int, what string, args ...string) string {
	m.t.Helper()
	out, code := m.run(args...)
	if code != want || !strings.Contains(out, what) {
		m.t.Fatalf("netraid-mount %s: exit %d, want %d and %q in:\n%s", strings.Join(args, " "), code, want, what, out)
	}
	return out
}

// TestNetraidMount: the promoter's script against a node's export:
// attach refuses a volume with no filesystem and leaves nothing behind;
// with --mkfs it makes one and mounts it; attach again does nothing;
// after its nbdfuse was killed attach clears the dead mount and mounts
// again, the data intact; a mount point it did not make is never
// touched; detach refuses a busy mount, saying who holds it, and is
// idempotent.
func TestNetraidMount(t *testing.T) {
	requireFS(t)
	harness.RequireRoot(t, "findmnt", "flock", "blkid", "fsck")
	dir := t.TempDir()
	disk, _ := harness.LoopDevice(t, dir, "d0", 128<<20)
	n := harness.NewNode(t, "s", dir, nil, []string{disk})
	n.CLI("create", "--name", "vol", disk)
	n.Start()
	state, mnt := filepath.Join(dir, "state"), filepath.Join(dir, "mnt")
	m := mountScript{t: t, path: promoter.MountScript(t), env: []string{"NETRAID_EXPORT=" + n.Socket, "NETRAID_EXPORT_NAME=vol"}}
	svc := &promoter.Services{Mount: mnt, State: state}
	t.Cleanup(svc.Crash)

	m.must(2, "usage:", "frobnicate", mnt)
	m.must(0, "", "detach", "--state", state, mnt)
	m.must(1, "has no filesystem", "attach", "--state", state, mnt)
	if pid := svc.FusePid(); pid != 0 || svc.Mounted() != "" {
		t.Fatalf("a failed attach left nbdfuse (pid %d) or a mount (%q)", pid, svc.Mounted())
	}
	if out := harness.Run(t, "losetup", "-j", filepath.Join(state, "fuse", "nbd")); out != "" {
		t.Fatalf("a failed attach left a loop device: %s", out)
	}
	m.must(0, "mounted", "attach", "--state", state, "--mkfs", promoter.Mkfs, mnt)
	dev := svc.Mounted()
	if dev == "" {
		t.Fatal("attach said mounted, findmnt disagrees")
	}
	writeSynced(t, filepath.Join(mnt, "kept"), "acknowledged\n")
	m.must(0, "already mounted from "+dev, "attach", "--state", state, mnt)

	// nbdfuse dies: the mount is dead; attach clears it and mounts again.
	syscall.Kill(svc.FusePid(), syscall.SIGKILL)
	m.must(0, "does not answer", "attach", "--state", state, mnt)
	if b, err := os.ReadFile(filepath.Join(mnt, "kept")); err != nil || string(b) != "acknowledged\n" {
		t.Fatalf("after the crash and a new attach: %q, %v", b, err)
	}

	// Someone else's mount point.
	other := filepath.Join(dir, "other")
	os.MkdirAll(other, 0o755)
	harness.Run(t, "mount", "-t", "tmpfs", "none", other)
	t.Cleanup(func() { harness.Try("umount", other) })
	foreign := &promoter.Services{Mount: other, State: filepath.Join(dir, "state2")}
	t.Cleanup(foreign.Crash) // should the script have gone ahead
	m.must(1, "did not make", "attach", "--state", foreign.State, other)
	m.must(1, "did not attach", "detach", "--state", foreign.State, other)
	if out, _ := harness.Try("findmnt", "-n", "-o", "FSTYPE", "--mountpoint", other); strings.TrimSpace(out) != "tmpfs" {
		t.Fatalf("the tmpfs at %s was touched: %q", other, out)
	}

	// Busy: refused, with the holder named; then idempotent.
	f, err := os.Open(filepath.Join(mnt, "kept"))
	if err != nil {
		t.Fatal(err)
	}
	m.must(1, "in use by pids", "detach", "--state", state, mnt)
	f.Close()
	m.must(0, "detached "+dev, "detach", "--state", state, mnt)
	m.must(0, "", "detach", "--state", state, mnt)
	if pid := svc.FusePid(); pid != 0 || svc.Mounted() != "" {
		t.Fatalf("detach left nbdfuse (pid %d) or a mount (%q)", pid, svc.Mounted())
	}

	// Not run by netraid: says so.
	m.env = nil
	m.must(1, "NETRAID_EXPORT is not set", "attach", "--state", state, mnt)
}

// writeSynced writes a file and fsyncs it and its directory.
func writeSynced(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestPromoterFilesCheck: the promoter's script passes shellcheck and
// its ActiveMQ unit passes systemd-analyze verify (each where installed),
// bound to netraid.service without waiting for its start.
func TestPromoterFilesCheck(t *testing.T) {
	ran := 0
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		ran++
		if out, err := exec.Command(sc, "../dist/promoter/netraid-mount").CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	}
	// The broker is bound to netraid.service but not ordered after it:
	// the promoter starts it from within netraid.service's start (a node
	// with --primary), which an ordering would make wait for itself.
	unit, err := os.ReadFile("../dist/promoter/netraid-activemq.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(unit), "\n") {
		if strings.HasPrefix(line, "After=") && strings.Contains(line, "netraid.service") {
			t.Errorf("netraid-activemq.service: %q: the promoter's start of the broker would wait for netraid.service's start, which waits for the promoter", line)
		}
	}
	if !strings.Contains(string(unit), "\nBindsTo=netraid.service\n") {
		t.Error("netraid-activemq.service: no BindsTo=netraid.service: the broker would outlive a failed daemon")
	}
	// The unit runs Debian's /usr/bin/activemq, which verify wants to find.
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil && broker.Available() == nil {
		ran++
		// Documentation= names netraid's manual page, which the binary
		// writes; BindsTo= names netraid.service, which is put beside it.
		dir := t.TempDir()
		man := filepath.Join(dir, "man")
		bin := harness.Binary(t)
		harness.Run(t, bin, "_man", filepath.Join(man, "man8"))
		for _, f := range []struct{ from, to string }{
			{"../dist/promoter/netraid-activemq.service", "netraid-activemq.service"},
			{"../dist/netraid.service.in", "netraid.service"},
		} {
			b, err := os.ReadFile(f.from)
			if err != nil {
				t.Fatal(err)
			}
			unit := strings.NewReplacer("@BINDIR@", filepath.Dir(bin), "@SYSCONFDIR@", "/etc").Replace(string(b))
			if err := os.WriteFile(filepath.Join(dir, f.to), []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		args := []string{"verify", filepath.Join(dir, "netraid-activemq.service")}
		if _, err := exec.LookPath("man"); err != nil {
			args = []string{"verify", "--man=no", args[1]}
		}
		cmd := exec.Command(analyze, args...)
		cmd.Env = append(os.Environ(), "MANPATH="+man)
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	if ran == 0 {
		t.Skip("needs shellcheck, or systemd-analyze and activemq")
	}
}
