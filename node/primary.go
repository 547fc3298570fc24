package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/mirror"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/repl"
	"github.com/netraid/netraid/resync"
	"github.com/netraid/netraid/volume"
	"github.com/netraid/netraid/witness"
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
	// stopCh is closed when demote or shutdown begins.
	stopCh chan struct{}
	// disklessMu serialises the records of a copy left with no disk
	// (recordDiskless); disklessDone says the peer made it, and
	// disklessBusy that answers are held until it does.
	disklessMu   sync.Mutex
	disklessDone atomic.Bool
	disklessBusy atomic.Bool
	// peerLostHolding is set at every loss of the peer leg: when this
	// node's local copy was not in sync (failed, or rebuilt from the
	// peer) and writes answered since the last flush were held by the
	// peer alone, it is the peer daemon's boot then, else nil (see
	// peerMayLack).
	peerLostHolding atomic.Pointer[string]
	// electing: promoted with --force without the volume's election,
	// this primary campaigns for it (electForced).
	electing atomic.Bool
	// recMu orders this primary's outdated records in the witness: one
	// is made (recordOutdated), or read and removed (clearRecordIf), at
	// a time, so that a removal reads every record made before it.
	recMu sync.Mutex

	mu     sync.Mutex
	remote *mirror.Leg    // the peer leg, or nil
	client *repl.Link     // the link, while up
	sync   *resyncState   // the resync under way
	engine *resync.Engine // its engine, for pause, resume and rate
	// rebuildDone is closed when the last rebuild of the local leg ends.
	rebuildDone chan struct{}
}

