// Command failovertime measures netraid's automatic failover as a user
// of a broker sees it (make bench's suite "failover"): the time from the
// primary machine's death to the first message acknowledged by the
// broker on the survivor, with netraid's default settings.
//
//	failovertime [--rounds N] [--members N] [--disk-size BYTES]
//
// It runs a pair of machines (network namespaces, loop-device disks), a
// witness of etcd members in namespaces of their own, and netraid on
// both with --etcd and the promoter of package promoter: the primary
// mounts the volume and runs ActiveMQ. Each round a producer sends
// persistent messages to the primary's broker; the primary's machine dies
// (off the network, then netraid, the broker and nbdfuse killed); nobody
// promotes: a producer reconnecting to the survivor's broker times its
// first acknowledged message. The queue is drained there (the messages
// lost are counted), the dead machine comes back as the secondary, and
// once it is in sync the next round kills the other machine.
//
// Output, one JSON object per round on standard output: {"round",
// "failover_s" (death to first acknowledgement), "promoted_s" and
// "mounted_s" (death to the survivor's status saying primary, and to the
// volume mounted there: polled every 50 ms), "node_failover_s" (the
// survivor's own figure: its primary found gone to its on-promote
// commands done), "acked", "received", "lost" (always 0: a round that
// lost an acknowledged message fails). The harness's log goes to
// standard error. Exit 0 when every round ran, 1 otherwise, 2 on bad
// usage.
//
// Invariants: every wait is bounded, the rounds are at most 10, and
// everything made (namespaces, disks, processes, mounts) is torn down at
// the end, also on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
	"github.com/netraid/netraid/tests/promoter"
)

// Bounds of a round's waits.
const (
	syncTimeout     = 5 * time.Minute
	brokerTimeout   = 3 * time.Minute
	failoverTimeout = 3 * time.Minute
	queue           = "netraid.failover"
	msgSize         = 1024
	warmMessages    = 200 // acknowledged before the primary dies
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("failovertime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rounds := fs.Int("rounds", 3, "failovers to time (1-10)")
	members := fs.Int("members", 3, "etcd members of the witness")
	diskSize := fs.Int64("disk-size", 192<<20, "each node's two loop-device disks, bytes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *rounds < 1 || *rounds > 10 || *members < 1 || *members > 9 || *diskSize < 64<<20 || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "failovertime: --rounds 1-10, --members 1-9, --disk-size at least 64 MiB, no arguments")
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "failovertime: needs root (network namespaces, loop devices, mounts)")
		return 1
	}
	if err := broker.Available(); err != nil {
		fmt.Fprintf(stderr, "failovertime: %v\n", err)
		return 1
	}
	s := harness.NewScript(stderr)
	b := &bench{s: s, ctx: ctx, out: json.NewEncoder(stdout)}
	done := make(chan error, 1)
	go func() { done <- s.Run(func() { b.run(*rounds, *members, *diskSize) }) }()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintf(stderr, "failovertime: %v\n", err)
			return 1
		}
		return 0
	case <-ctx.Done():
		s.Interrupt()
		fmt.Fprintln(stderr, "failovertime: interrupted; torn down")
		return 130
	}
}

// bench is the pair under measurement.
type bench struct {
	s   *harness.Script
	ctx context.Context
	out *json.Encoder
	p   *harness.Pair
	w   *harness.Witness
	svc map[*harness.Node]*promoter.Services
}

// result is one round's figures.
type result struct {
	Round         int     `json:"round"`
	FailoverS     float64 `json:"failover_s"`
	PromotedS     float64 `json:"promoted_s"` // death to the survivor's status saying primary
	MountedS      float64 `json:"mounted_s"`  // death to the volume mounted on the survivor
	NodeFailoverS float64 `json:"node_failover_s"`
	Acked         int     `json:"acked"`
	Received      int     `json:"received"`
	Lost          int     `json:"lost"`
}

func (b *bench) run(rounds, members int, diskSize int64) {
	s := b.s
	b.p = harness.NewPair(s, harness.PairOptions{NoStart: true, DiskSize: diskSize})
	b.w = harness.NewWitness(s, harness.WitnessOptions{Members: members}, b.p.MA, b.p.MB)
	b.svc = map[*harness.Node]*promoter.Services{}
	for _, n := range []*harness.Node{b.p.A, b.p.B} {
		n.Args = defaults(append(n.Args, "--etcd", b.w.Endpoints(n.Machine)))
		b.svc[n] = promoter.Setup(s, n, b.p.File(n.Name+"-services"))
	}
	b.p.Start()
	prim := b.inSync()
	s.Logf("failovertime: %s is primary; its broker answers after %v", prim.Name, b.svc[prim].WaitBroker(brokerTimeout))
	for r := 1; r <= rounds; r++ {
		if b.ctx.Err() != nil {
			s.Fatal("interrupted")
		}
		sec := b.other(prim)
		res := b.round(r, b.svc[prim], b.svc[sec])
		if err := b.out.Encode(res); err != nil {
			s.Fatal(err)
		}
		// The dead machine comes back as the secondary.
		prim.Machine.LinkUp(s)
		b.w.HealNode(prim.Machine)
		prim.Start()
		harness.WaitInSync(s, sec, syncTimeout)
		prim = sec
	}
}

