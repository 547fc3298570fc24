package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/mirror"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/repl"
	"github.com/netraid/netraid/resync"
)

// linkLoop keeps the primary connected to its secondary: dial, meet,
// resync, then wait for the link to fail, and again, until ctx ends.
func (p *primary) linkLoop(ctx context.Context) {
	n := p.n
	for ctx.Err() == nil {
		n.mu.Lock()
		down := n.disconnected
		if !down {
			n.setPeer("connecting", nil)
		}
		n.mu.Unlock()
		if !down {
			err := p.connectOnce(ctx)
			if err != nil && ctx.Err() == nil {
				n.log.Debug("peer link", "err", err)
			}
		}
		select {
		case <-ctx.Done():
		case <-p.kick:
		case <-time.After(n.cfg.ReconnectInterval):
		}
	}
}

// connectOnce dials the peer, meets it, resyncs, and returns when the
// link fails.
func (p *primary) connectOnce(ctx context.Context) error {
	n := p.n
	n.mu.Lock()
	hello := n.helloFor("primary")
	n.mu.Unlock()
	peerTLS, err := n.peerTLS(hello.Name)
	if err != nil {
		n.mu.Lock()
		if n.peer.lastErr != err.Error() {
			n.log.Error("replication link: cannot load this node's certificates", "err", err)
		}
		n.setPeer("standalone", err)
		n.mu.Unlock()
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, n.cfg.PeerTimeout)
	c, err := n.dialPeer(dctx, nbd.ClientOptions{Export: peerExport, Timeout: n.cfg.PeerTimeout, Hello: encode(hello), TLS: peerTLS})
	cancel()
	if err != nil {
		var he *nbd.HelloError
		n.mu.Lock()
		if errors.As(err, &he) {
			// The peer refused the meeting: split brain, another volume…
			n.setPeer("standalone", errors.New(he.Msg))
			n.refusedBy(he.Data)
			n.log.Error("peer refused the connection", "reason", he.Msg)
		} else if tlsRefused(err) {
			// A certificate either side will not take: no data moved.
			if n.peer.lastErr != err.Error() {
				n.log.Error("replication link refused by TLS", "peer", n.cfg.Peer, "err", err)
			}
			n.setPeer("standalone", err)
		} else {
			n.setPeer("connecting", err)
		}
		n.mu.Unlock()
		return err
	}
	defer c.Close()
	peer, err := decodeHello(c.HelloReply())
	if err != nil {
		return err
	}
	if c.Size() < n.size {
		// The secondary checks this too; never mirror to a smaller copy.
		return p.refuse(fmt.Errorf("the peer's volume is %d bytes, smaller than this node's %d", c.Size(), n.size))
	}
	n.mu.Lock()
	v := Decide(n.gens(), peer.Gens, peer.Discard)
	own := p.ownRebuild()
	var theirs *RebuildPoint
	if peer.NeedFull && !v.Refused() && own == nil {
		if theirs = n.peerRebuild(v, peer); theirs == nil {
			v = FullSync
		}
	}
	n.peer.verdict, n.peer.hello, n.peer.met = v, &peer, true
	n.mu.Unlock()
	if v.Refused() {
		return p.refuse(fmt.Errorf("%v: local %s, peer %s", v, hello.Gens, peer.Gens))
	}
	if own != nil {
		if err := checkRebuildSource(own, v, peer); err != nil {
			return p.refuse(err)
		}
	}
	var dev blockdev.Device = c
	if c.Size() > n.size {
		s, err := blockdev.NewSection(c, 0, n.size)
		if err != nil {
			return err
		}
		dev = s
	}
	return p.runLink(ctx, c, dev, peer, v, own, theirs)
}

// refuse records a meeting this node will not go through with.
func (p *primary) refuse(err error) error {
	p.n.mu.Lock()
	p.n.setPeer("standalone", err)
	p.n.mu.Unlock()
	p.n.log.Error("refusing to sync with the peer", "err", err)
	return err
}

