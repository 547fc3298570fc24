package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// listen opens a datagram socket at name (a path, or @abstract) as the
// service manager would, and returns a channel of what arrives on it.
func listen(t *testing.T, name string) <-chan string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return ch
}

func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no notification arrived")
		return ""
	}
}

func TestNotifyPathAndAbstract(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		"@netraid-sdnotify-test-" + strconv.Itoa(os.Getpid()),
	} {
		ch := listen(t, name)
		t.Setenv("NOTIFY_SOCKET", name)
		n, err := FromEnv()
		if err != nil || n == nil {
			t.Fatalf("%s: %v %v", name, n, err)
		}
		if os.Getenv("NOTIFY_SOCKET") != "" {
			t.Errorf("NOTIFY_SOCKET left in the environment")
		}
		if err := n.Notify("READY=1\nSTATUS=serving"); err != nil {
			t.Fatal(err)
		}
		if m := next(t, ch); m != "READY=1\nSTATUS=serving" {
			t.Errorf("%s: got %q", name, m)
		}
	}
}

func TestNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := FromEnv()
	if err != nil || n != nil {
		t.Fatalf("got %v %v, want nil", n, err)
	}
	if err := n.Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	n.RunWatchdog(context.Background(), nil, nil) // returns at once
}

func TestFromEnvRefuses(t *testing.T) {
	for _, env := range [][2]string{{"relative/path", ""}, {"/run/x", "soon"}, {"/run/x", "0"}} {
		t.Setenv("NOTIFY_SOCKET", env[0])
		t.Setenv("WATCHDOG_USEC", env[1])
		if _, err := FromEnv(); err == nil {
			t.Errorf("NOTIFY_SOCKET=%q WATCHDOG_USEC=%q accepted", env[0], env[1])
		}
	}
}

func TestWatchdogPID(t *testing.T) {
	for _, tt := range []struct {
		pid  string
		want time.Duration
	}{{"", 2 * time.Second}, {strconv.Itoa(os.Getpid()), 2 * time.Second}, {"1", 0}} {
		t.Setenv("NOTIFY_SOCKET", "/run/x")
		t.Setenv("WATCHDOG_USEC", "2000000")
		t.Setenv("WATCHDOG_PID", tt.pid)
		n, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if n.Watchdog != tt.want {
			t.Errorf("WATCHDOG_PID=%q: watchdog %v, want %v (another process's watchdog is not ours)", tt.pid, n.Watchdog, tt.want)
		}
	}
}

// TestWatchdogPingsOnlyWhileHealthy: pings carry the status while the
// check passes; a failing check and one that hangs past its time limit
// stop them, and the daemon is told once each time; pings resume when it
// recovers. Each check is numbered and an answering check puts its number
// in the status, so a ping is tied to the check that allowed it whatever
// the scheduling.
func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	ch := listen(t, name)
	n := &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}, Watchdog: 40 * time.Millisecond}

	var mu sync.Mutex
	state, count := "ok", 0 // state: ok, fail, hang
	checks := make(chan string, 1000)
	health := func(ctx context.Context) (string, error) {
		mu.Lock()
		s := state
		count++
		c := count
		mu.Unlock()
		checks <- s
		switch s {
		case "fail":
			return "", errors.New("control socket refused")
		case "hang":
			<-ctx.Done()
			return "", ctx.Err()
		}
		return fmt.Sprintf("check %d", c), nil
	}
	// set changes the state and returns the number of the last check
	// made in the old one.
	set := func(s string) int {
		mu.Lock()
		defer mu.Unlock()
		state = s
		return count
	}
	pingOf := func(m string) int {
		var c int
		if _, err := fmt.Sscanf(m, "WATCHDOG=1\nSTATUS=check %d", &c); err != nil {
			t.Fatalf("ping %q: %v", m, err)
		}
		return c
	}
	var told []string
	var toldMu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.RunWatchdog(ctx, health, func(err error) { toldMu.Lock(); told = append(told, err.Error()); toldMu.Unlock() })
	}()
	defer func() { cancel(); <-done }()

	pingOf(next(t, ch))
	for _, bad := range []string{"fail", "hang"} {
		last := set(bad)
		waitChecks(t, checks, bad, 3)
		recovered := set("ok")
		// Every ping from here on came from a check before the bad state
		// or after the recovery; the first after it shows pings resumed.
		for {
			c := pingOf(next(t, ch))
			if c > last && c <= recovered {
				t.Fatalf("%s: check %d pinged while unhealthy (checks %d-%d)", bad, c, last+1, recovered)
			}
			if c > recovered {
				break
			}
		}
	}
	toldMu.Lock()
	defer toldMu.Unlock()
	if len(told) != 2 || !strings.Contains(told[0], "refused") || !strings.Contains(told[1], "deadline") {
		t.Errorf("told %q; want each failure once", told)
	}
}

func waitChecks(t *testing.T, checks <-chan string, state string, n int) {
	t.Helper()
	for n > 0 {
		select {
		case s := <-checks:
			if s == state {
				n--
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s check", state)
		}
	}
}
