package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/stripe"
	"github.com/netraid/netraid/volume"
	"github.com/netraid/netraid/witness"
)

// Net is the network a cluster runs on: per host, a dialer and a
// listener, and the faults the explorer injects.
type Net interface {
	Dialer(host string) func(ctx context.Context, network, addr string) (net.Conn, error)
	Listener(host string) func(network, addr string) (net.Listener, error)
	// Partition and Heal cut and restore the path between two hosts:
	// nothing is delivered, the peers see silence.
	Partition(a, b string)
	Heal(a, b string)
	// Reset tears down every connection between two hosts (RST).
	Reset(a, b string)
	// Delay delays every delivery between two hosts by d.
	Delay(a, b string, d time.Duration)
	// Pause and Resume stop and restart a host's traffic (SIGSTOP).
	Pause(host string)
	Resume(host string)
	// Crash drops a host's connections silently (power loss); Kill
	// resets them (a killed process); Restart lets it listen again.
	Crash(host string)
	Kill(host string)
	Restart(host string)
}

// Ports of every simulated node.
const (
	ExportPort = "10809"
	PeerPort   = "7789"
)

// Options shape a simulated pair.
type Options struct {
	// Members per node and the size of each; 2 and 2 MiB by default (a
	// volume of 2 MiB: 1 MiB of metadata area on each).
	Members    int
	MemberSize int64
	// Chunk and Region of the volume; 16 KiB and 64 KiB by default.
	Chunk, Region int64
	// Config adjusts each node's configuration before it starts.
	Config func(name string, cfg *node.Config)
	// Log gets the nodes' logs (info level); nil discards them.
	Log io.Writer
	// Witness runs the pair with a witness (Cluster.Witness, an
	// in-memory etcd): failover is automatic and fenced, as with
	// --etcd, the nodes named a and b. LeaseTTL is their lease in it
	// (DefaultLeaseTTL if zero).
	Witness  bool
	LeaseTTL time.Duration
}

