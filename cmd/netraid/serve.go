package main

import (
	"context"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/node"
)

func init() {
	register(command{name: "serve", summary: "run the volume: assemble the disks, export over NBD, mirror to the peer", run: runServe})
}

func runServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve", "[FLAGS] DISK...", `
Assemble the volume from its member disks (in any order: the superblocks
say which is which) and run it until SIGTERM or SIGINT, which drain the
requests in flight and flush.

Without --peer the node is standalone: it exports the volume over NBD at
once. With --peer and --listen-peer it is one of a mirrored pair: run the
same command on both machines, each naming the other. Both start as
secondary; 'netraid promote' on one makes it the primary, which exports
the volume and mirrors every write to the other before answering it.

With --tls-dir, NBD clients may start TLS (--tls-required: must) and
must present a client certificate of the volume's CA ('netraid certs
client'); the replication link runs only over TLS, each node checking
that the other's certificate is a node's of the same volume.`)
	listen := fs.String("listen", "127.0.0.1:10809", "NBD export address: HOST:PORT, or a unix socket path")
	export := fs.String("export", "", "NBD export name (default: the volume name)")
	readOnly := fs.Bool("read-only", false, "export the volume read-only")
	control := fs.String("control", controlDefault(), "control socket for the admin commands (env NETRAID_CONTROL)")
	listenPeer := fs.String("listen-peer", "", "address where this node accepts its primary's replication link, HOST:PORT")
	peer := fs.String("peer", "", "the other node's --listen-peer address, HOST:PORT")
	primary := fs.Bool("primary", false, "promote at start (as 'netraid promote' would, with the same checks)")
	timeout := fs.Duration("peer-timeout", 5*time.Second, "a peer request not answered within this fails the link")
	reconnect := fs.Duration("reconnect-interval", time.Second, "a primary without its secondary dials it again after this (a secondary that starts tells its primary at once)")
	diskTimeout := fs.Duration("disk-timeout", 10*time.Second, "a local disk I/O not done within this fails the local copy (0: never)")
	rate := fs.String("resync-rate", "0", "resync rate limit per second, e.g. 200MB; 0 = no limit")
	adaptive := fs.Bool("resync-adaptive", true, "slow the resync down while the volume is busy")
	debug := fs.Bool("debug", false, "log every request")
	faults := fs.Bool("fault-injection", false, "let 'netraid disk inject-error' fail a local disk (tests and drills only)")
	tlsDir := fs.String("tls-dir", "", "this node's certificates ('netraid certs issue'): TLS on the export, and required on the replication link")
	tlsRequired := fs.Bool("tls-required", false, "refuse NBD clients that do not start TLS (needs --tls-dir)")
	readahead := fs.String("readahead", "16MiB", "read this far ahead of a sequential reader of the export (0: off)")
	maxConns := fs.Int("max-connections", 256, "most NBD clients attached at once (as many more may be in their handshake); a new one displaces the one idle longest")
	memBudget := fs.String("memory-budget", "512MiB", "most memory the export's request and reply buffers take, all clients together; beyond it requests wait")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give the volume's member DISKs")
	}
	if (*peer == "") != (*listenPeer == "") {
		return usagef("--peer and --listen-peer go together: each node names the other's address and its own")
	}
	if *tlsRequired && *tlsDir == "" {
		return usagef("--tls-required needs --tls-dir: make one with 'netraid certs issue'")
	}
	if *reconnect <= 0 {
		return usagef("--reconnect-interval must be positive")
	}
	if *maxConns < 1 {
		return usagef("--max-connections must be at least 1")
	}
	r, err := humanize.ParseBytes(*rate)
	if err != nil {
		return usagef("bad --resync-rate %q: %v", *rate, err)
	}
	mb, err := humanize.ParseBytes(*memBudget)
	if least := nbd.MinMemoryBudget(nbd.ServerOptions{MaxConnections: *maxConns}); err != nil || mb < uint64(least) {
		return usagef("bad --memory-budget %q: a size of at least %s for --max-connections %d, such as 512MiB",
			*memBudget, humanize.IBytes(uint64(least)), *maxConns)
	}
	ra, err := humanize.ParseBytes(*readahead)
	if err != nil || ra > 1<<30 {
		return usagef("bad --readahead %q: a size up to 1GiB, such as 16MiB, or 0 for off", *readahead)
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	cfg := node.Config{
		Disks:             fs.Args(),
		Listen:            *listen,
		Export:            *export,
		ReadOnly:          *readOnly,
		Control:           *control,
		ListenPeer:        *listenPeer,
		Peer:              *peer,
		Primary:           *primary,
		PeerTimeout:       *timeout,
		ReconnectInterval: *reconnect,
		DiskTimeout:       *diskTimeout,
		FaultInjection:    *faults,
		ResyncRate:        int64(r),
		ResyncAdaptive:    *adaptive,
		TLSDir:            *tlsDir,
		TLSRequired:       *tlsRequired,
		MaxConnections:    *maxConns,
		MemoryBudget:      int64(mb),
		Readahead:         int64(ra),
		Logger:            log,
	}
	setProcs()
	if addr := os.Getenv("NETRAID_PPROF"); addr != "" {
		// Profiling for developers: net/http/pprof on an address of
		// their choosing (keep it on loopback).
		go http.ListenAndServe(addr, nil)
	}
	return node.Run(ctx, cfg)
}

// setProcs picks GOMAXPROCS for the daemon unless the environment sets
// it.
//
// With native AIO (the default where the kernel has it) no thread waits in
// the kernel for a disk, and the daemon runs with one P per two cores. The
// rest of the machine's cores serve its clients (the filesystem and the
// broker on the same machine, or fio in the bench) and the kernel's I/O
// and network work; a P with nothing to run costs a thread woken to look
// for work and put back to sleep on every hand-off between goroutines. On
// the 2-core test machine, 1 P against 2 (interleaved A/B, fio nbd
// engine): 4 KiB random reads at QD1 85-93 against 126-141 us of CPU per
// request and 6.8-7.5k against 5.6-6.1k IOPS; at QD32 18 against 22.5 us;
// random writes 22 against 24-27 us; a mirrored pair's random writes
// 22.9-23.2k against 19.6-20.4k IOPS.
//
// Without AIO, each request blocks its thread in an O_DIRECT pread or
// pwrite; the runtime hands that thread's P to another only after sysmon
// notices (tens of microseconds or more), so with one P per core a 2-core
// machine keeps about two disk requests in flight however deep the
// client's queue. More Ps than cores let the blocked calls overlap, but
// too many cost CPU in idle Ps looking for work: on 2 cores, 8 Ps took
// 5-25% less CPU per request than 32, with as many or more IOPS, and 4
// lost random IOPS.
func setProcs() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if blockdev.AIOAvailable() == nil {
		runtime.GOMAXPROCS(max(runtime.NumCPU()/2, 1))
		return
	}
	runtime.GOMAXPROCS(max(runtime.NumCPU()*4, 8))
}
