package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
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
	syncTimeout = 2 * time.Minute
	ackTimeout  = 2 * time.Minute
	peerPort    = 7789
	queue       = "netraid.demo"
	volume      = "demo"
)

// story is the demo's state as it runs.
type story struct {
	ctx    context.Context // ends when a signal interrupts the story
	s      *harness.Script
	a      *account
	o      options
	dir    string
	ma, mb *harness.Machine
	na, nb *harness.Node
	atFail int // messages acknowledged when the disk failed (-1: it did not)
	c      counts
}

// run tells the whole story; a step that cannot go on aborts through s.
func (st *story) run() {
	st.machines()
	st.netraid()
	st.promote()
	st.a.step("ext4 on the volume, mounted on a")
	mnt := st.mount(st.na, "a-fs", true)
	ba := st.broker(st.ma, mnt, "broker-a")
	prod := st.send(ba)
	st.failDisk(prod)
	rep := st.killA(prod, ba, mnt)
	mntB := st.takeOver()
	bb := st.broker(st.mb, mntB, "broker-b")
	st.consume(bb, rep)
	st.shutDown(bb, mntB)
}

func (st *story) machines() {
	st.a.step("Two machines, a and b, with two disks each")
	dir, err := os.MkdirTemp("", "netraid-demo-")
	if err != nil {
		st.s.Fatal(err)
	}
	st.dir = dir
	st.s.Cleanup(func() { os.RemoveAll(dir) })
	st.s.Cleanup(st.keepLogs)
	st.ma, st.mb = harness.MachinePair(st.s)
	st.a.say("network namespaces %s (a, %s) and %s (b, %s), joined by a veth link", st.ma.Name, st.ma.Addr, st.mb.Name, st.mb.Addr)
	st.na = st.node("a", st.ma, st.mb)
	st.nb = st.node("b", st.mb, st.ma)
}

// node makes m's two disks and describes its netraid daemon.
func (st *story) node(name string, m, peer *harness.Machine) *harness.Node {
	var disks []string
	for i := range 2 {
		d, _ := harness.LoopDevice(st.s, st.dir, fmt.Sprintf("%s-d%d", name, i), st.o.DiskSize)
		disks = append(disks, d)
	}
	st.a.say("disks of %s: %s (%s each: loop devices over sparse files in %s)", name, strings.Join(disks, " "), humanize.IBytes(uint64(st.o.DiskSize)), st.dir)
	other := map[string]string{"a": "b", "b": "a"}[name]
	return harness.NewNode(st.s, name, st.dir, m, disks, append([]string{
		"--listen-peer", fmt.Sprintf("%s:%d", m.Addr, peerPort),
		"--peer", fmt.Sprintf("%s:%d", peer.Addr, peerPort),
		"--peer-timeout", "2s"}, harness.LinkArgs(st.s, st.dir, name, other)...)...)
}

func (st *story) netraid() {
	st.a.step("netraid on both machines")
	for _, n := range []*harness.Node{st.na, st.nb} {
		st.a.netraid(st.s, n, append([]string{"create", "--name", volume}, n.Disks...)...)
	}
	for _, n := range []*harness.Node{st.na, st.nb} {
		args := append([]string{"serve", "--control", n.Control, "--listen", n.Socket}, n.Args...)
		n.Start()
		st.a.command(n.Name, "netraid "+strings.Join(append(args, n.Disks...), " ")+" &", "")
	}
	st.a.say("both start as secondary; the NBD export listens on a unix socket, the replication link on port %d", peerPort)
}

func (st *story) promote() {
	st.a.step("a becomes primary; b mirrors it")
	st.a.netraid(st.s, st.na, "promote")
	s := harness.WaitInSync(st.s, st.na, syncTimeout)
	st.a.say("in sync: a %s volume striped over a's two disks, every write also on b's", humanize.IBytes(uint64(s.Size)))
}

// mount puts ext4 (if mkfs) on n's export and mounts it.
func (st *story) mount(n *harness.Node, name string, mkfs bool) *harness.Mount {
	m := harness.MountNBD(st.s, filepath.Join(st.dir, name), n.URI(volume), mkfs)
	made := ""
	if mkfs {
		made = "mkfs.ext4, "
	}
	st.a.say("nbdfuse presents %s's export as a file, a loop device over it, %smounted at %s", n.Name, made, m.Dir)
	return m
}