// promote makes this node primary: the checks (decidePromote), a new
// data generation, the mirror, the export and the link loop.
func (n *Node) promote(ctx context.Context, force bool) (string, error) {
	// With a witness, only the holder of the volume's election is
	// primary: its key guards the records that let it write alone.
	var lead *witness.Leadership
	won := false
	if n.fence != nil {
		n.mu.Lock()
		already := n.prim != nil
		n.mu.Unlock()
		if already {
			return "already primary", nil
		}
		l, w, err := n.leadershipFor(ctx)
		won = w
		switch {
		case err != nil && !force:
			return "", fmt.Errorf("%v; --force promotes without it (writes the peer misses are then held until this node wins it)", err)
		case err != nil:
			n.log.Warn("promoting without the volume's election (forced)", "err", err)
		}
		lead = l
		if lead != nil && !force {
			if err := n.outdatedRefusal(ctx); err != nil {
				if won {
					n.mu.Lock()
					n.giveUpLocked(lead)
					n.mu.Unlock()
				}
				return "", err
			}
		}
	}
	// Without a witness, nothing records that the peer took writes this
	// copy lacks: the peer, if it answers, says what it holds.
	var peer *repl.Hello
	if n.fence == nil && !force && !n.cfg.standalone() {
		peer = n.askPeer(ctx)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	keep := false
	if won {
		defer func() {
			if keep {
				n.keepLocked(lead)
			} else {
				n.giveUpLocked(lead)
			}
		}()
	}
	if n.prim != nil {
		return "already primary", nil
	}
	plan := decidePromote(promoteIn{
		Force: force, Standalone: n.cfg.standalone(), Disk: n.sb.DiskState, Flags: n.sb.Flags,
		Failed: n.sb.FailedMembers, Rebuild: n.rebuildPoint(), Link: n.linkView(), Gens: n.gens(),
		Peer: peer, Detect: n.cfg.detect(),
	})
	if plan.Refuse != nil {
		return "", plan.Refuse
	}
	// A primary's link that is gone (or never got past its hello) may
	// not write to this node any more: its I/O in flight ends first.
	n.endLink()
	if force && plan.Warn != "" {
		n.log.Warn("forced promotion", "disk_state", n.sb.DiskState.String())
	}
	if plan.DirtyAll {
		if err := n.bm.SetAll(); err != nil {
			return "", fmt.Errorf("marking every region out of sync before taking writes: %w", err)
		}
	}
	if plan.SetAllUsed {
		if err := n.bm.SetAllUsed(); err != nil {
			return "", fmt.Errorf("marking every region used before taking writes: %w", err)
		}
	}
	g := n.gens()
	if plan.Diverge {
		g.Diverge()
	}
	err := n.updateSuper(func(sb *meta.Superblock) {
		sb.Generations = g.Meta()
		sb.Role = meta.Primary
		sb.Flags &^= meta.FlagUsedIncomplete | meta.FlagFenced
		// The first verify on a new primary compares every region.
		sb.Flags |= meta.FlagNeedFullVerify
		sb.DiskState = plan.Disk
		if plan.ClearRebuild {
			sb.ClearRebuild()
		}
	})
	if err != nil {
		return "", err
	}
	p, err := n.startPrimary(plan.Rebuilding)
	if err != nil {
		n.updateSuper(func(sb *meta.Superblock) { sb.Role = meta.Secondary })
		return "", err
	}
	n.prim = p
	n.primNow.Store(p)
	keep = true
	switch {
	case lead != nil && plan.Diverge:
		// The peer is away: nothing is answered before it is recorded
		// outdated (after this returns: the record takes n.mu).
		p.mir.HoldAcks(holdFence)
		n.wg.Go(func() { p.fencePromoted(g.Current) })
	case n.fence != nil && plan.Diverge:
		// Forced without the election: nothing the peer misses is
		// answered before this node wins it and records the peer
		// outdated.
		p.electing.Store(true)
		p.mir.HoldAcks(holdFence)
		n.wg.Go(p.electForced)
	}
	n.setPeer(PeerConnecting, nil)
	n.log.Info("promoted to primary", "generations", g.String(), "export", p.addr)
	msg := fmt.Sprintf("primary: exporting %q on %s", p.export, p.addr)
	if plan.Warn != "" {
		msg = plan.Warn + "\n" + msg
	}
	return msg, nil
}

// startPrimary builds the mirror and starts the export and the link loop;
// with rebuilding, the local leg starts resyncing. Callers hold n.mu.
func (n *Node) startPrimary(rebuilding bool) (*primary, error) {
	ctx, cancel := context.WithCancel(n.ctx)
	p := &primary{n: n, ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1), linkDown: make(chan struct{}, 1),
		stopCh: make(chan struct{}), export: n.cfg.Export}
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
	p.srv = nbd.NewServer(nbd.ServerOptions{Logger: n.log, TLS: exportTLS, TLSRequired: n.exportTLSRequired(),
		MaxConnections: n.cfg.MaxConnections, MemoryBudget: n.cfg.MemoryBudget})
	var dev blockdev.Device = p.mir
	if n.cfg.Readahead > 0 {
		p.ra = blockdev.NewReadahead(p.mir, blockdev.ReadaheadOptions{Window: n.cfg.Readahead})
		dev = p.ra
	}
	p.srv.AddExport(nbd.Export{Name: p.export, Description: "netraid volume " + n.sb.Name, Dev: dev, ReadOnly: n.cfg.ReadOnly})
	ln, err := n.listen(n.cfg.Listen)
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
	n.closeRevoked(ctx, &p.wg, p.srv)
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
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	return n.demoteLocked(force, nil)
}

// demoteLocked demotes this node, if it is primary (and, with only, if
// only is its primary still). Callers hold roleMu.
func (n *Node) demoteLocked(force bool, only *primary) (string, error) {
	n.mu.Lock()
	p := n.prim
	n.mu.Unlock()
	if p == nil || (only != nil && p != only) {
		return "already secondary", nil
	}
	if len(n.cfg.OnDemote) > 0 {
		// They stop the service and unmount while the export is up.
		if err := n.runCommands(n.ctx, "on-demote", n.cfg.OnDemote); err != nil {
			if !force {
				return "", fmt.Errorf("%w: the node is still primary; fix it, or 'netraid demote --force'", err)
			}
			n.log.Warn("an on-demote command failed; demoting anyway (forced)", "err", err)
		}
	}
	if c := p.srv.Clients(p.export); c > 0 && !force {
		return "", fmt.Errorf("%d NBD client(s) are connected to the export: unmount and disconnect them first, or --force to cut them off", c)
	}
	serr := p.stop(force)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.prim = nil
	n.primNow.Store(nil)
	n.suspended = ""
	// The peer may be promoted in this node's place: the election goes.
	n.resignLocked()
	if err := n.updateSuper(func(sb *meta.Superblock) { sb.Role = meta.Secondary }); err != nil {
		return "", errors.Join(serr, err)
	}
	if !n.cfg.standalone() {
		n.setPeer(PeerWaiting, nil)
	}
	if serr != nil {
		n.log.Warn("demoted to secondary; stopping the primary failed", "err", serr)
		return "", fmt.Errorf("demoted, but: %w (check this node's disks: 'netraid status')", serr)
	}
	n.log.Info("demoted to secondary")
	return "secondary: export stopped, volume flushed", nil
}