func (o *Options) defaults() {
	if o.Members == 0 {
		o.Members = 2
	}
	if o.MemberSize == 0 {
		o.MemberSize = 2 << 20
	}
	if o.Chunk == 0 {
		o.Chunk = 16 << 10
	}
	if o.Region == 0 {
		o.Region = 64 << 10
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
}

// Cluster is two simulated nodes, a and b, each on its own disks, joined
// by a simulated network, with the application's writes modelled.
type Cluster struct {
	o     Options
	Net   Net
	Model *Model
	Procs map[string]*Proc
	Names []string
	// Witness is the pair's witness, with Options.Witness; nil without.
	// Net cuts a node from it (a partition with WitnessHost).
	Witness *witness.Memory
	layout  meta.Layout
	log     *slog.Logger
}

// Proc is one node: its disks, which outlive it, and the running node.
type Proc struct {
	Name  string
	Disks []*Disk
	c     *Cluster
	next  int // disks added

	mu     sync.Mutex
	node   *node.Node
	cancel context.CancelFunc
	done   chan error
}

// NewCluster creates the volume on both nodes' disks; it starts nothing.
func NewCluster(nw Net, o Options) (*Cluster, error) {
	o.defaults()
	out := o.Log
	if out == nil {
		out = io.Discard
	}
	c := &Cluster{o: o, Net: nw, Procs: map[string]*Proc{}, Names: []string{"a", "b"},
		log: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if o.Witness {
		c.Witness = witness.NewMemory()
		c.Net = newWitnessNet(nw, c.Witness)
	}
	for _, name := range c.Names {
		p := &Proc{Name: name, c: c}
		var paths []string
		for i := range o.Members {
			d := NewDisk(fmt.Sprintf("%s%d", name, i), o.MemberSize)
			p.Disks = append(p.Disks, d)
			paths = append(paths, d.Name)
		}
		sb, err := volume.Create(paths, volume.CreateOptions{Name: "vol", Chunk: o.Chunk, Region: o.Region, OpenDisk: p.open})
		if err != nil {
			return nil, fmt.Errorf("sim: create %s: %w", name, err)
		}
		c.layout = sb.Layout()
		c.Procs[name] = p
	}
	c.Model = NewModel(c.layout.VolumeSize / BlockSize)
	return c, nil
}

// Layout returns the volume's geometry on every node.
func (c *Cluster) Layout() meta.Layout { return c.layout }

// Other returns the name of the other node.
func (c *Cluster) Other(name string) string {
	if name == "a" {
		return "b"
	}
	return "a"
}

// open is the node's disk opener: a new handle on the named disk.
func (p *Proc) open(path string, _ bool) (blockdev.Device, error) {
	for _, d := range p.Disks {
		if d.Name == path {
			return d.Open(), nil
		}
	}
	return nil, fmt.Errorf("sim: %s has no disk %q", p.Name, path)
}

// AddDisk gives the node a new, blank disk (for disk replace).
func (p *Proc) AddDisk() *Disk {
	p.next++
	d := NewDisk(fmt.Sprintf("%s%d", p.Name, len(p.Disks)+p.next+10), p.c.o.MemberSize)
	p.Disks = append(p.Disks, d)
	return d
}

// DropDisk takes a disk out of the node (a replaced one): the node does
// not open it again.
func (p *Proc) DropDisk(name string) {
	for i, d := range p.Disks {
		if d.Name == name {
			p.Disks = append(p.Disks[:i:i], p.Disks[i+1:]...)
			return
		}
	}
}

// Running reports whether the node's process runs.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.node != nil
}

// Node returns the running node, or nil.
func (p *Proc) Node() *node.Node {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.node
}

// config is the node's configuration on the simulated world.
func (p *Proc) config() node.Config {
	c := p.c
	other := c.Other(p.Name)
	var paths []string
	for _, d := range p.Disks {
		paths = append(paths, d.Name)
	}
	cfg := node.Config{
		Disks:             paths,
		Listen:            p.Name + ":" + ExportPort,
		ListenPeer:        p.Name + ":" + PeerPort,
		Peer:              other + ":" + PeerPort,
		PeerTimeout:       300 * time.Millisecond,
		PingInterval:      200 * time.Millisecond,
		PingTimeout:       300 * time.Millisecond,
		ReconnectInterval: 20 * time.Millisecond,
		DiskTimeout:       300 * time.Millisecond,
		BitmapFlush:       50 * time.Millisecond,
		Logger:            c.log.With("node", p.Name),
		Name:              p.Name,
		PeerName:          other,
		PeerSecretKey:     []byte("the pair's shared secret, for the simulation"),
		DialFunc:          c.Net.Dialer(p.Name),
		ListenFunc:        c.Net.Listener(p.Name),
		OpenDisk:          p.open,
	}
	if c.Witness != nil {
		cfg.Witness, cfg.LeaseTTL = c.Witness, c.o.LeaseTTL
	}
	if c.o.Config != nil {
		c.o.Config(p.Name, &cfg)
	}
	return cfg
}

// Start starts the node's process on its disks.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.node != nil {
		return fmt.Errorf("sim: %s is running", p.Name)
	}
	p.c.Net.Restart(p.Name)
	n, err := node.Open(p.config())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		cancel()
		return err
	}
	p.node, p.cancel, p.done = n, cancel, done
	return nil
}

// How a process stops.
type How int

const (
	// Shutdown: SIGTERM; the node drains and flushes.
	Shutdown How = iota
	// Kill: kill -9; the disks keep what was written, the peers see
	// the connections reset.
	Kill
	// Crash: power loss; what was not flushed is lost, the peers see
	// silence.
	Crash
)

func (h How) String() string {
	return [...]string{"shutdown", "kill", "crash"}[h]
}

