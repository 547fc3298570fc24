package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/netraid/netraid/node"
)

// Node is a netraid daemon under test, optionally inside a Machine.
type Node struct {
	t       T
	Name    string
	Machine *Machine // nil: the host's namespace
	Dir     string
	Disks   []string
	Control string // control socket
	Socket  string // NBD export unix socket
	Args    []string
	// Config, if set, is a config file that Start runs the node from
	// (serve --config FILE ARGS...) instead of giving its sockets and
	// disks as flags and arguments.
	Config string
	// Env is added to the daemon's environment.
	Env    []string
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
	Log    string
}

// NewNode describes a node with its disks; Start runs it. Its control
// socket and NBD socket live in dir.
func NewNode(t T, name, dir string, m *Machine, disks []string, args ...string) *Node {
	return &Node{
		t: t, Name: name, Machine: m, Dir: dir, Disks: disks, Args: args,
		Control: filepath.Join(dir, name+".ctl"),
		Socket:  filepath.Join(dir, name+".nbd"),
		Log:     filepath.Join(dir, name+".log"),
	}
}

// Command runs netraid with args in the node's machine and returns its
// combined output.
func (n *Node) Command(args ...string) (string, error) {
	full := append([]string{Binary(n.t)}, args...)
	if n.Machine != nil {
		full = NetnsArgv(n.Machine.Name, full...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Env = append(os.Environ(), "NETRAID_CONTROL="+n.Control)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netraid %v: %v\n%s", args, err, out)
	}
	return string(out), nil
}

// CLI runs an admin command against the node and fails the test if it
// fails.
func (n *Node) CLI(args ...string) string {
	n.t.Helper()
	out, err := n.Command(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// Start runs `netraid serve` for the node and waits for its control
// socket to answer.
func (n *Node) Start() {
	n.t.Helper()
	args := append([]string{"serve", "--control", n.Control, "--listen", n.Socket}, n.Args...)
	args = append(args, n.Disks...)
	if n.Config != "" {
		args = append([]string{"serve", "--config", n.Config}, n.Args...)
	}
	full := append([]string{Binary(n.t)}, args...)
	if n.Machine != nil {
		full = NetnsArgv(n.Machine.Name, full...)
	}
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== start %v\n", full)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env = append(os.Environ(), n.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start %s: %v", n.Name, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(n.done) }()
	n.t.Cleanup(func() {
		n.Kill()
		if n.t.Failed() {
			n.t.Logf("--- log of %s:\n%s", n.Name, n.Tail())
		}
	})
	WaitFor(n.t, 30*time.Second, n.Name+" control socket", func() bool {
		select {
		case <-n.done:
			n.t.Fatalf("%s exited during start-up:\n%s", n.Name, n.Tail())
		default:
		}
		_, err := node.NewClient(n.Control).Status(context.Background())
		return err == nil
	})
}

// Running reports whether the daemon process is alive.
func (n *Node) Running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill ends the daemon with SIGKILL, as a crash would, and waits for it.
func (n *Node) Kill() { n.signal(syscall.SIGKILL) }

// Stop ends the daemon with SIGTERM (a clean shutdown) and waits for it.
func (n *Node) Stop() { n.signal(syscall.SIGTERM) }

func (n *Node) signal(sig syscall.Signal) {
	if !n.Running() {
		return
	}
	n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
}

// Pause stops the daemon with SIGSTOP, as a machine that freezes would:
// its sockets stay open and nothing answers. It is resumed at cleanup
// before anything registered so far is torn down.
func (n *Node) Pause() {
	n.t.Helper()
	if !n.Running() {
		n.t.Fatalf("%s: pausing a daemon that is not running", n.Name)
	}
	if err := n.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		n.t.Fatalf("%s: SIGSTOP: %v", n.Name, err)
	}
	n.paused = true
	n.t.Cleanup(n.Resume)
}

// Resume continues a daemon stopped by Pause (SIGCONT); it does nothing
// to one that is not running.
func (n *Node) Resume() {
	if n.Running() {
		n.cmd.Process.Signal(syscall.SIGCONT)
	}
	n.paused = false
}

// Paused reports whether the daemon was paused and not resumed since.
func (n *Node) Paused() bool { return n.paused }

// Dump ends the daemon with SIGQUIT, so that the Go runtime writes every
// goroutine's stack to its log, and returns the log's end: for a test
// that found the daemon stuck.
func (n *Node) Dump() string {
	if n.Running() {
		n.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
		}
	}
	b, _ := os.ReadFile(n.Log)
	if len(b) > 1<<20 {
		b = b[len(b)-1<<20:]
	}
	return string(b)
}

// Tail returns the end of the node's log, for failure messages.
func (n *Node) Tail() string {
	b, _ := os.ReadFile(n.Log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// WaitLog waits until the node's log satisfies cond, or fails the test
// with what and the log's end. A daemon writes what it logs about a
// client or a link after the other side may have seen the outcome: a
// test that checks the log waits for it.
func (n *Node) WaitLog(t T, timeout time.Duration, what string, cond func(log string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(n.Log)
		if cond(string(b)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (waited %v):\n%s", what, timeout, n.Tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Status asks the node for its status.
func (n *Node) Status() (node.Status, error) {
	out, err := n.Command("status", "--json")
	if err != nil {
		return node.Status{}, err
	}
	var st node.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return node.Status{}, fmt.Errorf("status --json: %v: %s", err, out)
	}
	return st, nil
}

// WaitStatus polls the node's status until cond holds.
func (n *Node) WaitStatus(timeout time.Duration, what string, cond func(node.Status) bool) node.Status {
	n.t.Helper()
	var last node.Status
	var lastErr error
	deadline := time.Now().Add(timeout)
	for {
		st, err := node.NewClient(n.Control).Status(context.Background())
		if err == nil && cond(st) {
			return st
		}
		last, lastErr = st, err
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(last, "", " ")
			n.t.Fatalf("%s: timed out after %v waiting for %s (last error %v)\nstatus: %s\nlog and goroutines:\n%s", n.Name, timeout, what, lastErr, b, n.Dump())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URI is the libnbd URI of the node's export.
func (n *Node) URI(export string) string { return NBDURI(n.Socket, export) }
