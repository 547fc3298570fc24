package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/resync"
	"github.com/netraid/netraid/volume"
)

// Node is one machine's half of a volume.
type Node struct {
	cfg     Config
	log     *slog.Logger
	vol     *volume.Volume
	bm      *resync.Bitmap
	size    int64
	started time.Time
	ctx     context.Context // the node's lifetime

	// mu guards everything below and orders superblock updates with the
	// role changes they record.
	mu   sync.Mutex
	sb   meta.Superblock // as last written
	prim *primary        // non-nil while primary
	sec  secondaryState
	peer peerStatus
	// disconnected: the operator took the link down; no dialing, no
	// accepting, until connect.
	disconnected bool
	// discardLocal: the operator said to throw this node's changes away
	// at the next meeting.
	discardLocal bool
	resyncPaused bool
	verify       *VerifyStatus
	rebuild      *ResyncStatus

	// faults are the members' fault injectors, with FaultInjection.
	faults map[int]*fault.Device

	wg sync.WaitGroup // the node's own goroutines
}

// peerStatus is what this node knows of the replication link.
type peerStatus struct {
	state   string // connected, connecting, disconnected, standalone, waiting
	lastErr string
	verdict Verdict
	met     bool
	hello   *Hello // the peer's last hello
	since   time.Time
}

func (n *Node) setPeer(state string, err error) {
	if n.peer.state != state {
		n.peer.since = time.Now()
	}
	n.peer.state = state
	if err != nil {
		n.peer.lastErr = err.Error()
	}
}

// Run assembles the volume from cfg.Disks and runs the node until ctx is
// done; then it drains the export, flushes and closes everything.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	faults := map[int]*fault.Device{}
	oo := volume.OpenOptions{Logger: cfg.Logger}
	if cfg.FaultInjection {
		oo.WrapData = func(i int, d blockdev.Device) blockdev.Device {
			f := fault.Wrap(d)
			faults[i] = f
			return f
		}
	}
	vol, err := volume.Open(cfg.Disks, oo)
	if err != nil {
		return err
	}
	sb := vol.Super()
	bm, err := resync.OpenBitmap(vol.Bitmap(), int64(sb.VolumeSize), int64(sb.RegionSize), resync.BitmapOptions{FlushInterval: cfg.BitmapFlush})
	if err != nil {
		vol.Close()
		return fmt.Errorf("node: write-intent bitmap: %w", err)
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger.With("volume", sb.Name), vol: vol, bm: bm,
		size: int64(sb.VolumeSize), sb: sb, started: time.Now(), ctx: ctx, faults: faults,
	}
	n.peer.state = "standalone"
	if !cfg.standalone() {
		n.peer.state = "waiting"
	}
	err = n.run(ctx)
	if cerr := n.close(); err == nil {
		err = cerr
	}
	return err
}

func (n *Node) run(ctx context.Context) error {
	ctl, err := listenControl(n.cfg.Control, n.log)
	if err != nil {
		return err
	}
	hs := controlServer(n)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		hs.Serve(ctl)
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		hs.Shutdown(sctx)
		cancel()
		os.Remove(n.cfg.Control)
	}()

	if n.cfg.ListenPeer != "" {
		if err := n.startPeerServer(ctx); err != nil {
			return err
		}
	}
	if !n.cfg.standalone() && !n.cfg.Primary {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.pokePeer(ctx)
		}()
	}
	if n.sb.Role == meta.Primary && !n.cfg.standalone() && !n.cfg.Primary {
		n.log.Warn("this node was primary when it stopped; it starts as secondary: promote it when it should serve")
	}
	if n.cfg.standalone() || n.cfg.Primary {
		if _, err := n.promote(false); err != nil {
			return err
		}
	}
	n.log.Info("node running", "role", n.role(), "disks", strings.Join(n.cfg.Disks, ","), "size", n.size)
	<-ctx.Done()
	n.log.Info("shutting down")
	return n.shutdown()
}

// shutdown stops the primary's export and link, and the peer server.
func (n *Node) shutdown() error {
	n.mu.Lock()
	p := n.prim
	n.mu.Unlock()
	var errs []error
	if p != nil {
		errs = append(errs, p.stop(true))
	}
	n.stopPeerServer()
	return errors.Join(errs...)
}

func (n *Node) close() error {
	n.wg.Wait()
	return errors.Join(n.bm.Close(), n.vol.Close())
}

func (n *Node) role() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.prim != nil {
		return "primary"
	}
	return "secondary"
}

// updateSuper changes the superblock on every member and keeps the copy.
// Callers hold n.mu.
func (n *Node) updateSuper(f func(*meta.Superblock)) error {
	if err := n.vol.UpdateSuper(f); err != nil {
		return fmt.Errorf("node: writing superblocks: %w", err)
	}
	n.sb = n.vol.Super()
	return nil
}

// gens returns the generations as the superblock holds them. Callers hold
// n.mu.
func (n *Node) gens() Gens {
	g := n.sb.Generations
	return Gens{Current: g.Current, Bitmap: g.Bitmap, History: g.History}
}

func setGens(sb *meta.Superblock, g Gens) {
	sb.Generations = meta.Generations{Current: g.Current, Bitmap: g.Bitmap, History: g.History}
}

// isUnixAddr reports whether a listen address is a unix socket path.
func isUnixAddr(a string) bool { return strings.Contains(a, "/") }

// listen listens on a TCP address or a unix socket path, replacing a
// stale socket file.
func listen(addr string) (net.Listener, error) {
	if isUnixAddr(addr) {
		if c, err := net.DialTimeout("unix", addr, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("node: %s is in use by another server", addr)
		}
		os.Remove(addr)
		return net.Listen("unix", addr)
	}
	return net.Listen("tcp", addr)
}

// helloFor is this node's hello.
func (n *Node) helloFor(role string) Hello {
	return Hello{
		Name: n.sb.Name, SetUUID: n.sb.SetUUID.String(), Size: n.size,
		Region: int64(n.sb.RegionSize), Role: role, DiskState: n.sb.DiskState.String(), Gens: n.gens(),
	}
}
