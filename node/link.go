package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/mirror"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/pki"
	"github.com/netraid/netraid/repl"
	"github.com/netraid/netraid/resync"
)

// linkLoop keeps the primary connected to its secondary: dial, meet,
// resync, then wait for the link to fail, and again, until ctx ends.
// After a refusal it waits longer each time (up to a minute), so that a
// pair that will not meet until an operator acts is not dialed and
// logged every second; connect and a poke from the peer dial at once.
func (p *primary) linkLoop(ctx context.Context) {
	n := p.n
	wait := n.cfg.ReconnectInterval
	for ctx.Err() == nil {
		n.mu.Lock()
		down := n.disconnected
		if !down && n.peer.state != PeerStandalone {
			n.setPeer(PeerConnecting, nil)
		}
		n.mu.Unlock()
		if !down {
			err := p.connectOnce(ctx)
			if err != nil && ctx.Err() == nil {
				n.linkFailed(err)
			}
			n.mu.Lock()
			refused := n.peer.state == PeerStandalone
			n.mu.Unlock()
			if refused {
				wait = min(2*wait, time.Minute)
			} else {
				wait = n.cfg.ReconnectInterval
			}
		}
		select {
		case <-ctx.Done():
		case <-p.kick:
			wait = n.cfg.ReconnectInterval
		case <-time.After(wait):
		}
	}
}

// linkFailed logs why the link failed or ended: once for each new
// reason (a dead peer is dialed every ReconnectInterval).
func (n *Node) linkFailed(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) {
		n.log.Debug("peer link", "err", err)
		return
	}
	n.logOnce("peer link failed", err)
}

// connectOnce dials the peer, meets it, resyncs, and returns when the
// link fails.
func (p *primary) connectOnce(ctx context.Context) error {
	n := p.n
	n.mu.Lock()
	hello := n.helloFor()
	n.mu.Unlock()
	peerTLS, err := n.peerTLS(hello.Name)
	if err != nil {
		n.mu.Lock()
		n.logOnce("replication link: cannot load this node's certificates", err)
		n.setPeer(PeerStandalone, err)
		n.mu.Unlock()
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, n.cfg.PeerTimeout)
	l, err := n.dialLink(dctx, hello, peerTLS)
	cancel()
	if err != nil {
		var r *repl.Refusal
		n.mu.Lock()
		switch {
		case errors.As(err, &r):
			// The peer refused the meeting: split brain, another volume…
			n.setPeer(PeerStandalone, errors.New(r.Msg))
			n.refusedBy(r.Peer)
			n.logOnce("peer refused the connection", errors.New(r.Msg))
		case errors.Is(err, nbd.ErrAuth):
			n.logOnce("replication link refused: the authentication failed", err, "peer", n.cfg.Peer)
			n.setPeer(PeerStandalone, fmt.Errorf("the authentication failed (a different secret or peer name on the two nodes?): %w", err))
		case tlsRefused(err):
			// A certificate either side will not take: no data moved.
			n.logOnce("replication link refused by TLS", err, "peer", n.cfg.Peer)
			n.setPeer(PeerStandalone, err)
		default:
			n.setPeer(PeerConnecting, err)
		}
		n.mu.Unlock()
		return err
	}
	defer l.Close()
	peer := l.Peer
	n.mu.Lock()
	known := n.sb.PeerSetUUID
	n.mu.Unlock()
	if !known.IsZero() && peer.SetUUID != known.String() {
		return p.refuse(fmt.Errorf("the peer's volume (set %s) is not the one this node met (set %s): if the peer's machine or disks were replaced, run 'netraid forget-peer' on this node",
			peer.SetUUID, known))
	}
	if n.cfg.PeerName != "" && peer.Node != n.cfg.PeerName {
		return p.refuse(fmt.Errorf("the peer answered as %q, not %q (--peer-name)", peer.Node, n.cfg.PeerName))
	}
	if l.Size() < n.size {
		// The secondary checks this too; never mirror to a smaller copy.
		return p.refuse(fmt.Errorf("the peer's volume is %d bytes, smaller than this node's %d", l.Size(), n.size))
	}
	n.mu.Lock()
	v := repl.Decide(n.gens(), peer.Gens, peer.Discard)
	own := p.ownRebuild()
	localFailed := p.local.State() == mirror.Failed
	var theirs *RebuildPoint
	if peer.NeedFull && !v.Refused() && own == nil {
		if theirs = n.peerRebuild(v, peer); theirs == nil {
			v = repl.FullSync
		}
	}
	n.peer.verdict, n.peer.hello, n.peer.met = v, &peer, true
	n.warnVersion(peer.Software)
	n.mu.Unlock()
	if v.Refused() {
		return p.refuse(fmt.Errorf("%v: local %s, peer %s", v, hello.Gens, peer.Gens))
	}
	mayLack := peerMayLack(p.peerLostHolding.Load(), peer)
	if own != nil {
		if err := checkRebuildSource(own, v, peer, mayLack); err != nil {
			return p.refuse(err)
		}
	}
	if localFailed && own == nil {
		// Nothing here can be copied: the peer serves in this node's
		// place if it holds everything, else it is the copy to keep.
		if err := checkDisklessSource(v, peer, mayLack); err != nil {
			return p.refuse(err)
		}
	}
	var dev blockdev.Device = l
	if l.Size() > n.size {
		s, err := blockdev.NewSection(l, 0, n.size)
		if err != nil {
			return err
		}
		dev = s
	}
	return p.runLink(ctx, l, dev, peer, v, own, theirs, localFailed)
}

