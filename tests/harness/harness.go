package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// RequireRoot skips the test unless it runs as root with the given
// commands on PATH.
func RequireRoot(t T, cmds ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop devices, mounts, network namespaces)")
	}
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s on PATH (run ./scripts/deps.sh)", c)
		}
	}
}

// Run runs a command and fails the test if it fails, returning its
// standard output.
func Run(t T, name string, args ...string) string {
	t.Helper()
	out, err := Try(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Try runs a command with a generous time limit and returns its standard
// output, or an error carrying its standard error.
func Try(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Binary returns the netraid binary under test: $NETRAID_BIN, or one
// built once into a temporary directory.
func Binary(t T) string {
	t.Helper()
	if p := os.Getenv("NETRAID_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "netraid-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "netraid")
		root, err := moduleRoot()
		if err != nil {
			binErr = err
			return
		}
		_, binErr = Try("go", "build", "-C", root, "-o", binPath, "./cmd/netraid")
	})
	if binErr != nil {
		t.Fatalf("building netraid: %v", binErr)
	}
	return binPath
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("harness: no go.mod above the working directory")
		}
		dir = parent
	}
}

// WaitFor polls cond every 50ms until it returns true or the timeout
// passes, then fails the test with what.
func WaitFor(t T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
