package tests

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netraid/netraid/tests/harness"
)

// TestConfigFilePair: two nodes, each started from a config file of its
// own (sockets, disks, replication addresses, time-outs), mirror a
// verified fio workload; the copies end byte-identical.
func TestConfigFilePair(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{Config: true})
	st := promoteA(t, p)
	if st.Peer == nil || !strings.HasSuffix(st.Peer.Address, ":"+strconv.Itoa(harness.PeerPort)) {
		t.Fatalf("A's peer is not the file's: %+v", st.Peer)
	}
	harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=16", "--size=64M",
		"--number_ios=4000", "--verify=crc32c", "--do_verify=1").Wait(t, 5*time.Minute)
	harness.WaitInSync(t, p.A, time.Minute)
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
}

// fileDisks makes a volume on sparse files, for tests that need no root.
func fileDisks(t *testing.T, dir, name string) *harness.Node {
	t.Helper()
	var disks []string
	for i := range 2 {
		d := filepath.Join(dir, name+"-d"+strconv.Itoa(i))
		if err := os.WriteFile(d, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(d, 64<<20); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, d)
	}
	n := harness.NewNode(t, name, dir, nil, disks)
	n.CLI(append([]string{"create", "--name", name}, disks...)...)
	return n
}

// TestConfigFileRefused: a file with a misspelt key, or a bad value, is
// refused before anything starts: exit 2, the file and the line, what
// was expected.
func TestConfigFileRefused(t *testing.T) {
	dir := t.TempDir()
	n := fileDisks(t, dir, "vol")
	for _, tc := range []struct{ text, want string }{
		{"[volume.vol]\ndisks = [\"" + n.Disks[0] + "\"]\nlisten-peer = \"127.0.0.1:7789\"\npeer = \"127.0.0.1:7790\"\npeer-timout = \"2s\"\n",
			`:5: unknown key "peer-timout" in [volume.vol] (did you mean "peer-timeout"?)`},
		{"[volume.vol]\nmax-connections = \"many\"\n", `:2: max-connections = "many": expected an integer`},
	} {
		path := filepath.Join(dir, "bad.toml")
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(harness.Binary(t), "serve", "--config", path, "--control", filepath.Join(dir, "ctl"))
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("serve with a bad file: %v, want exit 2\n%s", err, out)
		}
		if !strings.Contains(string(out), path+tc.want) {
			t.Errorf("refusal %q does not say %q", out, path+tc.want)
		}
		t.Logf("refused: %s", strings.SplitN(string(out), "\n", 2)[0])
	}
}

// TestUnitVerifies: systemd-analyze accepts the service unit, with its
// ExecStart pointing at the binary under test and its documentation at
// the manual pages the binary writes, and says nothing about it.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("needs systemd-analyze (./scripts/deps.sh installs systemd)")
	}
	dir := t.TempDir()
	bin := harness.Binary(t)
	in, err := os.ReadFile("../dist/netraid.service.in")
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.NewReplacer("@BINDIR@", filepath.Dir(bin), "@SYSCONFDIR@", "/etc").Replace(string(in))
	if filepath.Base(bin) != "netraid" {
		t.Fatalf("the binary under test is %s: the unit runs 'netraid'", bin)
	}
	path := filepath.Join(dir, "netraid.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	harness.Run(t, bin, "_man", filepath.Join(dir, "man", "man8"))
	args := []string{"verify", path}
	if _, err := exec.LookPath("man"); err != nil {
		args = []string{"verify", "--man=no", path}
	}
	cmd := exec.Command(analyze, args...)
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(dir, "man"))
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze %s: %v\n%s\n--- unit:\n%s", strings.Join(args, " "), err, out, unit)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecStart=" + bin + " serve --config /etc/netraid/netraid.toml"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
}

// TestNotifyReadyWatchdog: serve under a service manager's environment
// sends READY=1 once it serves (its export answers by then), WATCHDOG=1
// pings at half WATCHDOG_USEC while its control socket answers, with a
// STATUS=, and STOPPING=1 on SIGTERM. The version it reports is the
// binary's, in status and on its log's first line.
func TestNotifyReadyWatchdog(t *testing.T) {
	dir := t.TempDir()
	n := fileDisks(t, dir, "vol")
	sock := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs := make(chan string, 256)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:k])
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(time.Minute):
			t.Fatalf("no notification (waiting for %s); log:\n%s", what, n.Tail())
			return ""
		}
	}
	n.Env = []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}
	n.Start()

	if m := next("READY=1"); !strings.HasPrefix(m, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	st, err := n.Status()
	if err != nil || st.Export == nil || st.Role != "primary" {
		t.Fatalf("READY=1 before the node serves: %+v %v", st, err)
	}
	for range 3 {
		if m := next("WATCHDOG=1"); !strings.HasPrefix(m, "WATCHDOG=1\nSTATUS=vol primary disk:") {
			t.Fatalf("ping %q", m)
		}
	}

	ver := strings.TrimSpace(strings.TrimPrefix(harness.Run(t, harness.Binary(t), "--version"), "netraid "))
	if ver == "" || st.Version != ver {
		t.Errorf("status says version %q, --version %q", st.Version, ver)
	}
	log, _ := os.ReadFile(n.Log)
	lines := strings.Split(string(log), "\n")
	if len(lines) < 2 || !strings.Contains(lines[1], "netraid starting") || !strings.Contains(lines[1], strconv.Quote(ver)) {
		t.Errorf("the log's first line does not give the version %q:\n%s", ver, lines[:min(len(lines), 3)])
	}

	n.Stop()
	for {
		m := next("STOPPING=1")
		if strings.HasPrefix(m, "STOPPING=1") {
			break
		}
		if !strings.HasPrefix(m, "WATCHDOG=1") {
			t.Fatalf("unexpected notification %q", m)
		}
	}
}

