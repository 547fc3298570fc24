package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
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
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { n.logLines(which, out) })
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("did not finish within %v", n.cfg.CommandTimeout)
		}
		return err
	}
	return nil
}

// logLines logs what a command prints.
func (n *Node) logLines(which string, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		n.log.Info(which+" output", "line", strings.TrimRight(sc.Text(), "\r"))
	}
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
	msg, err := n.promote(ctx, force)
	if err != nil || msg == "already primary" || len(n.cfg.OnPromote) == 0 {
		return msg, err
	}
	if err := n.runCommands(n.ctx, "on-promote", n.cfg.OnPromote); err != nil {
		n.log.Error("an on-promote command failed: demoting", "err", err)
		if _, derr := n.demote(true); derr != nil {
			n.log.Error("demoting after a failed on-promote command", "err", derr)
		}
		return "", fmt.Errorf("promoted, but %v: demoted again, so that the peer may be promoted", err)
	}
	return msg + "\non-promote commands done", nil
}
