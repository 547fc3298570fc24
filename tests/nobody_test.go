package tests

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/netraid/netraid/tests/harness"
)

// nobody is the user an attacker on the machine is played by.
const nobodyUID, nobodyGID = 65534, 65534

// helperEnv names the helper a test binary started by asNobody runs
// instead of its tests.
const helperEnv = "NETRAID_TEST_HELPER"

// asNobody starts this test binary again as user nobody, running only
// the test named run (a helper that acts when helperEnv is set) with env
// added. The binary is copied where nobody may run it; the child runs in
// dir. Its stdin is the returned writer: closing it tells the helper to
// stop.
func asNobody(t *testing.T, dir, run string, stdout io.Writer, env ...string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	harness.RequireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binDir, err := os.MkdirTemp("", "netraid-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "helper.test")
	copyExecutable(t, self, bin)
	cmd := exec.Command(bin, "-test.run=^"+run+"$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = stdout, stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a helper as nobody: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, stdin
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
