package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
)

func init() {
	register(command{name: "status", summary: "show the volume, its disks, the peer link and any resync", run: runStatus})
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", "[--json]", `
Show the running node's volume: role, disks, NBD export, the peer link,
each mirror leg, out-of-sync bytes, and any resync or verify with its
rate and ETA. Problems that need an operator are listed with what to do.`)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	client := controlFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	st, err := client().Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(e.stdout, st)
	return nil
}

func bytesOf(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

func printStatus(w io.Writer, st node.Status) {
	fmt.Fprintf(w, "volume %s  role:%s  disk:%s  size:%s  chunk:%s  region:%s\n",
		st.Volume, st.Role, st.DiskState, bytesOf(st.Size), bytesOf(st.Chunk), bytesOf(st.Region))
	if st.Version != "" {
		fmt.Fprintf(w, "  version: %s\n", st.Version)
	}
	fmt.Fprintf(w, "  generations: %s\n", st.Gens)
	for _, m := range st.Members {
		fmt.Fprintf(w, "  disk %d %-28s %-10s %s\n", m.Index, m.Path, m.State, bytesOf(m.Size))
	}
	if x := st.Export; x != nil {
		fmt.Fprintf(w, "  export %q on %s (tls:%s): %d client(s), %d requests, read %s, written %s, %d errors\n",
			x.Name, x.Address, x.TLS, x.Clients, x.Requests, bytesOf(x.BytesRead), bytesOf(x.BytesWritten), x.Errors)
		if n := x.RefusedByCap + x.TLSRefused + x.FailedHandshakes; n > 0 {
			fmt.Fprintf(w, "    refused connections: %d over the cap, %d in TLS, %d other failed handshakes\n",
				x.RefusedByCap, x.TLSRefused, x.FailedHandshakes)
		}
		if ra := x.Readahead; ra != nil {
			fmt.Fprintf(w, "    read-ahead %s: %d reads served from it, %d from the disks, %s read ahead\n",
				bytesOf(ra.Window), ra.Hits, ra.Misses, bytesOf(ra.ReadAhead))
		}
	}
	if p := st.Peer; p != nil {
		link := "plaintext"
		if p.TLS {
			link = "tls"
		}
		fmt.Fprintf(w, "  peer %s (%s): %s", firstNonEmpty(p.Address, p.Listen), link, p.State)
		if p.Role != "" {
			fmt.Fprintf(w, "  role:%s  disk:%s", p.Role, p.DiskState)
		}
		if p.Verdict != "" {
			fmt.Fprintf(w, "  last meeting:%s", p.Verdict)
		}
		fmt.Fprintln(w)
		if p.LastError != "" {
			fmt.Fprintf(w, "    last error: %s\n", p.LastError)
		}
	}
	for _, l := range st.Legs {
		fmt.Fprintf(w, "  leg %-8s %s", l.Name, l.State)
		if l.Error != "" {
			fmt.Fprintf(w, "  (%s)", l.Error)
		}
		fmt.Fprintln(w)
	}
	if st.OutOfSync > 0 || st.Peer != nil {
		fmt.Fprintf(w, "  out of sync: %s\n", bytesOf(st.OutOfSync))
	}
	printProgress(w, "resync", st.Resync)
	printProgress(w, "rebuild", st.Rebuild)
	if rp := st.RebuildPoint; rp != nil {
		fmt.Fprintf(w, "  rebuild of member %d recorded up to %s (a restart resumes there)\n", rp.Member, bytesOf(rp.Cursor))
	}
	if v := st.Verify; v != nil {
		switch {
		case v.Running:
			fmt.Fprintf(w, "  verify: %s of %s\n", bytesOf(v.Done), bytesOf(v.Total))
		case v.Error != "":
			fmt.Fprintf(w, "  verify failed: %s\n", v.Error)
		default:
			fmt.Fprintf(w, "  last verify (%s): %d mismatched region(s)%s\n", v.Finished, len(v.Mismatched), map[bool]string{true: ", repaired"}[v.Repaired])
		}
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "  PROBLEM: %s\n", p)
	}
}

func printProgress(w io.Writer, what string, r *node.ResyncStatus) {
	if r == nil {
		return
	}
	pct := 100.0
	if r.Total > 0 {
		pct = 100 * float64(r.Done) / float64(r.Total)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %s (%s): %.1f%%  %s of %s  %s/s", what, r.Kind, pct, bytesOf(r.Done), bytesOf(r.Total), bytesOf(int64(r.Rate)))
	if r.RateLimit > 0 {
		fmt.Fprintf(&b, " (limit %s/s)", bytesOf(r.RateLimit))
	}
	if r.Paused {
		b.WriteString("  PAUSED")
	} else if r.ETASeconds > 0 {
		fmt.Fprintf(&b, "  ETA %s", (time.Duration(r.ETASeconds) * time.Second).String())
	}
	fmt.Fprintln(w, b.String())
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// printDo runs a control action and prints the daemon's message.
func printDo(ctx context.Context, e *env, c *node.Client, action string, req node.Request) error {
	msg, err := c.Do(ctx, action, req)
	if err != nil {
		return err
	}
	if msg != "" {
		fmt.Fprintln(e.stdout, msg)
	}
	return nil
}
