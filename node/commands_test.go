package node

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCommandBackgroundChild: an on-promote command that starts a
// service in the background (a mount helper, a broker) and exits is
// done when it exits, though its child still holds the output: the
// promoter does not wait for the service to end, nor leave it without
// its output logged up to then.
func TestCommandBackgroundChild(t *testing.T) {
	var log bytes.Buffer
	n := &Node{cfg: Config{CommandTimeout: 5 * time.Minute}, log: slog.New(slog.NewTextHandler(&log, nil))}
	pidFile := filepath.Join(t.TempDir(), "pid")
	err := n.runCommand(context.Background(), "on-promote", "sleep 300 & echo $! > "+pidFile+"; echo started")
	if err != nil {
		t.Fatalf("the command: %v", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	// Running, not a zombie: a child reparented to a PID 1 that does
	// not reap stays a zombie once it ends.
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if f := strings.Fields(string(stat)); err != nil || len(f) < 3 || f[2] == "Z" {
		t.Fatalf("the background child (pid %d) ended (%q, %v): the command was done only when it ended", pid, stat, err)
	}
	if !strings.Contains(log.String(), "line=started") {
		t.Fatalf("the command's output was not logged:\n%s", log.String())
	}
}

// TestCommandFails: a command that fails says how, with what it printed
// in the log.
func TestCommandFails(t *testing.T) {
	var log bytes.Buffer
	n := &Node{cfg: Config{CommandTimeout: time.Minute}, log: slog.New(slog.NewTextHandler(&log, nil))}
	err := n.runCommands(context.Background(), "on-promote", []string{"true", "echo no mount; exit 3", "echo never"})
	if err == nil || !strings.Contains(err.Error(), "command 2") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("the failing command: %v", err)
	}
	if !strings.Contains(log.String(), `line="no mount"`) || strings.Contains(log.String(), "never") {
		t.Fatalf("the log:\n%s", log.String())
	}
}
