package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// The promoter's commands (Config.OnPromote, OnDemote): shell commands
// that attach the export, mount it and start the service after this node
// is promoted, and stop, unmount and detach before it is demoted, in the
// manner of drbd-reactor's promoter. Their output goes to the log, a
// line at a time. A failing on-promote command demotes the node (the
// on-demote commands run), so that the peer may try.

// runCommands runs cmds in order, stopping at the first that fails.
func (n *Node) runCommands(ctx context.Context, which string, cmds []string) error {
	for i, c := range cmds {
		start := time.Now()
		n.log.Info("running "+which+" command", "n", i+1, "of", len(cmds), "command", c)
		if err := n.runCommand(ctx, which, c); err != nil {
			return fmt.Errorf("%s command %d (%q): %w", which, i+1, c, err)
		}
		n.log.Info(which+" command done", "n", i+1, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func (n *Node) runCommand(ctx context.Context, which, c string) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c)
	n.mu.Lock()
	export := ""
	if n.prim != nil {
		export = n.prim.addr
	}
	n.mu.Unlock()
	cmd.Env = append(os.Environ(),
		"NETRAID_VOLUME="+n.sb.Name, "NETRAID_NODE="+n.cfg.Name, "NETRAID_EXPORT="+export,
		"NETRAID_EXPORT_NAME="+n.exportName(), "NETRAID_CONTROL="+n.cfg.Control)
	// The output is logged through a writer, not a pipe read to its
	// end: a command that starts a service in the background (whose
	// child keeps the output open) is done when it exits. WaitDelay
	// bounds the wait for such a child's output.
	lw := &lineLogger{n: n, which: which}
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	lw.flush()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return fmt.Errorf("did not finish within %v", n.cfg.CommandTimeout)
	case errors.Is(err, exec.ErrWaitDelay):
		// It exited with success; what its children print from now on
		// is theirs to log.
		return nil
	}
	return err
}

// lineLogger logs what a command prints, a line at a time.
type lineLogger struct {
	n     *Node
	which string
	mu    sync.Mutex
	buf   []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 {
		l.line(l.buf)
		l.buf = nil
	}
	return len(p), nil
}

// flush logs an unfinished last line.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(l.buf)
		l.buf = nil
	}
}

func (l *lineLogger) line(b []byte) {
	l.n.log.Info(l.which+" output", "line", strings.TrimRight(string(b), "\r"))
}

// exportName is the NBD export's name.
func (n *Node) exportName() string {
	if n.cfg.Export != "" {
		return n.cfg.Export
	}
	return n.sb.Name
}

// promoteAndStart promotes this node and runs the on-promote commands; if
// one fails, the node demotes again (running the on-demote commands) and
// says why.
func (n *Node) promoteAndStart(ctx context.Context, force bool) (string, error) {
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	n.mu.Lock()
	stopping := n.stopping != nil && n.stopping.Err() != nil
	n.mu.Unlock()
	if stopping {
		return "", errors.New("the node is shutting down")
	}
	msg, err := n.promote(ctx, force)
	if err != nil || msg == "already primary" || len(n.cfg.OnPromote) == 0 {
		return msg, err
	}
	if err := n.runCommands(n.ctx, "on-promote", n.cfg.OnPromote); err != nil {
		n.log.Error("an on-promote command failed: demoting", "err", err)
		if _, derr := n.demoteLocked(true, nil); derr != nil {
			n.log.Error("demoting after a failed on-promote command", "err", derr)
		}
		return "", fmt.Errorf("promoted, but %v: demoted again, so that the peer may be promoted", err)
	}
	return msg + "\non-promote commands done", nil
}