// dialLink connects to the peer's replication port and runs the
// handshake.
func (n *Node) dialLink(ctx context.Context, hello repl.Hello, tc *tls.Config) (*repl.Link, error) {
	conn, err := n.cfg.DialFunc(ctx, "tcp", n.cfg.Peer)
	if err != nil {
		return nil, fmt.Errorf("node: dial peer %s: %w", n.cfg.Peer, err)
	}
	return repl.Connect(ctx, conn, repl.DialOptions{Hello: hello, Timeout: n.cfg.PeerTimeout, TLS: tc, Secret: n.secret})
}

// refuse records a meeting this node will not go through with.
func (p *primary) refuse(err error) error {
	p.n.mu.Lock()
	defer p.n.mu.Unlock()
	p.n.setPeer(PeerStandalone, err)
	p.n.logOnce("refusing to sync with the peer", err)
	return err
}

// runLink attaches the peer as a leg and copies what it lacks, marks it
// in sync, and waits for the link to end. With own, this node's copy is
// the one being rebuilt: the peer joins in sync and is the source. With
// localFailed, this node's disks failed: the peer joins in sync and
// serves. With theirs, the peer's copy is rebuilt: the resync is a
// rebuild of its member from the cursor on.
//
// The peer joins under a hold of the mirror: no write runs while the
// peer is told what it will be sent (repl.MsgSyncStart, which it records
// durably, as inconsistent unless it lacks nothing) and the leg joins,
// so that the bitmap's dirty regions at that moment are exactly what it
// lacks, and it takes no write before it knows.
func (p *primary) runLink(ctx context.Context, l *repl.Link, dev blockdev.Device, peer repl.Hello, v Verdict, own, theirs *RebuildPoint, localFailed bool) error {
	n := p.n
	if len(peer.Dirty) > 0 {
		if err := n.bm.Merge(peer.Dirty); err != nil {
			return fmt.Errorf("merging the peer's dirty bitmap: %w", err)
		}
	}
	full := v == repl.FullSync
	if full {
		if err := n.bm.SetAll(); err != nil {
			return err
		}
	}
	p.mu.Lock()
	old := p.remote
	p.remote = nil
	p.mu.Unlock()
	if old != nil {
		if err := p.mir.RemoveLeg(old); err != nil {
			return fmt.Errorf("removing the old peer leg: %w", err)
		}
	}
	state := mirror.Resyncing
	if own != nil {
		// A rebuild of the local leg that the link's end cut off may not
		// have returned yet: one at a time.
		if err := p.waitRebuild(ctx); err != nil {
			return err
		}
		state = mirror.InSync
	}
	if localFailed && own == nil {
		state = mirror.InSync
	}
	var plan *mirror.RebuildOptions
	if theirs != nil {
		n.mu.Lock()
		rp, err := n.rebuildPlan(*theirs)
		n.mu.Unlock()
		if err != nil {
			return err
		}
		defer rp.Visit.Close()
		plan = &rp
	}
	hctx, cancel := context.WithTimeout(ctx, n.cfg.PeerTimeout)
	release, err := p.mir.Hold(hctx)
	cancel()
	if err != nil {
		return fmt.Errorf("holding I/O to attach the peer: %w", err)
	}
	leg, total, err := p.attachPeer(l, dev, state, v, state == mirror.InSync, plan)
	release()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.client, p.remote = l, leg
	p.mu.Unlock()
	n.mu.Lock()
	n.setPeer(PeerConnected, nil)
	n.peer.lastErr = ""
	delete(n.lastLogged, "peer refused the connection")
	delete(n.lastLogged, "refusing to sync with the peer")
	n.mu.Unlock()
	n.log.Info("peer connected", "verdict", v.String(), "peer_generations", peer.Gens.String(), "out_of_sync", total)

	// Drain a stale signal from the link before this one.
	select {
	case <-p.linkDown:
	default:
	}
	kctx, stopKeepalive := context.WithCancel(ctx)
	var kwg sync.WaitGroup
	defer kwg.Wait()
	defer stopKeepalive()
	kwg.Go(func() { p.keepalive(kctx, l, leg) })
	if own != nil {
		if err := p.rebuildLocal(ctx, *own, p.beginRebuild()); err != nil {
			return err
		}
	} else if localFailed {
		n.log.Warn("this node's disks failed: the volume is served through the peer", "peer_generations", peer.Gens.String())
	} else if err := p.resyncPeer(ctx, l, full, theirs, plan, total); err != nil {
		p.mir.FailLeg(leg, "resync", err)
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.linkDown:
	}
	return errors.New("peer leg failed")
}