// stop drains the export, stops the link loop and any resync, and
// flushes the mirror.
func (p *primary) stop(force bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// I/O held for a failure that cannot be recorded now fails rather
	// than wait for the drain.
	close(p.stopCh)
	if force {
		p.srv.DropClients(p.export)
	}
	// Drain and flush while the link is still up: after this no write
	// can come, and the peer holds everything this node holds.
	err := errors.Join(unlessFrozen(p.srv.Shutdown(ctx)), unlessFrozen(p.mir.Flush()))
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

// unlessFrozen drops from err the flushes a frozen mirror refused: it
// was frozen on purpose (its held answers failed, for fencing or for a
// generation it could not record), and it has nothing answered left to
// flush. Any other error stays.
func unlessFrozen(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var keep []error
		for _, e := range j.Unwrap() {
			if e = unlessFrozen(e); e != nil {
				keep = append(keep, e)
			}
		}
		return errors.Join(keep...)
	}
	if errors.Is(err, mirror.ErrFrozen) {
		return nil
	}
	return err
}

// kickLink wakes the link loop (connect, a poke, resync full).
func (p *primary) kickLink() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// legFailed runs when the mirror fails a leg, before any operation that
// the leg did not get is answered: it records the failure, and for the
// peer leg a new data generation (decidePeerLost). When that cannot be
// recorded it holds I/O, retrying, until it can or the node stops being
// primary; then the held operations fail (mirror.ErrFrozen): none is
// acknowledged under a generation its peer could be promoted with.
func (p *primary) legFailed(leg *mirror.Leg, err error) error {
	n := p.n
	if leg == p.local {
		return p.localFailed(err)
	}
	n.mu.Lock()
	n.setPeer(PeerConnecting, err)
	var boot string
	if n.peer.hello != nil {
		boot = n.peer.hello.Boot
	}
	n.mu.Unlock()
	// Before the link loop is told: its next handshake reads it.
	if p.local.State() != mirror.InSync && p.mir.Unflushed() {
		// The peer was the only whole copy of writes answered since
		// the last flush: if it crashed, they are gone, and nothing
		// here can copy them back.
		p.peerLostHolding.Store(&boot)
	} else {
		p.peerLostHolding.Store(nil)
	}
	select {
	case p.linkDown <- struct{}{}:
	default:
	}
	switch decidePeerLost(p.stopping.Load(), p.local.State() == mirror.InSync) {
	case peerLostNothing:
		return nil
	case peerLostHold:
		n.log.Warn("peer leg failed while the local copy is rebuilt from it, or failed: no I/O until it is back", "err", err)
		return nil
	}
	var g Gens
	uerr := p.retryHeld("I/O held: cannot record the new generation after losing the peer", func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		g = n.gens()
		g.Diverge()
		if err := n.updateSuper(func(sb *meta.Superblock) { sb.Generations = g.Meta() }); err != nil {
			return err
		}
		if n.suspended != "" {
			n.log.Info("new generation recorded: I/O resumes", "generations", g.String())
		}
		return nil
	}, func(since string, uerr error) string {
		return fmt.Sprintf("I/O held since %s: the peer is lost and the new data generation cannot be recorded (%v); "+
			"writes are neither answered nor failed until it can be (check this node's disks) or the node is demoted", since, uerr)
	})
	if uerr != nil {
		return fmt.Errorf("the peer was lost and the new data generation could not be recorded: %w", uerr)
	}
	n.log.Warn("peer leg failed: serving from the local disks, tracking changes", "err", err, "generations", g.String())
	p.fencePeerLost(g.Current)
	return nil
}

