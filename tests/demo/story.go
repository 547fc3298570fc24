package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
	"github.com/netraid/netraid/tests/promoter"
)

// options shape the story.
type options struct {
	DiskSize int64 // each loop device
	Messages int   // acknowledged before the disk fails; half as many again before a dies
	MsgSize  int   // bytes per message body
	Verbose  bool  // the broker's and the harness's logs on standard output too
}

// Bounds of the story's waits.
const (
	syncTimeout     = 2 * time.Minute
	ackTimeout      = 2 * time.Minute
	brokerTimeout   = 3 * time.Minute // the JVM's start on a busy machine
	failoverTimeout = 3 * time.Minute
	peerPort        = 7789
	queue           = "netraid.demo"
	volume          = "demo"
)

// story is the demo's state as it runs.
type story struct {
	ctx    context.Context // ends when a signal interrupts the story
	s      *harness.Script
	a      *account
	o      options
	dir    string
	ma, mb *harness.Machine
	w      *harness.Witness
	na, nb *harness.Node
	sa, sb *promoter.Services
	atFail int // messages acknowledged when the disk failed (-1: it did not)
	c      counts
}

// run tells the whole story; a step that cannot go on aborts through s.
func (st *story) run() {
	st.machines()
	st.netraid()
	st.firstPrimary()
	prod := st.send(st.sa.Broker)
	st.failDisk(prod)
	rep, died := st.killA(prod)
	rep = st.takeOver(rep, died)
	st.consume(rep)
	st.shutDown()
}

func (st *story) machines() {
	st.a.step("Two machines, a and b, with two disks each, and a witness")
	dir, err := os.MkdirTemp("", "netraid-demo-")
	if err != nil {
		st.s.Fatal(err)
	}
	st.dir = dir
	st.s.Cleanup(func() { os.RemoveAll(dir) })
	st.s.Cleanup(st.keepLogs)
	st.ma, st.mb = harness.MachinePair(st.s)
	st.a.say("network namespaces %s (a, %s) and %s (b, %s), joined by a veth link", st.ma.Name, st.ma.Addr, st.mb.Name, st.mb.Addr)
	st.w = harness.NewWitness(st.s, harness.WitnessOptions{Members: 1}, st.ma, st.mb)
	st.a.say("the witness: etcd at %s, in a namespace of its own that both machines reach apart from their link", st.w.Endpoints(st.ma))
	st.a.say("(one member here; in production three, on three other machines)")
	st.na = st.node("a", st.ma, st.mb)
	st.nb = st.node("b", st.mb, st.ma)
}

// node makes m's two disks and describes its netraid daemon, with the
// witness and the promoter's commands.
func (st *story) node(name string, m, peer *harness.Machine) *harness.Node {
	var disks []string
	for i := range 2 {
		d, _ := harness.LoopDevice(st.s, st.dir, fmt.Sprintf("%s-d%d", name, i), st.o.DiskSize)
		disks = append(disks, d)
	}
	st.a.say("disks of %s: %s (%s each: loop devices over sparse files in %s)", name, strings.Join(disks, " "), humanize.IBytes(uint64(st.o.DiskSize)), st.dir)
	other := map[string]string{"a": "b", "b": "a"}[name]
	n := harness.NewNode(st.s, name, st.dir, m, disks, append([]string{
		"--listen-peer", fmt.Sprintf("%s:%d", m.Addr, peerPort),
		"--peer", fmt.Sprintf("%s:%d", peer.Addr, peerPort),
		"--peer-timeout", "2s", "--etcd", st.w.Endpoints(m)}, harness.LinkArgs(st.s, st.dir, name, other)...)...)
	svc := promoter.Setup(st.s, n, filepath.Join(st.dir, name+"-services"))
	if name == "a" {
		st.sa = svc
	} else {
		st.sb = svc
	}
	return n
}

func (st *story) netraid() {
	st.a.step("netraid on both machines: failover through the witness, and a promoter")
	for _, n := range []*harness.Node{st.na, st.nb} {
		st.a.netraid(st.s, n, append([]string{"create", "--name", volume}, n.Disks...)...)
	}
	st.a.say("each node runs with --etcd and the promoter's commands: on promotion, netraid-mount attaches the")
	st.a.say("export (nbdfuse, a loop device), runs fsck -p (mkfs only the first time) and mounts it, then ActiveMQ")
	st.a.say("starts with its store there; before demotion the broker stops and the volume is unmounted")
	st.start(st.na)
}

