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
	fs := newFlags(e, "status", "[--json] [--watch [--interval D]]", `
Show the running node's volume: its version, role, disks, NBD export,
the peer link, each mirror leg, out-of-sync bytes, and any resync,
rebuild or verify with its rate and ETA. Problems that need an operator
are listed with what to do.

With --watch the status is shown again every --interval until Ctrl-C:
on a terminal it is redrawn in place, with a progress bar for each
resync, rebuild or verify; otherwise each refresh is one line (one JSON
object with --json), for a log or a script.`)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	watch := fs.Bool("watch", false, "show the status again every --interval until interrupted")
	interval := fs.Duration("interval", time.Second, "how often --watch refreshes")
	client := controlFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *interval < 100*time.Millisecond {
		return usagef("--interval must be at least 100ms")
	}
	if *watch {
		w := &watcher{w: e.stdout, get: client().Status, interval: *interval, asJSON: *asJSON}
		if !*asJSON {
			w.cols = terminalWidth(e.stdout)
		}
		return w.run(ctx)
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

func printStatus(w io.Writer, st node.Status) { printStatusWith(w, st, progressOf(st), 0) }

// printStatusWith is printStatus showing ps for what is under way, with
// progress bars bar cells wide if bar > 0.
func printStatusWith(w io.Writer, st node.Status, ps []progress, bar int) {
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
	if x := st.Replication; x != nil {
		fmt.Fprintf(w, "  replication port %s: %d link(s) open, %d requests from the primary, written %s, %d errors\n",
			x.Address, x.Clients, x.Requests, bytesOf(x.BytesWritten), x.Errors)
		if n := x.RefusedByCap + x.TLSRefused + x.FailedHandshakes; n > 0 {
			fmt.Fprintf(w, "    refused connections: %d in TLS, %d other failed handshakes (hellos refused, callers not authenticated)\n",
				x.TLSRefused, x.FailedHandshakes+x.RefusedByCap)
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
		if p.LastHeard > 0 {
			fmt.Fprintf(w, "    primary last heard from %.1fs ago\n", p.LastHeard)
		}
	}
	printFailover(w, st.Failover)
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
	for _, p := range ps {
		printProgress(w, p, bar)
	}
	if rp := st.RebuildPoint; rp != nil {
		fmt.Fprintf(w, "  rebuild of member %d recorded up to %s (a restart resumes there)\n", rp.Member, bytesOf(rp.Cursor))
	}
	printVerify(w, st.Verify)
	for _, p := range st.Problems {
		fmt.Fprintf(w, "  PROBLEM: %s\n", p)
	}
}

// printProgress prints a resync, rebuild or verify under way, with a
// progress bar bar cells wide if bar > 0.
func printProgress(w io.Writer, p progress, bar int) {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s: ", p.what)
	if bar > 0 {
		b.WriteString(progressBar(p.fraction(), bar) + " ")
	}
	fmt.Fprintf(&b, "%.1f%%  %s of %s", p.percent(), bytesOf(p.done), bytesOf(p.total))
	if p.rate > 0 || p.kind != "verify" {
		fmt.Fprintf(&b, "  %s/s", bytesOf(int64(p.rate)))
	}
	if p.limit > 0 {
		fmt.Fprintf(&b, " (limit %s/s)", bytesOf(p.limit))
	}
	if p.paused {
		b.WriteString("  PAUSED")
	} else if p.eta > 0 {
		fmt.Fprintf(&b, "  ETA %s", p.eta)
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

// printVerify shows the verify under way or the last one, and when the
// last full verify ran.
func printVerify(w io.Writer, v *node.VerifyStatus) {
	if v == nil {
		return
	}
	what := "verify of the used regions"
	if v.Full {
		what = "verify of every region"
	}
	switch {
	case v.Running:
		fmt.Fprintf(w, "  %s: %s of %s\n", what, bytesOf(v.Done), bytesOf(v.Total))
	case v.Error != "":
		fmt.Fprintf(w, "  %s failed: %s\n", what, v.Error)
	default:
		fmt.Fprintf(w, "  last %s (%s): %d mismatched region(s)%s\n", what, v.Finished, len(v.Mismatched), map[bool]string{true: ", repaired"}[v.Repaired])
	}
	if v.LastFull != "" && (v.Running || v.LastFull != v.Finished) {
		fmt.Fprintf(w, "  last full verify: %s\n", v.LastFull)
	}
}

// printFailover says how the node fails over.
func printFailover(w io.Writer, f *node.FailoverStatus) {
	if f == nil {
		return
	}
	if f.Mode == "manual" {
		fmt.Fprintln(w, "  failover: manual ('netraid promote' on the survivor; serve with --etcd for automatic, fenced failover)")
		return
	}
	holder := "nobody"
	if f.Holder != "" {
		holder = fmt.Sprintf("%s (token %d)", f.Holder, f.HolderToken)
	}
	fmt.Fprintf(w, "  failover: automatic through etcd %s; election held by %s; lease %.0fs", strings.Join(f.Endpoints, ","), holder, f.LeaseTTL)
	if f.Token != 0 {
		if f.LeaseLeft > 0 {
			fmt.Fprintf(w, "; this node holds it (token %d, %.0fs of its lease left)", f.Token, f.LeaseLeft)
		} else {
			fmt.Fprintf(w, "; this node holds it (token %d)", f.Token)
		}
	}
	fmt.Fprintln(w)
	for _, r := range f.Outdated {
		fmt.Fprintf(w, "    outdated: %s's copy lacks writes from generation %s on (recorded by %s, token %d, at %s)\n", r.Node, r.Generation, r.By, r.Token, r.Time)
	}
	if f.Waiting != "" {
		fmt.Fprintf(w, "    not promoting itself: %s\n", f.Waiting)
	}
	if f.LastFailover != "" {
		fmt.Fprintf(w, "    last failover: %s, %.1fs after the primary was found gone\n", f.LastFailover, f.FailoverSeconds)
	}
}
