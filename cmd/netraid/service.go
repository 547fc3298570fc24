package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/netraid/netraid/internal/sdnotify"
	"github.com/netraid/netraid/node"
)

// service tells the service manager how serve is doing (sd_notify):
// READY=1 once the node serves, watchdog pings while its control socket
// answers a status call, STOPPING=1 when it starts to shut down.
type service struct {
	notify *sdnotify.Notifier // nil outside a service manager
	log    *slog.Logger
	client *node.Client // the node's control socket

	ctx    context.Context // ends when serve returns
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startService reads the service manager's environment; stop ends what
// it started.
func startService(ctx context.Context, log *slog.Logger, control string) *service {
	s := &service{log: log, client: node.NewClient(control)}
	n, err := sdnotify.FromEnv()
	if err != nil {
		log.Warn("not notifying the service manager", "err", err)
	}
	s.notify = n
	s.ctx, s.cancel = context.WithCancel(ctx)
	if n == nil {
		return s
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		if ctx.Err() != nil { // a signal, not a failure of serve
			s.send("STOPPING=1\nSTATUS=draining the requests in flight and flushing")
		}
	}()
	return s
}

// ready is node.Config.OnReady: the node serves.
func (s *service) ready() {
	if s.notify == nil {
		return
	}
	s.send("READY=1\nSTATUS=serving")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.notify.RunWatchdog(s.ctx, s.health, func(err error) {
			s.log.Warn("watchdog not pinged: the control socket did not answer a status call", "err", err)
		})
	}()
}

// health is the watchdog's check: the node answers a status call through
// its control socket, as 'netraid status' would.
func (s *service) health(ctx context.Context) (string, error) {
	st, err := s.client.Status(ctx)
	if err != nil {
		return "", err
	}
	return statusLine(st, progressOf(st)), nil
}

func (s *service) send(state string) {
	if err := s.notify.Notify(state); err != nil {
		s.log.Warn("notifying the service manager", "err", err)
	}
}

func (s *service) stop() {
	s.cancel()
	s.wg.Wait()
}

// statusLine is a node's state on one line: for the service manager's
// STATUS= and for 'status --watch' when it does not draw on a terminal.
func statusLine(st node.Status, ps []progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s disk:%s", st.Volume, st.Role, st.DiskState)
	if p := st.Peer; p != nil {
		fmt.Fprintf(&b, " peer:%s", p.State)
	}
	for _, l := range st.Legs {
		fmt.Fprintf(&b, " leg:%s=%s", l.Name, l.State)
	}
	for _, m := range st.Members {
		if m.State != "active" {
			fmt.Fprintf(&b, " disk%d:%s", m.Index, m.State)
		}
	}
	if st.OutOfSync > 0 || st.Peer != nil {
		fmt.Fprintf(&b, " out-of-sync:%s", compactBytes(st.OutOfSync))
	}
	for _, p := range ps {
		fmt.Fprintf(&b, " %s:%.1f%% %s/s", p.what, p.percent(), compactBytes(int64(p.rate)))
		if p.paused {
			b.WriteString(" paused")
		} else if p.eta > 0 {
			fmt.Fprintf(&b, " eta:%s", p.eta)
		}
	}
	if n := len(st.Problems); n > 0 {
		fmt.Fprintf(&b, " problems:%d", n)
	}
	return b.String()
}