// start starts node n and shows its command line.
func (st *story) start(n *harness.Node) {
	args := append([]string{"serve", "--control", n.Control, "--listen", n.Socket}, n.Args...)
	n.Start()
	st.a.command(n.Name, "netraid "+promoter.ShellJoin(append(args, n.Disks...))+" &", "")
}

func (st *story) firstPrimary() {
	st.a.step("a finds no primary and promotes itself; its promoter mounts the volume and starts ActiveMQ")
	s := st.na.WaitStatus(syncTimeout, "a to promote itself", func(s node.Status) bool { return s.Role == "primary" })
	st.a.say("a won the volume's election in etcd (fencing token %d) and is primary", s.Failover.Token)
	took := st.sa.WaitBroker(brokerTimeout)
	st.a.say("mounted %s on %s (ext4 made: a new volume); ActiveMQ answers on %s inside a (%s)",
		st.sa.Mounted(), st.sa.Mount, st.sa.Broker.Addr, round(took))
	st.a.say("Debian's activemq, its configuration untouched but for the data directory and a STOMP connector")
	st.start(st.nb)
	s = harness.WaitInSync(st.s, st.na, syncTimeout)
	st.a.say("b joins as secondary and is in sync: a %s volume striped over a's two disks, every write also on b's", humanize.IBytes(uint64(s.Size)))
}

func (st *story) send(ep broker.Endpoint) *broker.Producer {
	st.a.step("Persistent messages, each acknowledged by the broker")
	p, err := broker.StartProducer(context.Background(), broker.ProducerOptions{
		Endpoint: ep, Queue: queue, Count: 10_000_000, Duration: 10 * time.Minute, Size: st.o.MsgSize, Conns: 4,
	})
	if err != nil {
		st.s.Fatal(err)
	}
	st.s.Cleanup(func() { p.Stop() })
	begin := time.Now()
	st.waitAcked(p, st.o.Messages)
	n := len(p.Acked())
	st.a.say("4 producers send to queue %s; %d messages of %d bytes acknowledged (%.0f/s), and they keep sending",
		queue, n, st.o.MsgSize, float64(n)/time.Since(begin).Seconds())
	return p
}

// waitAcked waits until the producers have n messages acknowledged.
func (st *story) waitAcked(p *broker.Producer, n int) {
	harness.WaitFor(st.s, ackTimeout, fmt.Sprintf("%d messages acknowledged", n), func() bool {
		select {
		case <-p.Done():
			r := p.Wait()
			st.s.Fatalf("the producers stopped with %d acknowledged: %v", len(r.Acked), r.Err)
		default:
		}
		return len(p.Acked()) >= n
	})
}

func (st *story) failDisk(p *broker.Producer) {
	st.a.step("A disk of a fails while messages flow")
	disk := st.na.Disks[0]
	out, err := st.na.Command("disk", "fail", disk)
	st.a.command("a", "netraid disk fail "+disk, out)
	if err != nil {
		st.a.failed("netraid disk fail did not fail the disk: %v", firstLine(err.Error()))
		return
	}
	at := len(p.Acked())
	st.na.WaitStatus(30*time.Second, "the local leg failed", func(s node.Status) bool {
		for _, l := range s.Legs {
			if l.Name == "local" {
				return l.State == "failed"
			}
		}
		return false
	})
	st.a.netraid(st.s, st.na, "status")
	st.waitAcked(p, at+st.o.Messages/2)
	st.a.say("the broker keeps going: %d more messages acknowledged since, served through b", len(p.Acked())-at)
	st.atFail = at
}

// keepLogs copies every log of a story that went wrong (the daemons',
// the brokers', nbdfuse's) out of the work directory before it goes.
func (st *story) keepLogs() {
	if st.ctx.Err() != nil || !st.s.Failed() && st.c.lost == 0 && st.c.phantom == 0 && !st.a.anyFailed() {
		return
	}
	for _, n := range []*harness.Node{st.na, st.nb} {
		if n != nil {
			n.Kill()
		}
	}
	keep, err := os.MkdirTemp("", "netraid-demo-logs-")
	if err != nil {
		return
	}
	filepath.WalkDir(st.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() && strings.HasSuffix(path, "/mnt") {
			return filepath.SkipDir // not into the mounted filesystems
		}
		if strings.HasSuffix(path, ".log") {
			rel, _ := filepath.Rel(st.dir, path)
			if b, err := os.ReadFile(path); err == nil {
				os.WriteFile(filepath.Join(keep, strings.ReplaceAll(rel, "/", "-")), b, 0o644)
			}
		}
		return nil
	})
	st.a.kept = keep
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