// TestStatusWatchResync: 'status --watch' into a pipe writes a plain line
// per refresh: while a rate-limited resync runs, lines with its progress
// (never going back), rate and ETA, then one with the peer's leg up to
// date; SIGINT ends it with exit 0.
func TestStatusWatchResync(t *testing.T) {
	requirePair(t)
	p := harness.NewPair(t, harness.PairOptions{Args: []string{"--resync-rate", "4MB"}})
	promoteA(t, p)
	p.A.CLI("disconnect")
	harness.StartFio(t, p.A.URI("vol"), "--rw=write", "--bs=1M", "--iodepth=4", "--size=24M").Wait(t, 5*time.Minute)
	p.A.CLI("connect")

	cmd := exec.Command(harness.Binary(t), "status", "--watch", "--interval", "200ms")
	cmd.Env = append(os.Environ(), "NETRAID_CONTROL="+p.A.Control)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	progress := regexp.MustCompile(`resync \(bitmap\):([0-9.]+)% ([0-9.]+[KMG]?i?B)/s`)
	var resyncLines, withETA int
	last := -1.0
	sc := bufio.NewScanner(out)
	done := false
	for !done && sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "\x1b") {
			t.Fatalf("escape codes in a pipe: %q", line)
		}
		if m := progress.FindStringSubmatch(line); m != nil {
			pct, _ := strconv.ParseFloat(m[1], 64)
			if pct < last {
				t.Errorf("progress went back: %.1f%% after %.1f%%: %s", pct, last, line)
			}
			last = pct
			resyncLines++
			if strings.Contains(line, " eta:") {
				withETA++
			}
			if resyncLines == 1 {
				t.Logf("watch: %s", line)
			}
			continue
		}
		if resyncLines > 0 && strings.Contains(line, "leg:peer=up-to-date") && !strings.Contains(line, "resync") {
			t.Logf("watch: %s", line)
			done = true
		}
	}
	if !done {
		t.Fatalf("the watch ended (%v) before it showed the resync and its end (%d resync lines)", sc.Err(), resyncLines)
	}
	t.Logf("%d lines showed the resync, %d of them with an ETA", resyncLines, withETA)
	if withETA == 0 {
		t.Errorf("no line gave the resync's ETA")
	}
	cmd.Process.Signal(syscall.SIGINT)
	go func() { bufio.NewReader(out).WriteTo(discard{}) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("status --watch after SIGINT: %v, want exit 0", err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestMakeInstall: 'make install' with DESTDIR and PREFIX puts the
// binary, the unit (running the installed binary), the manual pages of
// every command, the bash completion, an example config, and the
// promoter's netraid-mount and ActiveMQ unit where they belong.
func TestMakeInstall(t *testing.T) {
	for _, c := range []string{"make", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s", c)
		}
	}
	dest := t.TempDir()
	bin := filepath.Join(t.TempDir(), "netraid")
	harness.Run(t, "make", "-C", "..", "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX=/usr", "BIN="+bin)
	for _, f := range []string{
		"usr/bin/netraid", "usr/lib/systemd/system/netraid.service", "usr/share/bash-completion/completions/netraid",
		"usr/share/man/man8/netraid.8", "usr/share/man/man8/netraid-serve.8", "usr/share/man/man8/netraid-status.8",
		"etc/netraid/netraid.toml.example",
		"usr/bin/netraid-mount", "usr/lib/systemd/system/netraid-activemq.service",
	} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	// The promoter runs netraid-mount from the PATH.
	if fi, err := os.Stat(filepath.Join(dest, "usr/bin/netraid-mount")); err == nil && fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("netraid-mount is installed not executable (%v)", fi.Mode())
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "usr/lib/systemd/system/netraid.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/netraid serve --config /etc/netraid/netraid.toml\n") {
		t.Errorf("installed unit:\n%s", unit)
	}
	// The example config is one the installed binary takes.
	out, err := exec.Command(filepath.Join(dest, "usr/bin/netraid"), "serve", "--config", filepath.Join(dest, "etc/netraid/netraid.toml.example"),
		"--print-config", filepath.Join(dest, "no-such-disk")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "[volume.vol]") {
		t.Errorf("the example config: %v\n%s", err, out)
	}
}
