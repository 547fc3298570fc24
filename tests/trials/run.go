package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/tests/harness"
)

// config is one run of trials.
type config struct {
	Trials   int
	Only     int // run only this trial of the schedule (0: every one)
	Seed     uint64
	Faults   []fault // picked from in a shuffled round-robin: each appears before any repeats
	DiskSize int64   // each loop device
	LogDir   string  // a log per trial and the nodes' logs
	Verbose  bool    // trial logs go to Out as well
	Out      io.Writer
}

// summary is what a run found.
type summary struct {
	Results          []result
	OK, Lost, Failed int // trials by outcome
}

// Bad reports whether any trial lost a write or failed.
func (s summary) Bad() bool { return s.Lost+s.Failed > 0 }

// runner runs trials one after another; Interrupt tears the running one
// down from a signal handler.
type runner struct {
	cfg     config
	current atomic.Pointer[harness.Script]
}

// Interrupt runs the cleanups of the trial under way.
func (r *runner) Interrupt() {
	if s := r.current.Load(); s != nil {
		s.Interrupt()
	}
}

// run runs the trials, printing a line as each ends and the table at the
// end. ctx ends the run between trials.
func (r *runner) run(ctx context.Context) summary {
	cfg := r.cfg
	what := fmt.Sprintf("%d trials", cfg.Trials)
	if cfg.Only > 0 {
		what = fmt.Sprintf("trial %d of %d", cfg.Only, cfg.Trials)
	}
	fmt.Fprintf(cfg.Out, "netraid trials: %s, faults %s, seed %d, %s disks; logs in %s\n",
		what, strings.Join(names(cfg.Faults), ","), cfg.Seed, humanize.IBytes(uint64(cfg.DiskSize)), cfg.LogDir)
	sched := schedule(cfg.Seed, cfg.Faults, cfg.Trials)
	var sum summary
	for i, f := range sched {
		if cfg.Only > 0 && i+1 != cfg.Only {
			continue
		}
		if ctx.Err() != nil {
			fmt.Fprintf(cfg.Out, "stopped before trial %d: %v\n", i+1, context.Cause(ctx))
			break
		}
		res := r.one(i+1, f)
		sum.Results = append(sum.Results, res)
		switch res.Outcome {
		case "ok":
			sum.OK++
		case "LOST":
			sum.Lost++
		default:
			sum.Failed++
		}
		fmt.Fprintf(cfg.Out, "trial %2d/%d  %-18s %-8s %s\n", i+1, cfg.Trials, f.name, res.Outcome, res.What)
	}
	printTable(cfg.Out, sum)
	fmt.Fprintf(cfg.Out, "%d trials: %d ok, %d lost writes, %d failed (seed %d)\n",
		len(sum.Results), sum.OK, sum.Lost, sum.Failed, cfg.Seed)
	for _, r := range sum.Results {
		if r.Outcome != "ok" {
			fmt.Fprintf(cfg.Out, "replay trial %d: trials --faults %s --seed %d --trial %d\n",
				r.N, strings.Join(names(cfg.Faults), ","), cfg.Seed, r.N)
		}
	}
	return sum
}

// one runs trial n with its own script, log and random source.
func (r *runner) one(n int, f fault) result {
	cfg := r.cfg
	res := result{N: n, Fault: f.name, What: f.name, Outcome: "FAIL"}
	logPath := filepath.Join(cfg.LogDir, fmt.Sprintf("trial-%02d.log", n))
	logf, err := os.Create(logPath)
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	defer logf.Close()
	var out io.Writer = logf
	if cfg.Verbose {
		out = io.MultiWriter(logf, cfg.Out)
	}
	s := harness.NewScript(out)
	r.current.Store(s)
	defer r.current.Store(nil)
	begin := time.Now()
	err = s.Run(func() {
		runTrial(s, cfg, f, rand.New(rand.NewPCG(cfg.Seed, uint64(n))), &res)
	})
	if err != nil {
		res.Outcome, res.Detail = "FAIL", err.Error()
	}
	fmt.Fprintf(logf, "trial %d: %s after %v: %s %s\n", n, res.Outcome, time.Since(begin).Round(time.Millisecond), res.What, res.Detail)
	return res
}

// schedule picks n faults: a shuffled round of all of them, then another.
func schedule(seed uint64, fs []fault, n int) []fault {
	rng := rand.New(rand.NewPCG(seed, 0))
	var out []fault
	for len(out) < n {
		for _, i := range rng.Perm(len(fs)) {
			out = append(out, fs[i])
		}
	}
	return out[:n]
}

func names(fs []fault) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.name)
	}
	return out
}

// printTable prints one row per trial, then the details of those that
// were not ok.
func printTable(w io.Writer, sum summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tfault\tat ack\tacked\tin flight\tlost\tlongest stall\tfailover\trecovery\toutcome\twhat")
	for _, r := range sum.Results {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
			r.N, r.Fault, r.At, r.Acked, r.Unknown, r.Lost, orDash(r.Stall, time.Millisecond),
			orDash(r.Failover, 100*time.Millisecond), orDash(r.Recovery, 100*time.Millisecond), r.Outcome, r.What)
	}
	tw.Flush()
	fmt.Fprintln(w, "at ack: acknowledged writes when the fault struck; in flight: unacknowledged when the workload stopped (allowed either way);")
	fmt.Fprintln(w, "lost: blocks missing an acknowledged write; failover: from the fault to the other node promoted by itself (witness);")
	fmt.Fprintln(w, "recovery: from the first recovery action to both copies in sync")
	for _, r := range sum.Results {
		if r.Outcome != "ok" {
			fmt.Fprintf(w, "trial %d (%s) %s: %s\n", r.N, r.Fault, r.Outcome, firstLines(r.Detail, 12))
		}
	}
}

// orDash rounds d, or says "-" for none; a time too short to show
// rounded is "<round", not "0s" (which would read as none).
func orDash(d, round time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < round/2:
		return "<" + round.String()
	}
	return d.Round(round).String()
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines[n] = "…"
	}
	return strings.Join(lines, "\n")
}