// defaults drops the harness's --peer-timeout from a node's arguments:
// the failover is timed with netraid's defaults.
func defaults(args []string) []string {
	if i := slices.Index(args, "--peer-timeout"); i >= 0 && i+1 < len(args) {
		return slices.Delete(slices.Clone(args), i, i+2)
	}
	return args
}

// round kills the primary's machine under a producer and times the
// survivor's broker's first acknowledgement.
func (b *bench) round(r int, ps, ss *promoter.Services) result {
	s := b.s
	prod, err := broker.StartProducer(b.ctx, broker.ProducerOptions{
		Endpoint: ps.Broker, Queue: queue, First: r * 1_000_000, Count: 100_000, Duration: 2 * time.Minute, Size: msgSize, Conns: 1,
	})
	if err != nil {
		s.Fatal(err)
	}
	harness.WaitFor(s, 2*time.Minute, "messages acknowledged before the failover", func() bool {
		return len(prod.Acked()) >= warmMessages
	})
	start := ps.Die(b.w)
	ctx, cancel := context.WithTimeout(b.ctx, failoverTimeout)
	defer cancel()
	wctx, stopWatch := context.WithCancel(ctx)
	seen := watch(wctx, ss)
	rep := prod.Wait()
	seq := r*1_000_000 + 500_000
	at, err := promoter.FirstAck(ctx, ss.Broker, queue, seq, msgSize)
	stopWatch()
	m := <-seen
	if err != nil {
		st, _ := ss.Node.Status()
		s.Fatalf("round %d: %v; %s's failover status: %+v", r, err, ss.Node.Name, st.Failover)
	}
	res := result{Round: r, FailoverS: at.Sub(start).Seconds(), PromotedS: since(m.promoted, start), MountedS: since(m.mounted, start), Acked: len(rep.Acked) + 1}
	if st, err := ss.Node.Status(); err == nil && st.Failover != nil {
		res.NodeFailoverS = st.Failover.FailoverSeconds
	}
	got, err := broker.DrainAll(ctx, ss.Broker, queue, 3*time.Second)
	if err != nil {
		s.Fatalf("round %d: draining on %s: %v", r, ss.Node.Name, err)
	}
	res.Received = len(got)
	if lost := broker.Lost(append(rep.Acked, seq), got); len(lost) > 0 {
		s.Fatalf("round %d: %d acknowledged messages lost on %s, first %v", r, len(lost), ss.Node.Name, lost[:min(len(lost), 20)])
	}
	s.Logf("failovertime: round %d: %s died; %s primary after %.2f s, mounted after %.2f s, first message acknowledged after %.2f s (it says it promoted %.2f s after it found its primary gone); %d acknowledged, %d lost",
		r, ps.Node.Name, ss.Node.Name, res.PromotedS, res.MountedS, res.FailoverS, res.NodeFailoverS, res.Acked, res.Lost)
	return res
}

// seen is when the survivor was first seen primary, and its volume
// mounted.
type seen struct{ promoted, mounted time.Time }

// watch polls the survivor every 50 ms until it has seen both, or ctx
// ends, and then sends what it saw.
func watch(ctx context.Context, ss *promoter.Services) <-chan seen {
	ch := make(chan seen, 1)
	go func() {
		var m seen
		c := node.NewClient(ss.Node.Control)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for m.promoted.IsZero() || m.mounted.IsZero() {
			select {
			case <-ctx.Done():
				ch <- m
				return
			case <-t.C:
			}
			if m.promoted.IsZero() {
				if st, err := c.Status(ctx); err == nil && st.Role == "primary" {
					m.promoted = time.Now()
				}
			}
			if m.mounted.IsZero() && mounted(ss.Mount) {
				m.mounted = time.Now()
			}
		}
		ch <- m
	}()
	return ch
}

// mounted reports whether something is mounted on dir, from the mount
// table.
func mounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// since is the seconds from start to t, or 0 if t is zero.
func since(t, start time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return t.Sub(start).Seconds()
}

// inSync waits until a node is primary with its peer in sync, and
// returns it.
func (b *bench) inSync() *harness.Node {
	var prim *harness.Node
	harness.WaitFor(b.s, syncTimeout, "a primary in sync", func() bool {
		for _, n := range []*harness.Node{b.p.A, b.p.B} {
			if st, err := n.Status(); err == nil && harness.InSync(st) {
				prim = n
				return true
			}
		}
		return false
	})
	return prim
}

func (b *bench) other(n *harness.Node) *harness.Node {
	if n == b.p.A {
		return b.p.B
	}
	return b.p.A
}