// ErrStuck: a node did not stop within the harness's bound.
var ErrStuck = errors.New("sim: node did not stop")

// StuckError is ErrStuck with what the process's goroutines were doing.
type StuckError struct {
	Msg    string
	Stacks string
}

func (e *StuckError) Error() string        { return ErrStuck.Error() + ": " + e.Msg }
func (e *StuckError) Is(target error) bool { return target == ErrStuck }

// Stop stops the node's process.
func (p *Proc) Stop(how How, within time.Duration) error {
	p.mu.Lock()
	n, cancel, done := p.node, p.cancel, p.done
	p.node = nil
	p.mu.Unlock()
	if n == nil {
		return nil
	}
	switch how {
	case Kill:
		p.c.Net.Kill(p.Name)
	case Crash:
		p.c.Net.Crash(p.Name)
	}
	if how != Shutdown {
		Sever(p.Disks, how == Crash)
	}
	cancel()
	select {
	case err := <-done:
		if how == Shutdown {
			return err
		}
		return nil
	case <-time.After(within):
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		return &StuckError{Msg: fmt.Sprintf("%s within %v of a %s", p.Name, within, how), Stacks: b.String()}
	}
}

// Copy reads the node's copy of the volume from its disks, as they are
// now, block by block.
func (c *Cluster) Copy(name string) ([]WriteID, error) {
	return c.blocksOf(name, 0, c.Model.Blocks())
}

// DurableCopy reads the node's copy as a power loss now would leave it:
// what its disks hold flushed.
func (c *Cluster) DurableCopy(name string) ([]WriteID, error) {
	return c.read(name, durableView, 0, c.Model.Blocks())
}

// A view is how the checks read a disk: as it is now, or as a crash
// would leave it.
type view func(*Disk) io.ReaderAt

func presentView(d *Disk) io.ReaderAt { return d }

func durableView(d *Disk) io.ReaderAt { return bytes.NewReader(d.Durable()) }

// blocksOf reads blocks [first, first+n) of the node's copy.
func (c *Cluster) blocksOf(name string, first, n int64) ([]WriteID, error) {
	return c.read(name, presentView, first, n)
}

// read reads blocks [first, first+n) of the node's copy, its disks seen
// through v.
func (c *Cluster) read(name string, v view, first, n int64) ([]WriteID, error) {
	p := c.Procs[name]
	l := c.layout
	disks, err := p.members(v)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n*BlockSize)
	for _, e := range stripe.Map(first*BlockSize, n*BlockSize, l.Chunk, l.Members) {
		if _, err := disks[e.Disk].ReadAt(buf[e.BufOff:e.BufOff+e.Len], l.DataOffset+e.DiskOff); err != nil {
			return nil, err
		}
	}
	out := make([]WriteID, n)
	for i := range out {
		b := first + int64(i)
		if out[i], err = readStamp(buf[int64(i)*BlockSize:int64(i+1)*BlockSize], b); err != nil {
			out[i] = Garbage
		}
	}
	return out, nil
}

// Trusted reports whether the node's copy, as its newest superblock on
// its disks records it, is one the node would serve or sync from: up to
// date (or just created) with no failed member. Other copies may hold
// anything, such as what a timed-out write left (blockdev.Timeout).
func (c *Cluster) Trusted(name string) bool {
	sb, err := c.Procs[name].super()
	if err != nil {
		return false
	}
	return (sb.DiskState == meta.UpToDate || sb.DiskState == meta.JustCreated) && sb.FailedMembers == 0
}

// super returns the newest superblock on the node's disks.
func (p *Proc) super() (*meta.Superblock, error) {
	var best *meta.Superblock
	for _, d := range p.Disks {
		a, b := make([]byte, meta.SlotSize), make([]byte, meta.SlotSize)
		d.ReadAt(a, meta.SlotOffset(0))
		d.ReadAt(b, meta.SlotOffset(1))
		if sb, _, err := meta.Pick(a, b); err == nil && (best == nil || sb.Seq > best.Seq) {
			best = sb
		}
	}
	if best == nil {
		return nil, fmt.Errorf("sim: %s has no superblock", p.Name)
	}
	return best, nil
}