// retryHeld runs try until it succeeds (nil) or this node stops being
// primary (try's last error), waiting retryDelay between attempts. While
// it fails, status says why I/O is held (held, given since when and the
// error; "" when nothing is held for now: status keeps what it says) and
// the error is logged once as msg. What it put in status, it takes out
// when it ends, unless something else has replaced it since.
func (p *primary) retryHeld(msg string, try func() error, held func(since string, err error) string) error {
	n := p.n
	since := time.Now().UTC().Format(time.RFC3339)
	said := ""
	unsay := func() {
		if said != "" && n.suspended == said {
			n.suspended = ""
		}
	}
	for attempt := 0; ; attempt++ {
		err := try()
		n.mu.Lock()
		if err == nil {
			unsay()
			n.mu.Unlock()
			return nil
		}
		if h := held(since, err); h != "" {
			n.suspended, said = h, h
		} else {
			unsay()
			said = ""
		}
		n.logOnce(msg, err)
		n.mu.Unlock()
		select {
		case <-p.stopCh:
			n.mu.Lock()
			unsay()
			n.mu.Unlock()
			return err
		case <-time.After(retryDelay(attempt)):
		}
	}
}

// retryDelay is the wait before attempt+1 of a metadata write that
// failed: short at first, then a second.
func retryDelay(attempt int) time.Duration {
	return min(time.Duration(attempt+1)*50*time.Millisecond, time.Second)
}

// localFailed records that the local disks failed under the primary:
// the volume is served through the peer, and the bitmap on the members
// left records what the local copy misses. When no disk is left to
// record it on, the peer records a new generation instead
// (recordDiskless) before any write only it holds is answered. If the
// peer cannot record it either, nothing is answered (the mirror
// freezes).
func (p *primary) localFailed(err error) error {
	n := p.n
	n.mu.Lock()
	n.log.Error("local disks failed: serving through the peer", "err", err)
	rerr := n.recordFailed(n.failedOf(err), err)
	n.mu.Unlock()
	if !errors.Is(rerr, volume.ErrNoMemberLeft) {
		return nil
	}
	switch err := p.recordDiskless(); {
	case err == nil:
		return nil
	case errors.Is(err, errPeerNotInSync), errors.Is(err, errSelfNotRecorded):
		// Nothing is answered but errors until the peer is back in
		// sync; then not before it records the new generation (and
		// the witness this copy outdated).
		p.holdForDiskless()
		return nil
	default:
		return fmt.Errorf("this node's disks failed and the peer could not record that it holds the only copy: %w", err)
	}
}

// The reasons a primary holds its answers (mirror.HoldAcks).
const (
	// holdFence: the peer is not yet recorded outdated in the witness.
	holdFence = "fence"
	// holdDiskless: no disk is left, and the new generation is not yet
	// recorded (recordDiskless).
	holdDiskless = "diskless"
)

var (
	// errPeerNotInSync: the peer cannot record anything for this copy now.
	errPeerNotInSync = errors.New("the peer is not connected and in sync")
	// errSelfNotRecorded: the witness did not record this node's copy
	// outdated.
	errSelfNotRecorded = errors.New("the witness (etcd) did not record this node's copy outdated")
)

