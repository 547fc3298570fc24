package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/netraid/netraid/tests/harness"
)

// interruptGrace is how long a trial torn down by a signal may take to
// notice before the program exits anyway.
const interruptGrace = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := make(chan int, 1)
	go func() { code <- runMain(ctx, os.Args[1:], os.Stdout, os.Stderr) }()
	select {
	case c := <-code:
		os.Exit(c)
	case <-ctx.Done():
	}
	stop() // a second signal ends the program at once
	select {
	case c := <-code:
		os.Exit(c)
	case <-time.After(interruptGrace):
		fmt.Fprintln(os.Stderr, "trials: the interrupted trial did not end in time; exiting")
		os.Exit(130)
	}
}

// runMain parses flags, runs the trials, and returns the exit status: 0
// when no trial lost a write or failed, 1 otherwise, 2 on bad usage, 130
// when interrupted.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("trials", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.IntP("trials", "n", 0, "number of trials (0: one of each fault picked)")
	seed := fs.Uint64("seed", 0, "seed of every random choice (0: a random one, printed)")
	only := fs.Int("trial", 0, "run only trial N of the seed's schedule (with the same --faults, --witness): a replay")
	list := fs.String("faults", strings.Join(faultNames(), ","), "faults to pick from, comma-separated")
	witnessOnly := fs.Bool("witness", false, "only the faults of a pair that fails over by itself through a witness (etcd): "+strings.Join(names(witnessFaults), ", "))
	size := fs.String("disk-size", "64MiB", "size of each loop-device disk")
	verbose := fs.BoolP("verbose", "v", false, "print each trial's log as it runs")
	keep := fs.Bool("keep-logs", false, "keep the log directory even when every trial passed")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: trials [flags]\n\nRandomized fault trials on a netraid pair (needs root). Faults: %s.\n\n", strings.Join(faultNames(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := config{Trials: *n, Seed: *seed, Verbose: *verbose, Out: stdout}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64N(1 << 40)
	}
	var err error
	if cfg.Faults, err = pickFaults(*list, *witnessOnly); err != nil || cfg.Trials < 0 {
		fmt.Fprintf(stderr, "trials: %v\n", usageErr(err, cfg.Trials))
		return 2
	}
	if cfg.Trials == 0 {
		cfg.Trials = len(cfg.Faults)
	}
	if cfg.Only = *only; cfg.Only < 0 {
		fmt.Fprintf(stderr, "trials: --trial %d: want a trial's number\n", cfg.Only)
		return 2
	}
	cfg.Trials = max(cfg.Trials, cfg.Only)
	ds, err := humanize.ParseBytes(*size)
	if err != nil {
		fmt.Fprintf(stderr, "trials: --disk-size: %v\n", err)
		return 2
	}
	cfg.DiskSize = int64(ds)
	if msg := ready(cfg.Faults); msg != "" {
		fmt.Fprintf(stderr, "trials: %s\n", msg)
		return 1
	}
	if cfg.LogDir, err = os.MkdirTemp("", "netraid-trials-"); err != nil {
		fmt.Fprintf(stderr, "trials: %v\n", err)
		return 1
	}
	r := &runner{cfg: cfg}
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "trials: interrupted; tearing the trial under way down")
			r.Interrupt()
		case <-finished:
		}
	}()
	sum := r.run(ctx)
	if ctx.Err() != nil {
		fmt.Fprintf(stdout, "interrupted: logs in %s\n", cfg.LogDir)
		return 130
	}
	if sum.Bad() {
		fmt.Fprintf(stdout, "FAILED: logs in %s\n", cfg.LogDir)
		return 1
	}
	if *keep {
		fmt.Fprintf(stdout, "logs in %s\n", cfg.LogDir)
	} else {
		os.RemoveAll(cfg.LogDir)
	}
	return 0
}

func usageErr(err error, n int) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("--trials %d: want a positive number (or 0: one of each fault)", n)
}

// pickFaults returns the named faults, in the order of faults; with
// witnessOnly, only those of them that run with a witness.
func pickFaults(list string, witnessOnly bool) ([]fault, error) {
	want := strings.Split(list, ",")
	for _, w := range want {
		if !slices.Contains(faultNames(), strings.TrimSpace(w)) {
			return nil, fmt.Errorf("unknown fault %q (have %s)", w, strings.Join(faultNames(), ", "))
		}
	}
	var out []fault
	for _, f := range faults {
		if (f.witness || !witnessOnly) && slices.ContainsFunc(want, func(w string) bool { return strings.TrimSpace(w) == f.name }) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--witness: none of the faults %q runs with a witness (those are %s)", list, strings.Join(names(witnessFaults), ", "))
	}
	return out, nil
}

// ready says what is missing to run the faults here, or "".
func ready(fs []fault) string {
	if os.Geteuid() != 0 {
		return "needs root (loop devices, mounts, network namespaces)"
	}
	cmds := []string{"ip", "tc", "losetup", "nbdfuse", "fusermount3", "mkfs.ext4", "e2fsck"}
	if slices.ContainsFunc(fs, func(f fault) bool { return f.witness }) {
		cmds = append(cmds, "etcd", "etcdctl") // the witness
	}
	s := harness.NewScript(io.Discard)
	if err := s.Run(func() {
		harness.RequireRoot(s, cmds...)
		harness.Binary(s)
	}); err != nil {
		return err.Error()
	}
	return ""
}