// attachPeer tells the peer what it will be sent and attaches its leg;
// the mirror is held. It returns the leg and the bytes to copy.
func (p *primary) attachPeer(l *repl.Link, dev blockdev.Device, state mirror.LegState, v Verdict, source bool, plan *mirror.RebuildOptions) (*mirror.Leg, int64, error) {
	n := p.n
	total := n.bm.DirtyBytes()
	if plan != nil {
		total = plan.Visit.DirtyBytes()
	}
	n.mu.Lock()
	g := n.gens()
	if total > 0 && g.Bitmap == 0 && !source {
		// The target will hold a mix of old and new until the resync
		// ends: name the old data so that an interrupted resync resumes
		// from the bitmap instead of starting again.
		g.Diverge()
		if err := n.updateSuper(func(sb *meta.Superblock) { sb.Generations = g.Meta() }); err != nil {
			n.mu.Unlock()
			return nil, 0, err
		}
	}
	n.mu.Unlock()
	m := repl.Message{Kind: repl.MsgSyncStart, Gens: g, Total: total, Verdict: v}
	if source {
		// The peer is the source of this node's rebuild: it lacks
		// nothing, and is told so.
		m.Total, m.Verdict = 0, repl.NoSync
	}
	if _, err := l.Send(m); err != nil {
		return nil, 0, fmt.Errorf("peer: %w", err)
	}
	leg, err := p.mir.AddLeg("peer", dev, state, false)
	if err != nil {
		return nil, 0, err
	}
	return leg, m.Total, nil
}

// keepalive finds a link that died while idle: it pings the secondary
// every PingInterval and fails the peer leg (and closes the link) when a
// ping is not answered within PingTimeout, so that the primary starts a
// new generation before it answers another write.
func (p *primary) keepalive(ctx context.Context, l *repl.Link, leg *mirror.Leg) {
	n := p.n
	t := time.NewTicker(n.cfg.PingInterval)
	defer t.Stop()
	fail := func(op string, err error) {
		p.mir.FailLeg(leg, op, err)
		l.Close()
	}
	var rev *pki.Revocations
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.Done():
			fail("replication link", l.Err())
			return
		case <-t.C:
			if err := n.peerRevoked(&rev, l.PeerCertificate()); err != nil {
				n.log.Warn("closed the replication link: its peer's certificate was revoked", "err", err)
				fail("replication link", err)
				return
			}
			answer := make(chan error, 1)
			go func() {
				_, err := l.Send(repl.Message{Kind: repl.MsgPing})
				answer <- err
			}()
			var err error
			select {
			case err = <-answer:
			case <-time.After(n.cfg.PingTimeout):
				err = fmt.Errorf("no answer to a ping within %v", n.cfg.PingTimeout)
			case <-ctx.Done():
				return
			}
			if err != nil {
				if ctx.Err() == nil {
					fail("replication link keepalive", err)
				}
				return
			}
		}
	}
}

