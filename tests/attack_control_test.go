package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// controlProbe is what the prober saw: how many times it tried the
// control socket, and how each try ended.
type controlProbe struct {
	Attempts  int    // connect calls
	Absent    int    // no socket (ENOENT)
	Denied    int    // the socket was there, its mode kept nobody out (EACCES)
	Refused   int    // a socket nobody listens on (ECONNREFUSED)
	Other     int    // anything else
	LastOther string // the last of those
	Connected int    // connect succeeded
	Answered  int    // the daemon answered a request on such a connection
}

const probeMarker = "PROBE "

// TestControlSocketNobody: another user cannot reach the control socket
// at any moment. A prober running as nobody connects to the socket's
// path in a tight loop while the daemon is started again and again under
// umask 000 with the socket in a pre-existing world-writable directory
// (the case where a socket bound and then chmod'ed is open to everyone
// for an instant, and a connection made in that instant stays usable).
// It never connects and never gets an answer; it does meet the socket,
// and is denied.
func TestControlSocketNobody(t *testing.T) {
	harness.RequireRoot(t)
	world, err := os.MkdirTemp("", "netraid-world-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(world) })
	if err := os.Chmod(world, 0o777); err != nil {
		t.Fatal(err)
	}
	ctl := filepath.Join(world, "netraid.ctl")
	dir := t.TempDir()
	disks := sparseDisks(t, dir, 2, 64<<20)
	harness.Run(t, harness.Binary(t), append([]string{"create", "--name", "ctl"}, disks...)...)

	var out bytes.Buffer
	ready := filepath.Join(world, "probing")
	prober, stop := asNobody(t, world, "TestHelperControlProbe", &out,
		helperEnv+"=control-probe", "NETRAID_PROBE_SOCKET="+ctl, "NETRAID_PROBE_READY="+ready)
	harness.WaitFor(t, 30*time.Second, "the prober to start", func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	const rounds = 8
	for i := range rounds {
		startStopUnderUmask(t, dir, ctl, i, disks)
	}
	stop.Close()
	if err := prober.Wait(); err != nil {
		t.Fatalf("prober: %v\n%s", err, out.String())
	}
	var p controlProbe
	sc := bufio.NewScanner(&out)
	found := false
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), probeMarker); ok {
			found = json.Unmarshal([]byte(line), &p) == nil
		}
	}
	if !found {
		t.Fatalf("the prober reported nothing:\n%s", out.String())
	}
	t.Logf("prober as nobody over %d starts: %+v", rounds, p)
	if p.Connected != 0 || p.Answered != 0 {
		t.Fatalf("nobody connected to the control socket %d times and was answered %d times: %+v", p.Connected, p.Answered, p)
	}
	if p.Denied == 0 {
		t.Fatalf("the prober never met the socket (nothing shown): %+v", p)
	}
}

// startStopUnderUmask runs the daemon with umask 000, waits until root
// reaches its control socket, checks the socket's mode, and stops it.
func startStopUnderUmask(t *testing.T, dir, ctl string, round int, disks []string) {
	t.Helper()
	logPath := filepath.Join(dir, fmt.Sprintf("serve-%d.log", round))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"-c", `umask 000 && exec "$@"`, "sh", harness.Binary(t), "serve",
		"--control", ctl, "--listen", "127.0.0.1:0"}, disks...)
	cmd := exec.Command("sh", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	harness.WaitFor(t, 30*time.Second, "the control socket", func() bool {
		select {
		case err := <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("serve exited: %v\n%s", err, b)
		default:
		}
		_, err := node.NewClient(ctl).Status(context.Background())
		return err == nil
	})
	fi, err := os.Stat(ctl)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o600 || st.Uid != 0 {
		t.Fatalf("control socket mode %v owner %d, want 0600 and root", fi.Mode().Perm(), st.Uid)
	}
}

// TestHelperControlProbe is the prober TestControlSocketNobody runs as
// nobody: it tries the control socket until its stdin closes (at most
// two minutes), and on any connection asks to change the resync rate,
// as an intruder would. It prints what it saw.
func TestHelperControlProbe(t *testing.T) {
	if os.Getenv(helperEnv) != "control-probe" {
		t.Skip("the prober of TestControlSocketNobody, run as another user")
	}
	path := os.Getenv("NETRAID_PROBE_SOCKET")
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	if err := os.WriteFile(os.Getenv("NETRAID_PROBE_READY"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var p controlProbe
	deadline := time.Now().Add(2 * time.Minute)
probe:
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			break probe
		default:
		}
		p.Attempts++
		c, err := net.Dial("unix", path)
		switch {
		case err == nil:
			p.Connected++
			if tryAction(c) {
				p.Answered++
			}
			c.Close()
		case errors.Is(err, syscall.ENOENT):
			p.Absent++
		case errors.Is(err, syscall.EACCES):
			p.Denied++
		case errors.Is(err, syscall.ECONNREFUSED):
			p.Refused++
		default:
			p.Other++
			p.LastOther = err.Error()
		}
	}
	b, _ := json.Marshal(p)
	fmt.Printf("\n%s%s\n", probeMarker, b)
}

// tryAction sends a control action on c, keeping the connection alive,
// and reports whether the daemon answered it.
func tryAction(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	body := `{"rate":12345}`
	fmt.Fprintf(c, "POST /v1/resync-rate HTTP/1.1\r\nHost: netraid\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "HTTP/")
}

// sparseDisks makes n sparse files of size in dir.
func sparseDisks(t *testing.T, dir string, n int, size int64) []string {
	t.Helper()
	var disks []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("disk%d", i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, p)
	}
	return disks
}