// recordDiskless has the peer record a new current generation for the
// pair (repl.MsgDiskless), which this node keeps in memory (memGens):
// its disks have all failed, the last of them with nothing left to
// record that on, so after a restart they read as they were, naming
// the generation the pair holds with a bitmap that misses what was
// written since. Under a new generation they meet the peer as an older
// copy (a full sync), never as its equal. With a witness, the copy is
// recorded outdated there too (under this node's election key): those
// disks, restarted while the peer is away, would otherwise promote
// themselves without the writes only the peer holds. It is done once;
// done already, it returns nil.
func (p *primary) recordDiskless() error {
	n := p.n
	p.disklessMu.Lock()
	defer p.disklessMu.Unlock()
	if p.disklessDone.Load() {
		return nil
	}
	n.mu.Lock()
	mem := n.memGens
	g := n.gens()
	n.mu.Unlock()
	if mem == nil {
		p.mu.Lock()
		l, remote := p.client, p.remote
		p.mu.Unlock()
		if l == nil || remote == nil || remote.State() != mirror.InSync {
			return errPeerNotInSync
		}
		g.NewCurrent()
		if _, err := l.Send(repl.Message{Kind: repl.MsgDiskless, Gens: g}); err != nil {
			return err
		}
		n.mu.Lock()
		n.memGens = &g
		n.mu.Unlock()
		n.log.Warn("no disk of this node is left to record its failure: the peer recorded a new generation", "generations", g.String())
	}
	if err := p.recordOutdated(n.cfg.Name, g.Current, nil); err != nil {
		return fmt.Errorf("%w: %w", errSelfNotRecorded, err)
	}
	p.disklessDone.Store(true)
	return nil
}

// holdForDiskless holds the answers of the application's operations
// until the peer has recorded a new generation for a copy with no disk
// left (recordDiskless), retrying while the peer cannot; they fail if
// this node stops being primary first. The volume calls it (through
// Node.noMemberLeft) from every bitmap write that persisted nothing, on
// the I/O path, before the write it marks is sent: it does not block.
func (p *primary) holdForDiskless() {
	if p.disklessDone.Load() || !p.disklessBusy.CompareAndSwap(false, true) {
		return
	}
	p.mir.HoldAcks(holdDiskless)
	// The write whose mark called this persisted no bit: it waits too,
	// before any leg sees it, so that nothing reaches the peer's copy
	// alone before the peer has recorded it holds the only one.
	p.mir.HoldWrites()
	p.n.wg.Go(func() {
		defer p.disklessBusy.Store(false)
		record := func() error {
			err := p.recordDiskless()
			switch {
			case err == nil:
			case errors.Is(err, errPeerNotInSync):
				// No copy can take the writes: they fail, rather than
				// wait for a peer that this copy cannot bring back.
				p.mir.FailWrites(fmt.Errorf("mirror: write not sent: no disk of this node is left and %w", err))
			default:
				p.mir.HoldWrites()
			}
			return err
		}
		err := p.retryHeld("I/O held: no disk is left and the peer cannot record the new generation yet", record, func(since string, err error) string {
			if errors.Is(err, errPeerNotInSync) {
				// Nothing succeeds to be held: I/O fails for want of
				// a copy, which status says otherwise.
				return ""
			}
			return fmt.Sprintf("I/O held since %s: every disk of this node failed and the peer has not recorded that it holds the only copy (%v); "+
				"writes are answered once it has, or fail if the node is demoted", since, err)
		})
		if err != nil {
			p.mir.FailAcks(errors.New("the node stopped being primary while its answers were held"))
			return
		}
		p.mir.ReleaseWrites()
		p.mir.ReleaseAcks(holdDiskless)
	})
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

// localDev is the volume's data as this node uses it, the local leg's
// device while primary: the stripe, with I/O that takes longer than the
// disk time-out failed (and so the leg with it). One time-out around the
// stripe, rather than one per member, costs one hand-off per request and
// keeps each member's share of a request one vectored call; the volume
// says which member hangs (failedOf).
func (n *Node) localDev() blockdev.Device {
	if n.cfg.DiskTimeout <= 0 {
		return n.vol.Data()
	}
	return blockdev.WithTimeout(n.vol.Data(), n.cfg.DiskTimeout)
}

// failedOf returns the mask of the members an I/O error of the local data
// puts the blame on: those it names (a stripe.DiskError), and, for a
// time-out, those the volume finds stalled.
func (n *Node) failedOf(err error) uint64 {
	mask := failedMembers(err)
	if errors.Is(err, blockdev.ErrTimeout) && n.cfg.DiskTimeout > 0 {
		mask |= n.vol.Stalled(n.cfg.DiskTimeout / 2)
	}
	return mask
}
