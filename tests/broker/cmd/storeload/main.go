// Command storeload measures a real store that makes every write durable
// before it answers — ActiveMQ (KahaDB, journal synced on every write) or
// Redis (appendfsync always) — on whatever filesystem holds its data
// directory: it starts the store there, drives it with producers that keep
// a fixed number of writes in flight, and prints what each load achieved
// as JSON lines. make bench's broker suite runs it on ext4 over each
// target.
//
//	storeload activemq|redis --data DIR --work DIR [flags]
//
// A load is NAME=CONNSxDEPTH: CONNS connections, each with DEPTH writes in
// flight (a persistent message awaiting its receipt; a SET awaiting its
// reply). Each runs for --warmup, not measured, then --duration; a write
// counts if its answer came within the measured time, and its latency is
// from just before its frame was written to just after its answer was read.
//
// Output, one object per line: per load {"kind":"load", "store", "load",
// "conns", "depth", "msgs", "seconds", "msgs_per_s", "lat_mean_us",
// "lat_p50_us", "lat_p99_us", "lat_max_us", "server_cpu_s"} (the last: the
// CPU time of the --cpu-pids processes over the measured time), and once
// {"kind":"store", "pid", "start_s", "peak_rss_kib"} for the store's
// process.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line's.
type options struct {
	store    string
	data     string
	work     string
	loads    []load
	warmup   time.Duration
	duration time.Duration
	size     int
	redis    string
	heap     string
	cpuPids  []int
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	if len(args) == 0 || (args[0] != "activemq" && args[0] != "redis") {
		return o, errors.New("the first argument is the store: activemq or redis")
	}
	o.store = args[0]
	fs := flag.NewFlagSet("storeload "+o.store, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.data, "data", "", "the store's data directory (on the filesystem measured)")
	fs.StringVar(&o.work, "work", "", "logs and generated configuration (not on it)")
	spec := fs.String("loads", "latency=1x1,window=1x50", "loads, NAME=CONNSxDEPTH, comma-separated, run in this order")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "run time of each load before measuring")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each load")
	fs.IntVar(&o.size, "size", 1024, "message (value) size in bytes")
	fs.StringVar(&o.redis, "redis-server", "redis-server", "the redis-server binary")
	fs.StringVar(&o.heap, "heap", "", "ActiveMQ's -Xmx (default: the broker package's)")
	pids := fs.String("cpu-pids", "", "processes (comma-separated pids) whose CPU time over each load's measured time is reported (the servers under the filesystem)")
	if err := fs.Parse(args[1:]); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.data == "" || o.work == "" {
		return o, errors.New("--data and --work are required")
	}
	if o.duration <= 0 || o.warmup < 0 || o.size < 32 || o.size > 1<<20 {
		return o, errors.New("--duration must be positive, --warmup not negative, --size between 32 and 1 MiB")
	}
	var err error
	if o.loads, err = parseLoads(*spec); err != nil {
		return o, err
	}
	for _, p := range strings.Split(*pids, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("--cpu-pids: %q is not a pid", p)
		}
		o.cpuPids = append(o.cpuPids, n)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "storeload: %v\n", err)
		return 2
	}
	var st store
	switch o.store {
	case "activemq":
		st, err = startActiveMQ(ctx, o)
	case "redis":
		st, err = startRedis(ctx, o)
	}
	if err != nil {
		fmt.Fprintf(stderr, "storeload: starting %s: %v\n", o.store, err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	failed := false
	for _, l := range o.loads {
		res, err := l.run(ctx, st, o)
		if err != nil {
			fmt.Fprintf(stderr, "storeload: %s load %s: %v\n", o.store, l.name, err)
			failed = true
			break
		}
		enc.Encode(res)
	}
	enc.Encode(map[string]any{
		"kind": "store", "store": o.store, "pid": st.pid(), "start_s": st.started().Seconds(),
		"peak_rss_kib": peakRSS(st.pid()),
	})
	if err := st.stop(); err != nil {
		fmt.Fprintf(stderr, "storeload: stopping %s: %v\n", o.store, err)
		failed = true
	}
	if failed {
		return 1
	}
	return 0
}

// store is a running store.
type store interface {
	// dial opens a connection for a load's producer.
	dial(ctx context.Context) (pipe, error)
	pid() int
	started() time.Duration
	stop() error
}

// pipe is one connection that takes writes and answers them in order.
type pipe interface {
	// send writes one durable write (the n-th of the load, into
	// destination dst) and returns what await takes, without waiting.
	send(dst string, n int) (string, error)
	// await waits for the answer to a send, in the order of the sends.
	await(token string) error
	close() error
}

// cpuSeconds is the user and system time the processes used so far, or
// -1 if one of them cannot be read.
func cpuSeconds(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return -1
		}
		// The command name may hold spaces: the fields after it count
		// from the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			return -1
		}
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		s, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return -1
		}
		ticks += u + s
	}
	return float64(ticks) / clkTck
}

// clkTck is USER_HZ, which is 100 on every Linux this runs on.
const clkTck = 100

// peakRSS is VmHWM of a process in KiB, or 0 if unknown.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kib int64
		if n, _ := fmt.Sscanf(line, "VmHWM: %d kB", &kib); n == 1 {
			return kib
		}
	}
	return 0
}