// runLink attaches the peer as a resyncing leg, copies what it lacks,
// marks it in sync, and waits for the link to end. With own, this node's
// copy is the one being rebuilt: the peer joins in sync and is the
// source. With theirs, the peer's is: the resync is a rebuild of its
// member from the cursor on.
func (p *primary) runLink(ctx context.Context, c *nbd.Client, dev blockdev.Device, peer Hello, v Verdict, own, theirs *RebuildPoint) error {
	n := p.n
	if len(peer.Dirty) > 0 {
		if err := n.bm.Merge(peer.Dirty); err != nil {
			return fmt.Errorf("merging the peer's dirty bitmap: %w", err)
		}
	}
	full := v == FullSync
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
	leg, err := p.mir.AddLeg("peer", dev, state, false)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.client, p.remote = c, leg
	p.mu.Unlock()
	n.mu.Lock()
	n.setPeer("connected", nil)
	n.peer.lastErr = ""
	n.mu.Unlock()
	n.log.Info("peer connected", "verdict", v.String(), "peer_generations", peer.Gens.String(), "out_of_sync", n.bm.DirtyBytes())

	// Drain a stale signal from the link before this one.
	select {
	case <-p.linkDown:
	default:
	}
	kctx, stopKeepalive := context.WithCancel(ctx)
	var kwg sync.WaitGroup
	defer kwg.Wait()
	defer stopKeepalive()
	kwg.Go(func() { p.keepalive(kctx, c, leg) })
	if own != nil {
		if err := p.rebuildLocal(ctx, *own, p.beginRebuild()); err != nil {
			return err
		}
	} else if err := p.resyncPeer(ctx, c, full, theirs); err != nil {
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

// keepalive finds a link that died while idle: it pings the secondary
// every half time-out and fails the peer leg when a ping fails, so that
// the primary starts a new generation before it answers another write.
func (p *primary) keepalive(ctx context.Context, c *nbd.Client, leg *mirror.Leg) {
	t := time.NewTicker(p.n.cfg.PeerTimeout / 2)
	defer t.Stop()
	ping := encode(Message{Kind: MsgPing})
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.Done():
			p.mir.FailLeg(leg, "replication link", c.Err())
			return
		case <-t.C:
			if _, err := c.Control(ping); err != nil {
				if ctx.Err() == nil {
					p.mir.FailLeg(leg, "replication link keepalive", err)
				}
				return
			}
		}
	}
}

// resyncPeer copies every dirty region to the peer (with rb, the regions
// of a rebuild of its member from rb's cursor) and records the outcome in
// both nodes' generations.
func (p *primary) resyncPeer(ctx context.Context, c *nbd.Client, full bool, rb *RebuildPoint) error {
	n := p.n
	total := n.bm.DirtyBytes()
	var plan mirror.RebuildOptions
	if rb != nil {
		n.mu.Lock()
		var err error
		plan, err = n.rebuildPlan(*rb)
		n.mu.Unlock()
		if err != nil {
			return err
		}
		defer plan.Visit.Close()
		total = plan.Visit.DirtyBytes()
	}
	n.mu.Lock()
	g := n.gens()
	if total > 0 && g.Bitmap == 0 {
		// The target will hold a mix of old and new until the resync
		// ends: name the old data so that an interrupted resync resumes
		// from the bitmap instead of starting again.
		g.Diverge()
		if err := n.updateSuper(func(sb *meta.Superblock) { setGens(sb, g) }); err != nil {
			n.mu.Unlock()
			return err
		}
	}
	n.mu.Unlock()
	if total > 0 {
		if _, err := c.Control(encode(Message{Kind: MsgSyncStart, Gens: g, Total: total})); err != nil {
			return fmt.Errorf("peer: sync start: %w", err)
		}
	}
	n.mu.Lock()
	rate, paused := n.cfg.ResyncRate, n.resyncPaused
	n.mu.Unlock()
	var rs *resyncState
	var eng *resync.Engine
	if rb != nil {
		n.log.Info("rebuilding the peer's replaced member instead of a full sync", "member", rb.Member, "from", rb.Cursor, "regions_bytes", total)
		rs = newResyncState(rb.kind(fmt.Sprintf("rebuild of the peer's member %d", rb.Member)), total, rate)
		eng = n.rebuildEngine(*rb, rate, rs, func(cur int64) error {
			_, err := c.Control(encode(Message{Kind: MsgRebuildCursor, Rebuild: &RebuildPoint{Member: rb.Member, Cursor: cur}}))
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
		err = p.mir.Rebuild(ctx, leg, eng, plan)
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
	g = n.gens()
	n.mu.Unlock()
	resp, err := c.Control(encode(Message{Kind: MsgSyncDone, Gens: g}))
	if err != nil {
		return fmt.Errorf("peer: sync done: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if h, err := decodeHello(resp); err == nil {
		// The secondary answers with its state now: up to date.
		n.peer.hello = &h
	}
	if leg.State() != mirror.InSync {
		return errors.New("peer leg left the in-sync state before the resync was recorded")
	}
	g = n.gens()
	g.SyncedAsSource()
	return n.updateSuper(func(sb *meta.Superblock) {
		setGens(sb, g)
		sb.PeerSetUUID, _ = meta.ParseUUID(n.peer.helloSet())
		sb.ResyncCursor, sb.ResyncTotal = 0, 0
	})
}

func (s peerStatus) helloSet() string {
	if s.hello == nil {
		return ""
	}
	return s.hello.SetUUID
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
// comparing generations, its verdict. A refusal with nothing attached (an
// older peer, or a reply too large) leaves the peer's record as it was.
// Callers hold n.mu.
func (n *Node) refusedBy(data []byte) {
	if len(data) == 0 {
		return
	}
	h, err := decodeHello(data)
	if err != nil {
		n.log.Warn("peer refused the connection with an unreadable hello", "err", err)
		return
	}
	n.peer.hello = &h
	var v Verdict
	if v.UnmarshalText([]byte(h.Verdict)) == nil && v != repl.NoVerdict {
		n.peer.verdict, n.peer.met = v, true
	}
}