// resyncPeer copies every dirty region to the peer (with rb, the regions
// of plan: a rebuild of its member from rb's cursor), total bytes, and
// records the outcome in both nodes' generations.
func (p *primary) resyncPeer(ctx context.Context, l *repl.Link, full bool, rb *RebuildPoint, plan *mirror.RebuildOptions, total int64) error {
	n := p.n
	n.mu.Lock()
	rate, paused := n.cfg.ResyncRate, n.resyncPaused
	n.mu.Unlock()
	var rs *resyncState
	var eng *resync.Engine
	if rb != nil {
		n.log.Info("rebuilding the peer's replaced member instead of a full sync", "member", rb.Member, "from", rb.Cursor, "regions_bytes", total)
		rs = newResyncState(rebuildKind(*rb, fmt.Sprintf("rebuild of the peer's member %d", rb.Member)), total, rate)
		eng = n.rebuildEngine(*rb, rate, rs, func(cur int64) error {
			_, err := l.Send(repl.Message{Kind: repl.MsgRebuildCursor, Rebuild: &RebuildPoint{Member: rb.Member, Cursor: cur}})
			return err
		}, nil)
	} else {
		rs = newResyncState(kindOf(full, total), total, rate)
		eng = resync.NewEngine(resync.Options{
			Rate:       rate,
			Adaptive:   n.cfg.ResyncAdaptive,
			SkipUnused: full,
			Progress:   rs.update,
		})
	}
	if paused {
		eng.Pause()
	}
	p.mu.Lock()
	leg := p.remote
	p.sync, p.engine = rs, eng
	p.mu.Unlock()
	var err error
	if rb != nil {
		err = p.mir.Rebuild(ctx, leg, eng, *plan)
	} else {
		err = p.mir.Resync(ctx, leg, eng)
	}
	p.mu.Lock()
	p.sync, p.engine = nil, nil
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("resync to the peer: %w", err)
	}
	n.log.Info("peer in sync", "copied", total)
	// Tell the target first: if this node dies before recording its own
	// side, the next meeting finds the same generation and has nothing
	// to do rather than a full sync.
	n.mu.Lock()
	g := n.gens()
	n.mu.Unlock()
	h, err := l.Send(repl.Message{Kind: repl.MsgSyncDone, Gens: g})
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	// The peer holds every write and knows it: its outdated record goes,
	// unless the link is lost again first. Apart, so that a witness that
	// does not answer does not hold the peer's learning that it is up to
	// date.
	n.wg.Go(func() {
		p.clearRecordIf(n.cfg.PeerName, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.remote == leg && leg.State() == mirror.InSync
		})
	})
	n.mu.Lock()
	defer n.mu.Unlock()
	// The secondary answers with its state now: up to date.
	n.peer.hello = &h
	if leg.State() != mirror.InSync {
		return errors.New("peer leg left the in-sync state before the resync was recorded")
	}
	g = n.gens()
	g.SyncedAsSource()
	return n.updateSuper(func(sb *meta.Superblock) {
		sb.Generations = g.Meta()
		sb.PeerSetUUID, _ = meta.ParseUUID(h.SetUUID)
		sb.ResyncCursor, sb.ResyncTotal = 0, 0
		if full {
			// The first verify after a full sync compares every region.
			sb.Flags |= meta.FlagNeedFullVerify
		}
	})
}

func kindOf(full bool, total int64) string {
	switch {
	case full:
		return "full"
	case total == 0:
		return "none"
	}
	return "bitmap"
}

// refusedBy records what a secondary that refused the hello said of
// itself: its Hello (generations, role) and, if the refusal came from
// comparing generations, its verdict. A refusal with nothing attached
// leaves the peer's record as it was. Callers hold n.mu.
func (n *Node) refusedBy(h *repl.Hello) {
	if h == nil {
		return
	}
	n.peer.hello = h
	if h.Verdict != repl.NoVerdict {
		n.peer.verdict, n.peer.met = h.Verdict, true
	}
}
