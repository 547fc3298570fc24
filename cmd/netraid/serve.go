package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/internal/metrics"
	"github.com/netraid/netraid/internal/version"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/witness"
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

With --tls-dir, NBD clients must start TLS (--tls-optional lets plaintext
clients in too) and present a client certificate of the volume's CA
('netraid certs client'); the replication link runs only over TLS, each
node checking that the other's certificate is a node's of the same
volume. A certificate listed in the directory's ca-crl.pem ('netraid
certs revoke') is refused at once, and its open connections are closed.

With --metrics ADDR the daemon serves Prometheus metrics at /metrics
(README.md lists them; dist/grafana/netraid.json is a dashboard).

With --config FILE the settings come from a TOML file, one per node
(the service unit reads /etc/netraid/netraid.toml); flags given on the
command line override it. Its keys are the flags' names, with the
values the flags take: the daemon's at the top of the file, the
volume's, with its disks, in a table named after the volume:

  control = "/run/netraid/netraid.sock"

  [volume.vol]
  disks = ["/dev/sdb", "/dev/sdc"]
  listen-peer = "10.0.0.1:7789"
  peer = "10.0.0.2:7789"
  resync-rate = "200MB"

A wrong key or value is refused with the file's line and what was
expected. --print-config prints the settings in effect as such a file.

