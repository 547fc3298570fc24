package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/mirror"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/resync"
)

// primary is what runs while this node is primary: the mirror over the
// local stripe and the peer, the NBD export, and the link loop.
type primary struct {
	n      *Node
	mir    *mirror.Mirror
	ra     *blockdev.Readahead // reads ahead for the export; nil if off
	local  *mirror.Leg
	srv    *nbd.Server
	ln     net.Listener
	addr   string
	export string
	ctx    context.Context // ends when the node stops being primary
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// kick wakes the link loop (connect, resync full).
	kick chan struct{}
	// linkDown tells the link that the mirror failed the peer leg.
	linkDown chan struct{}
	// stopping: demote or shutdown has drained and flushed the export.
	stopping atomic.Bool

	mu     sync.Mutex
	remote *mirror.Leg    // the peer leg, or nil
	client *nbd.Client    // the link, while up
	sync   *resyncState   // the resync under way
	engine *resync.Engine // its engine, for pause, resume and rate
	// rebuildDone is closed when the last rebuild of the local leg ends.
	rebuildDone chan struct{}
}

// promote makes this node primary: checks, a new data generation, the
// mirror, the export and the link loop.
func (n *Node) promote(force bool) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.prim != nil {
		return "already primary", nil
	}
	warn := ""
	// A copy whose rebuild of one member was cut off may be primary
	// again, serving only through the peer: its local leg takes writes
	// and no reads until the peer, connected and up to date, has rebuilt
	// it (runLink). Until then every I/O fails.
	rebuild := n.rebuildPoint()
	if force || n.cfg.standalone() {
		rebuild = nil
	}
	switch n.sb.DiskState {
	case meta.UpToDate, meta.JustCreated:
	default:
		if rebuild != nil {
			warn = fmt.Sprintf("this node's copy is being rebuilt (member %d, from %s): it serves I/O only through the peer, once connected",
				rebuild.Member, humanize.IBytes(uint64(rebuild.Cursor)))
			break
		}
		if !force {
			return "", fmt.Errorf("this node's copy is %s (%s): promoting it could serve stale or half-synced data; "+
				"promote the peer instead, or wait for the resync to finish; --force promotes anyway and loses what only the peer holds",
				n.sb.DiskState, n.diskStateWhy())
		}
		warn = fmt.Sprintf("WARNING: promoted a copy that is %s; whatever only the peer holds will be overwritten when they resync", n.sb.DiskState)
		n.log.Warn("forced promotion", "disk_state", n.sb.DiskState.String())
	}
	if n.primaryConnected() {
		return "", errors.New("the peer is primary and connected to this node: demote it first ('netraid demote' there)")
	}
	if n.sb.FailedMembers != 0 {
		return "", fmt.Errorf("member disk(s) %#x of this node failed: replace them ('netraid disk replace') or promote the peer", n.sb.FailedMembers)
	}
	g := n.gens()
	// A secondary takes its primary's writes without marking them in its
	// used bitmap, and a sync or a rebuild from this node skips the
	// regions that bitmap says were never written: if this node was ever
	// a secondary since it was last promoted, every region counts as used
	// from now on.
	if n.sb.Flags&meta.FlagUsedIncomplete != 0 {
		if err := n.bm.SetAllUsed(); err != nil {
			return "", fmt.Errorf("marking every region used before taking writes: %w", err)
		}
	}
	if (!n.cfg.standalone() || g.Current == 0) && rebuild == nil {
		// The peer, if any, is not connected to a secondary-turned-
		// primary: from now on this node may take writes it lacks. (A
		// copy being rebuilt can take none without the peer: it stays
		// the peer's generation, so that they meet with nothing to do
		// but the rebuild.)
		g.Diverge()
	}
	err := n.updateSuper(func(sb *meta.Superblock) {
		setGens(sb, g)
		sb.Role = meta.Primary
		sb.Flags &^= meta.FlagUsedIncomplete
		if rebuild == nil {
			sb.DiskState = meta.UpToDate
			if force {
				sb.ClearRebuild()
			}
		}
	})
	if err != nil {
		return "", err
	}
	p, err := n.startPrimary(rebuild != nil)
	if err != nil {
		n.updateSuper(func(sb *meta.Superblock) { sb.Role = meta.Secondary })
		return "", err
	}
	n.prim = p
	n.log.Info("promoted to primary", "generations", g.String(), "export", p.addr)
	msg := fmt.Sprintf("primary: exporting %q on %s", p.export, p.addr)
	if warn != "" {
		msg = warn + "\n" + msg
	}
	return msg, nil
}

func (n *Node) diskStateWhy() string {
	switch n.sb.DiskState {
	case meta.Inconsistent:
		return fmt.Sprintf("a resync onto it was under way, %d of %d bytes done", n.sb.ResyncCursor, n.sb.ResyncTotal)
	case meta.Outdated:
		return "the peer is known to hold newer data"
	case meta.Failed:
		return "its disks failed"
	}
	return "unknown state"
}