// broker starts ActiveMQ in machine m with its store on the mount.
func (st *story) broker(m *harness.Machine, mnt *harness.Mount, name string) *broker.Broker {
	who := "a"
	if m == st.mb {
		who = "b"
	}
	if who == "a" {
		st.a.step("ActiveMQ on a, its KahaDB store on the volume")
	} else {
		st.a.step("ActiveMQ on b, over the same KahaDB store")
	}
	o := broker.Options{DataDir: filepath.Join(mnt.Dir, "activemq"), WorkDir: filepath.Join(st.dir, name), Netns: m.Name}
	if st.o.Verbose {
		o.Log = os.Stdout
	}
	b, err := broker.Start(st.s, o)
	if err != nil {
		st.s.Fatal(err)
	}
	st.a.say("Debian's activemq, its configuration untouched but for the data directory and a STOMP connector")
	st.a.say("store %s (on the volume), logs %s", o.DataDir, b.LogPath())
	st.a.say("listening on %s inside %s's namespace; ready in %s", b.Addr(), who, round(b.StartupTime()))
	return b
}

func (st *story) send(b *broker.Broker) *broker.Producer {
	st.a.step("Persistent messages, each acknowledged by the broker")
	p, err := broker.StartProducer(context.Background(), broker.ProducerOptions{
		Endpoint: b.Endpoint(), Queue: queue, Count: 10_000_000, Duration: 10 * time.Minute, Size: st.o.MsgSize, Conns: 4,
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

func (st *story) killA(p *broker.Producer, b *broker.Broker, mnt *harness.Mount) broker.Report {
	st.a.step("Machine a dies while messages flow")
	st.na.Kill()
	st.a.say("kill -9 netraid             a's daemon")
	b.Kill()
	st.a.say("kill -9 %-20d a's broker (java)", b.Pid())
	mnt.Crash()
	st.a.say("kill -9 nbdfuse             a's mount of the volume is dead")
	st.ma.LinkDown(st.s)
	st.a.say("ip link set %-16s a is off the network", st.ma.Veth+" down")
	rep := p.Wait()
	st.c.acked, st.c.unanswered = len(rep.Acked), len(rep.Unknown)
	if st.atFail >= 0 {
		st.c.afterFail = st.c.acked - st.atFail
	}
	st.a.say("the producers saw: %s", firstLine(fmt.Sprint(rep.Err)))
	st.a.say("%d messages were acknowledged; %d were sent but unanswered", st.c.acked, st.c.unanswered)
	return rep
}

func (st *story) takeOver() *harness.Mount {
	st.a.step("b is promoted and mounts the volume")
	st.a.netraid(st.s, st.nb, "promote")
	m := st.mount(st.nb, "b-fs", false)
	st.a.say("(a never unmounted it: ext4 replayed its journal)")
	return m
}

func (st *story) consume(b *broker.Broker, rep broker.Report) {
	st.a.step("Every message consumed on b")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	got, err := broker.DrainAll(ctx, b.Endpoint(), queue, 5*time.Second)
	if err != nil {
		st.s.Fatalf("consuming on b after %d messages: %v", len(got), err)
	}
	c := &st.c
	c.drained, c.received = true, len(got)
	for seq, n := range got {
		c.redelivered += n - 1
		_, acked := slices.BinarySearch(rep.Acked, seq)
		_, unknown := slices.BinarySearch(rep.Unknown, seq)
		switch {
		case unknown:
			c.fromUnanswered++
		case !acked:
			c.phantom++
		}
	}
	c.lost = len(broker.Lost(rep.Acked, got))
	st.a.say("received %d messages on b (%d redelivered); %d acknowledged messages missing", c.received, c.redelivered, c.lost)
}

func (st *story) shutDown(b *broker.Broker, m *harness.Mount) {
	st.a.step("The broker stops cleanly; the filesystem checks clean")
	if err := b.Stop(); err != nil {
		st.s.Fatal(err)
	}
	m.UnmountAndCheck()
	st.a.say("broker stopped; e2fsck -fn: clean")
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