Under systemd (Type=notify) the daemon reports READY=1 once it serves
and, with WatchdogSec=, pings the watchdog after each status check that
its control socket answers.`)
	fs.String("config", "", "read the settings from this TOML file; flags given here override it")
	printConfig := fs.Bool("print-config", false, "print the settings in effect (file and flags) as a config file, and exit")
	listen := fs.String("listen", "127.0.0.1:10809", "NBD export address: HOST:PORT, or a unix socket path")
	export := fs.String("export", "", "NBD export name (default: the volume name)")
	readOnly := fs.Bool("read-only", false, "export the volume read-only")
	control := fs.String("control", controlDefault(), "control socket for the admin commands (env NETRAID_CONTROL)")
	listenPeer := fs.String("listen-peer", "", "address where this node accepts its primary's replication link, HOST:PORT")
	peer := fs.String("peer", "", "the other node's --listen-peer address, HOST:PORT")
	primary := fs.Bool("primary", false, "promote at start (as 'netraid promote' would, with the same checks)")
	timeout := fs.Duration("peer-timeout", 5*time.Second, "a peer request not answered within this fails the link")
	reconnect := fs.Duration("reconnect-interval", time.Second, "a primary without its secondary dials it again after this (a secondary that starts tells its primary at once)")
	pingInterval := fs.Duration("ping-interval", node.DefaultPingInterval, "a primary pings its secondary this often")
	pingTimeout := fs.Duration("ping-timeout", node.DefaultPingTimeout, "a ping not answered within this fails the link; a link silent for --ping-interval plus this is dead on both sides, so the secondary accepts 'promote' soon after its primary's machine dies")
	diskTimeout := fs.Duration("disk-timeout", 10*time.Second, "a local disk I/O not done within this fails the local copy (0: never)")
	rate := sizeFlag(fs, "resync-rate", 0, 0, "resync rate limit per second, e.g. 200MB; 0 = no limit")
	adaptive := fs.Bool("resync-adaptive", true, "slow the resync down while the volume is busy")
	debug := fs.Bool("debug", false, "log every request")
	faults := fs.Bool("fault-injection", false, "let 'netraid disk inject-error' fail a local disk (tests and drills only)")
	tlsDir := fs.String("tls-dir", "", "this node's certificates ('netraid certs issue'): TLS on the export, and required on the replication link")
	tlsOptional := fs.Bool("tls-optional", false, "with --tls-dir, also let NBD clients in without TLS (anyone who reaches --listen may then read and write the volume)")
	tlsNodeClients := fs.Bool("tls-allow-node-clients", false, "let a node certificate of the volume open the export, as a client certificate does")
	tlsRequired := fs.Bool("tls-required", false, "")
	fs.MarkDeprecated("tls-required", "TLS is required by default with --tls-dir; the flag changes nothing")
	readahead := sizeFlag(fs, "readahead", 16<<20, 1<<30, "read this far ahead of a sequential reader of the export (0: off)")
	maxConns := fs.Int("max-connections", 256, "most NBD clients attached at once (as many more may be in their handshake); a new one displaces the one idle longest")
	memBudget := sizeFlag(fs, "memory-budget", 512<<20, 0, "most memory the export's request and reply buffers take, all clients together; beyond it requests wait")
	peerSecret := fs.String("peer-secret", "", "a file holding the secret both nodes share ('netraid secret new FILE'): each end of the replication link proves it holds it (without --tls-dir)")
	insecureLink := fs.Bool("insecure-link", false, "run the replication link with neither --tls-dir nor --peer-secret: anyone who reaches --listen-peer can then read the volume and replace the primary")
	name := fs.String("name", "", "this node's name, in the witness and the replication hello (default: the host name)")
	peerName := fs.String("peer-name", "", "the other node's --name (needed with --etcd)")
	etcd := fs.StringSlice("etcd", nil, "etcd endpoints (comma-separated) of the volume's witness: failover becomes automatic and fenced")
	etcdCA := fs.String("etcd-ca", "", "CA certificate of etcd's client TLS")
	etcdCert := fs.String("etcd-cert", "", "this node's client certificate for etcd")
	etcdKey := fs.String("etcd-key", "", "the key of --etcd-cert")
	leaseTTL := fs.Duration("lease-ttl", witness.DefaultTTL, "the lease of this node's session in etcd: a dead or cut-off primary loses the election this long after its last renewal; with the default pings the survivor is primary about 3 s after its primary dies, before its on-promote commands")
	onNoQuorum := fs.String("on-no-quorum", node.NoQuorumSuspend, "what a primary that lost its peer does with the writes the peer missed while etcd cannot record the peer outdated: suspend (hold them) or io-error (fail them)")
	onPromote := fs.StringArray("on-promote", nil, "a shell command run after this node is promoted (repeatable, run in order): attach the export, mount, start the service")
	onDemote := fs.StringArray("on-demote", nil, "a shell command run before this node is demoted (repeatable, run in order): stop the service, unmount, detach")
	commandTimeout := fs.Duration("command-timeout", 2*time.Minute, "the longest an --on-promote or --on-demote command may run")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at /metrics on this address: HOST:PORT (such as 127.0.0.1:9942) or a unix socket path (off if not given)")
	file, err := applyConfig(fs, args, serveFile)
	if err != nil {
		return err
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	disks := fs.Args()
	if len(disks) == 0 && file != nil {
		disks = file.Args
	}
	if len(disks) == 0 {
		return usagef("give the volume's member DISKs, or a --config file with disks in its [volume.NAME] table")
	}
	if err := checkVolumeName(file, disks); err != nil {
		return err
	}
	if *printConfig {
		return writeConfig(e.stdout, fs, serveFile, file, disks)
	}
	if (*peer == "") != (*listenPeer == "") {
		return usagef("--peer and --listen-peer go together: each node names the other's address and its own")
	}
	if *tlsRequired && *tlsDir == "" {
		return usagef("--tls-required needs --tls-dir: make one with 'netraid certs issue'")
	}
	if *pingInterval <= 0 || *pingTimeout <= 0 {
		return usagef("--ping-interval and --ping-timeout must be positive")
	}
	if *tlsRequired && *tlsOptional {
		return usagef("--tls-required and --tls-optional contradict each other")
	}
	if (*tlsOptional || *tlsNodeClients) && *tlsDir == "" {
		return usagef("--tls-optional and --tls-allow-node-clients need --tls-dir: make one with 'netraid certs issue'")
	}
	if *reconnect <= 0 {
		return usagef("--reconnect-interval must be positive")
	}
	if len(*etcd) > 0 && *peerName == "" && *peer != "" {
		return usagef("--etcd needs --peer-name: the witness records each node's copy by name")
	}
	if *onNoQuorum != node.NoQuorumSuspend && *onNoQuorum != node.NoQuorumIOError {
		return usagef("--on-no-quorum is %s or %s", node.NoQuorumSuspend, node.NoQuorumIOError)
	}
	if *leaseTTL < time.Second {
		return usagef("--lease-ttl must be at least 1s (etcd counts leases in seconds)")
	}
	etcdTLS, err := etcdClientTLS(*etcdCA, *etcdCert, *etcdKey)
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		if err := metrics.CheckAddr(*metricsAddr); err != nil {
			return usagef("--metrics: %v", err)
		}
	}
	if *maxConns < 1 {
		return usagef("--max-connections must be at least 1")
	}
	if least := nbd.MinMemoryBudget(nbd.ServerOptions{MaxConnections: *maxConns}); *memBudget < least {
		return usagef("--memory-budget %s is too small: at least %s for --max-connections %d, such as 512MiB",
			humanize.IBytes(uint64(*memBudget)), humanize.IBytes(uint64(least)), *maxConns)
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	if file != nil {
		log.Info("netraid starting", "version", version.String(), "config", file.Path)
	} else {
		log.Info("netraid starting", "version", version.String())
	}
	cfg := node.Config{
		Disks:             disks,
		Listen:            *listen,
		Export:            *export,
		ReadOnly:          *readOnly,
		Control:           *control,
		ListenPeer:        *listenPeer,
		Peer:              *peer,
		Primary:           *primary,
		PeerTimeout:       *timeout,
		ReconnectInterval: *reconnect,
		PingInterval:      *pingInterval,
		PingTimeout:       *pingTimeout,
		DiskTimeout:       *diskTimeout,
		ResyncRate:        *rate,
		ResyncAdaptive:    *adaptive,
		TLSDir:            *tlsDir,
		TLSOptional:       *tlsOptional,
		TLSNodeClients:    *tlsNodeClients,
		MaxConnections:    *maxConns,
		MemoryBudget:      *memBudget,
		Readahead:         *readahead,
		Logger:            log,
		Version:           version.String(),
		PeerSecret:        *peerSecret,
		InsecureLink:      *insecureLink,
		Name:              *name,
		PeerName:          *peerName,
		Etcd:              *etcd,
		EtcdTLS:           etcdTLS,
		LeaseTTL:          *leaseTTL,
		OnNoQuorum:        *onNoQuorum,
		OnPromote:         *onPromote,
		OnDemote:          *onDemote,
		CommandTimeout:    *commandTimeout,
	}
	if *faults {
		cfg.Faults = fault.NewInjector()
	}
	setProcs()
	if addr := os.Getenv("NETRAID_PPROF"); addr != "" {
		// Profiling for developers: net/http/pprof on an address of
		// their choosing (keep it on loopback).
		go http.ListenAndServe(addr, nil)
	}
	svc := startService(ctx, log, cfg.Control)
	defer svc.stop()
	cfg.OnReady = svc.ready
	return runNode(ctx, cfg, *metricsAddr, log)
}

// etcdClientTLS is the client TLS configuration for etcd, nil if none is
// given.
func etcdClientTLS(ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, usagef("--etcd-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, usagef("--etcd-ca %s holds no PEM certificate", ca)
		}
		cfg.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, usagef("--etcd-cert and --etcd-key go together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, usagef("--etcd-cert/--etcd-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
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
