package promoter

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
)

// Defaults of a node's services.
const (
	// BrokerPort is the broker's STOMP port inside each machine.
	BrokerPort = 61613
	// Mkfs is how netraid-mount makes the filesystem at a new volume's
	// first promotion (the harness's choice: no discard through nbdfuse,
	// inode tables and journal initialized lazily).
	Mkfs = "ext4 -q -E nodiscard,lazy_itable_init=1,lazy_journal_init=1"
	// killWait bounds the wait for a killed process to be gone.
	killWait = 30 * time.Second
)

// Services are a node's promoter commands and what they start.
type Services struct {
	t      harness.T
	Node   *harness.Node
	Mount  string          // the volume's mount point while the node is primary
	State  string          // netraid-mount's --state directory
	Broker broker.Endpoint // the broker, once the node promoted
	Work   string          // the broker's configuration, log and pid file
	// BrokerScript starts the broker ("start") or stops it ("stop").
	BrokerScript string
}

// Setup gives node n (not started yet) the promoter's commands: its
// on-promote commands attach and mount the volume on a mount point under
// dir (making ext4 the first time) and start ActiveMQ there; its
// on-demote commands stop ActiveMQ and unmount. Everything else lives in
// dir too.
func Setup(t harness.T, n *harness.Node, dir string) *Services {
	t.Helper()
	s := &Services{
		t: t, Node: n,
		Mount: filepath.Join(dir, "mnt"),
		State: filepath.Join(dir, "mount-state"),
		Work:  filepath.Join(dir, "activemq"),
	}
	s.BrokerScript = filepath.Join(s.Work, "activemq.sh")
	o := broker.Options{DataDir: filepath.Join(s.Mount, "activemq"), WorkDir: s.Work, Port: BrokerPort}
	if n.Machine != nil {
		o.Netns = n.Machine.Name
	}
	cmd, err := broker.Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Broker = cmd.Endpoint
	if err := os.WriteFile(s.BrokerScript, []byte(brokerScript(n.Name, s.Mount, o.DataDir, s.Work, cmd.Argv)), 0o755); err != nil {
		t.Fatal(err)
	}
	mount := MountScript(t)
	line := func(args ...string) string { return ShellJoin(args) }
	n.Args = append(n.Args,
		"--on-promote", line(mount, "attach", "--state", s.State, "--mkfs", Mkfs, "-o", "data=ordered", s.Mount),
		"--on-promote", line(s.BrokerScript, "start"),
		"--on-demote", line(s.BrokerScript, "stop"),
		"--on-demote", line(mount, "detach", "--state", s.State, s.Mount))
	t.Cleanup(s.Crash)
	return s
}

// brokerScript is the broker's start and stop, as a promoter runs them:
// start-stop-daemon puts the JVM in the background and records its pid;
// stop waits for its exit (SIGTERM: ActiveMQ's clean shutdown; SIGKILL
// after a minute). It refuses to start the broker on a bare directory.
func brokerScript(node, mount, data, work string, argv []string) string {
	q := shellQuote
	pid, log := filepath.Join(work, "activemq.pid"), filepath.Join(work, "broker.log")
	return fmt.Sprintf(`#!/bin/sh
# ActiveMQ of node %s, as netraid's promoter starts and stops it in the
# tests (production: a systemd unit, dist/promoter/netraid-activemq.service).
set -eu
case ${1:-} in
start)
	mountpoint -q %s || { echo "%s is not mounted: not starting ActiveMQ" >&2; exit 1; }
	mkdir -p %s
	exec start-stop-daemon --start --oknodo --background --make-pidfile --pidfile %s \
		--name java --output %s --chdir %s --startas %s -- %s
	;;
stop)
	exec start-stop-daemon --stop --oknodo --pidfile %s --name java --remove-pidfile --retry TERM/60/KILL/10
	;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
`, node, q(mount), mount, q(data), q(pid), q(log), q(work), q(argv[0]), ShellJoin(argv[1:]), q(pid))
}

// MountScript is the path of dist/promoter/netraid-mount: $NETRAID_MOUNT,
// or the one of the module the working directory is in.
func MountScript(t harness.T) string {
	t.Helper()
	if p := os.Getenv("NETRAID_MOUNT"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "dist", "promoter", "netraid-mount")
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("no go.mod above the working directory: set NETRAID_MOUNT to dist/promoter/netraid-mount")
		}
		dir = filepath.Dir(dir)
	}
}

// BrokerPid is the broker's pid while it runs, else 0.
func (s *Services) BrokerPid() int { return s.pid(filepath.Join(s.Work, "activemq.pid"), "java", "") }

// FusePid is the pid of the nbdfuse that attached the volume while it
// runs, else 0.
func (s *Services) FusePid() int {
	return s.pid(filepath.Join(s.State, "nbdfuse.pid"), "nbdfuse", filepath.Join(s.State, "fuse"))
}

// pid reads a pid file and returns the pid if that process runs as comm
// with arg among its arguments ("": any).
func (s *Services) pid(file, comm, arg string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if strings.TrimSpace(string(c)) != comm || arg != "" && !strings.Contains(string(args), "\x00"+arg+"\x00") {
		return 0
	}
	return pid
}

// Mounted is the device mounted on the node's mount point, or "".
func (s *Services) Mounted() string {
	out, _ := harness.Try("findmnt", "-n", "-o", "SOURCE", "--mountpoint", s.Mount)
	return strings.TrimSpace(out)
}

// Crash ends the node's services as its machine's death would: the
// broker and nbdfuse are killed, then the dead mount is taken away.
func (s *Services) Crash() {
	for _, pid := range []int{s.BrokerPid(), s.FusePid()} {
		if pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid)
		}
	}
	if s.Mounted() != "" {
		harness.Try("umount", "-l", s.Mount)
	}
	if dev, err := os.ReadFile(filepath.Join(s.State, "dev")); err == nil {
		d := strings.TrimSpace(string(dev))
		back, _ := os.ReadFile(filepath.Join("/sys/block", strings.TrimPrefix(d, "/dev/"), "loop", "backing_file"))
		if strings.TrimSpace(string(back)) == filepath.Join(s.State, "fuse", "nbd") {
			harness.Try("losetup", "-d", d)
		}
	}
	if out, _ := harness.Try("findmnt", "-n", "--mountpoint", filepath.Join(s.State, "fuse")); out != "" {
		harness.Try("fusermount3", "-u", "-z", filepath.Join(s.State, "fuse"))
	}
}

// waitGone waits until process pid no longer exists (a zombie counts as
// gone: whoever started it may not reap it), at most killWait.
func waitGone(pid int) {
	deadline := time.Now().Add(killWait)
	for time.Now().Before(deadline) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellJoin quotes each argument for sh and joins them with spaces.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