// LoseMember records in the model that x's member was replaced by a
// blank disk (by the operator, after it failed): what only that disk
// held is gone, and what survives of its blocks is what the other copy
// holds durably. What it holds unflushed does not count: a crash may
// drop it, and nothing obliges the node to flush it (plain seed 16766:
// a, its local leg failed, held unflushed a write only b had flushed).
func (c *Cluster) LoseMember(x string, member int) error {
	vals, err := c.DurableCopy(c.Other(x))
	if err != nil {
		return err
	}
	c.Model.Lost(c.MemberBlocks(member), vals)
	return nil
}

// MemberBlocks returns the blocks of the volume that live, at least in
// part, on the given member.
func (c *Cluster) MemberBlocks(member int) []int64 {
	l := c.layout
	var out []int64
	for b := range c.Model.Blocks() {
		for _, e := range stripe.Map(b*BlockSize, BlockSize, l.Chunk, l.Members) {
			if e.Disk == member {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

// members returns the node's member disks in member order, as their
// newest superblocks say, seen through v.
func (p *Proc) members(v view) ([]io.ReaderAt, error) {
	out := make([]io.ReaderAt, p.c.layout.Members)
	var seq []uint64 = make([]uint64, len(out))
	for _, disk := range p.Disks {
		d := v(disk)
		a, b := make([]byte, meta.SlotSize), make([]byte, meta.SlotSize)
		d.ReadAt(a, meta.SlotOffset(0))
		d.ReadAt(b, meta.SlotOffset(1))
		sb, _, err := meta.Pick(a, b)
		if err != nil {
			continue // a blank replacement before it was written
		}
		i := int(sb.Member)
		if i < len(out) && (out[i] == nil || sb.Seq > seq[i]) {
			out[i], seq[i] = d, sb.Seq
		}
	}
	for i, d := range out {
		if d == nil {
			return nil, fmt.Errorf("sim: %s has no disk holding member %d", p.Name, i)
		}
	}
	return out, nil
}

// Status returns a running node's status.
func (c *Cluster) Status(name string) (node.Status, error) {
	n := c.Procs[name].Node()
	if n == nil {
		return node.Status{}, fmt.Errorf("sim: %s is not running", name)
	}
	return n.Status(), nil
}

// Do runs an admin command on a running node.
func (c *Cluster) Do(name, action string, r node.Request) (string, error) {
	n := c.Procs[name].Node()
	if n == nil {
		return "", fmt.Errorf("sim: %s is not running", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return n.Do(ctx, action, r)
}

// WaitFor polls cond until it holds, or fails after within saying what
// it waited for.
func (c *Cluster) WaitFor(within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("sim: waited %v for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// InSync reports whether the pair is connected and in sync: a primary's
// legs both up to date with no resync running, and its peer an up-to-date
// secondary that has told it so and holds its link (both sides agree:
// a primary alone may not have noticed yet that its peer restarted). It
// returns the primary.
func (c *Cluster) InSync() (string, bool) {
	for _, name := range c.Names {
		st, err := c.Status(name)
		if err != nil || st.Role != "primary" || st.Resync != nil || st.Peer == nil || st.Peer.State != "connected" {
			continue
		}
		legs := 0
		for _, l := range st.Legs {
			if l.State == "up-to-date" {
				legs++
			}
		}
		other, err := c.Status(c.Other(name))
		if legs == 2 && st.Peer.DiskState == "up-to-date" && err == nil && other.DiskState == "up-to-date" && other.Role == "secondary" &&
			other.Peer != nil && other.Peer.State == "connected" {
			return name, true
		}
	}
	return "", false
}
