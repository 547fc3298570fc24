package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier sends notifications to the service manager. A nil *Notifier
// sends nothing.
type Notifier struct {
	addr *net.UnixAddr
	// Watchdog is the period the service manager expects pings within
	// (WatchdogSec=); zero if it expects none.
	Watchdog time.Duration
}

// FromEnv returns the notifier $NOTIFY_SOCKET names, or nil if there is
// none, and removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the
// environment.
func FromEnv() (*Notifier, error) {
	sock := os.Getenv("NOTIFY_SOCKET")
	usec, pid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(v)
	}
	if sock == "" {
		return nil, nil
	}
	if sock[0] != '/' && sock[0] != '@' {
		return nil, fmt.Errorf("sdnotify: NOTIFY_SOCKET=%q is neither a path nor an abstract socket (@name)", sock)
	}
	n := &Notifier{addr: &net.UnixAddr{Name: sock, Net: "unixgram"}}
	if usec != "" && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		u, err := strconv.ParseUint(usec, 10, 63)
		if err != nil || u == 0 {
			return nil, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
		}
		n.Watchdog = time.Duration(u) * time.Microsecond
	}
	return n, nil
}

// Notify sends one notification: lines of VARIABLE=value.
func (n *Notifier) Notify(state string) error {
	if n == nil {
		return nil
	}
	// The Go runtime maps a leading '@' to the abstract namespace.
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Health checks the daemon for the watchdog: an error means "do not
// ping". The status it returns, if not empty, goes with the ping as
// STATUS= (what `systemctl status` shows).
type Health func(ctx context.Context) (status string, err error)

// RunWatchdog pings the service manager every half watchdog period while
// healthy says the daemon is healthy, until ctx is done. It returns at
// once if no watchdog is expected. unhealthy is told each time the
// daemon goes from healthy to not (and once at the first failed check),
// with the reason; a ping that cannot be sent counts as a failure too.
func (n *Notifier) RunWatchdog(ctx context.Context, healthy Health, unhealthy func(error)) {
	if n == nil || n.Watchdog <= 0 {
		return
	}
	period := n.Watchdog / 2
	t := time.NewTicker(period)
	defer t.Stop()
	wasOK := true
	for {
		err := n.check(ctx, period, healthy)
		if err != nil && wasOK && ctx.Err() == nil && unhealthy != nil {
			unhealthy(err)
		}
		wasOK = err == nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check runs one health check within limit and pings if it passed.
func (n *Notifier) check(ctx context.Context, limit time.Duration, healthy Health) error {
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	status, err := healthy(cctx)
	if err == nil && cctx.Err() != nil {
		err = cctx.Err() // answered, but too late to count
	}
	if err != nil {
		return err
	}
	msg := "WATCHDOG=1"
	if status != "" {
		msg += "\nSTATUS=" + status
	}
	return n.Notify(msg)
}