// startPrimary builds the mirror and starts the export and the link loop;
// with rebuilding, the local leg starts resyncing. Callers hold n.mu.
func (n *Node) startPrimary(rebuilding bool) (*primary, error) {
	ctx, cancel := context.WithCancel(n.ctx)
	p := &primary{n: n, ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1), linkDown: make(chan struct{}, 1), export: n.cfg.Export}
	if p.export == "" {
		p.export = n.sb.Name
	}
	exportTLS, err := n.exportTLS(n.sb.Name)
	if err != nil {
		cancel()
		return nil, err
	}
	copies := 2
	if n.cfg.standalone() {
		copies = 1
	}
	mir, err := mirror.New(n.size, n.bm, mirror.Options{Logger: n.log, OnLegFailed: p.legFailed, Copies: copies})
	if err != nil {
		cancel()
		return nil, err
	}
	p.mir = mir
	localState := mirror.InSync
	if rebuilding {
		localState = mirror.Resyncing
	}
	if p.local, err = mir.AddLeg("local", n.localDev(), localState, true); err != nil {
		cancel()
		return nil, err
	}
	if !n.cfg.standalone() {
		// The peer leg is there from the start, failed until the link is
		// up, so that the bitmap keeps every write the peer lacks.
		if p.remote, err = mir.AddLeg("peer", disconnected{size: n.size}, mirror.Failed, false); err != nil {
			cancel()
			return nil, err
		}
	}
	p.srv = nbd.NewServer(nbd.ServerOptions{Logger: n.log, TLS: exportTLS, TLSRequired: n.cfg.TLSRequired,
		MaxConnections: n.cfg.MaxConnections, MemoryBudget: n.cfg.MemoryBudget})
	var dev blockdev.Device = p.mir
	if n.cfg.Readahead > 0 {
		p.ra = blockdev.NewReadahead(p.mir, blockdev.ReadaheadOptions{Window: n.cfg.Readahead})
		dev = p.ra
	}
	p.srv.AddExport(nbd.Export{Name: p.export, Description: "netraid volume " + n.sb.Name, Dev: dev, ReadOnly: n.cfg.ReadOnly})
	ln, err := listen(n.cfg.Listen)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("node: NBD export on %s: %w", n.cfg.Listen, err)
	}
	p.ln, p.addr = ln, ln.Addr().String()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := p.srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			n.log.Error("NBD export stopped", "err", err)
		}
	}()
	if !n.cfg.standalone() {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.linkLoop(ctx)
		}()
	}
	return p, nil
}

// demote stops exporting and makes this node secondary.
func (n *Node) demote(force bool) (string, error) {
	n.mu.Lock()
	p := n.prim
	n.mu.Unlock()
	if p == nil {
		return "already secondary", nil
	}
	if c := p.srv.Clients(p.export); c > 0 && !force {
		return "", fmt.Errorf("%d NBD client(s) are connected to the export: unmount and disconnect them first, or --force to cut them off", c)
	}
	if err := p.stop(force); err != nil {
		return "", fmt.Errorf("demote: %w (the node is no longer exporting; check its disks)", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.prim = nil
	if err := n.updateSuper(func(sb *meta.Superblock) { sb.Role = meta.Secondary }); err != nil {
		return "", err
	}
	if !n.cfg.standalone() {
		n.setPeer("waiting", nil)
	}
	n.log.Info("demoted to secondary")
	return "secondary: export stopped, volume flushed", nil
}

// stop drains the export, stops the link loop and any resync, and
// flushes the mirror.
func (p *primary) stop(force bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if force {
		p.srv.DropClients(p.export)
	}
	// Drain and flush while the link is still up: after this no write
	// can come, and the peer holds everything this node holds.
	err := errors.Join(p.srv.Shutdown(ctx), p.mir.Flush())
	if p.ra != nil {
		p.ra.Stop() // the export is drained: only reads ahead may be in flight
	}
	p.stopping.Store(true)
	p.cancel()
	p.mu.Lock()
	if p.client != nil {
		p.client.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return errors.Join(err, p.n.bm.Sync())
}

// legFailed runs when the mirror fails a leg, before any write that the
// leg did not get is answered.
func (p *primary) legFailed(leg *mirror.Leg, err error) {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if leg == p.local {
		n.log.Error("local disks failed: serving through the peer", "err", err)
		failed := failedMembers(err)
		if uerr := n.updateSuper(func(sb *meta.Superblock) {
			sb.DiskState = meta.Failed
			sb.FailedMembers |= failed
		}); uerr != nil {
			n.log.Error("could not record the failed disks", "err", uerr)
		}
		return
	}
	n.setPeer("connecting", err)
	select {
	case p.linkDown <- struct{}{}:
	default:
	}
	if p.stopping.Load() {
		// Stopping: the export is drained and the last flush reached the
		// peer; the link going down now loses it nothing.
		return
	}
	if p.local.State() == mirror.Resyncing {
		// The local leg is being rebuilt from the peer: with the peer
		// gone no write can succeed, so this node takes none the peer
		// lacks and keeps its generation.
		n.log.Warn("peer leg failed while the local copy is rebuilt from it: no I/O until it is back", "err", err)
		return
	}
	// The peer no longer gets our writes: a new generation, so that the
	// next meeting knows this node went on without it.
	g := n.gens()
	g.Diverge()
	if uerr := n.updateSuper(func(sb *meta.Superblock) { setGens(sb, g) }); uerr != nil {
		n.log.Error("could not record the new generation after losing the peer", "err", uerr)
	}
	n.log.Warn("peer leg failed: serving from the local disks, tracking changes", "err", err, "generations", g.String())
}

// disconnected is the peer leg while there is no link: it fails all I/O.
type disconnected struct{ size int64 }

var errNoLink = errors.New("node: peer not connected")

func (d disconnected) ReadAt([]byte, int64) (int, error)  { return 0, errNoLink }
func (d disconnected) WriteAt([]byte, int64) (int, error) { return 0, errNoLink }
func (d disconnected) Flush() error                       { return errNoLink }
func (d disconnected) Size() int64                        { return d.size }
func (d disconnected) Close() error                       { return nil }

var _ blockdev.Device = disconnected{}

// localDev is the local leg's device: the volume's stripe, with I/O that
// takes longer than the disk time-out failed (and so the leg with it).
func (n *Node) localDev() blockdev.Device {
	if n.cfg.DiskTimeout <= 0 {
		return n.vol.Data()
	}
	return blockdev.WithTimeout(n.vol.Data(), n.cfg.DiskTimeout)
}
