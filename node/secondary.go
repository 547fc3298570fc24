package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/nbd"
)

// secondaryState is the accepting side of the replication link.
type secondaryState struct {
	srv       *nbd.Server
	ln        net.Listener
	done      chan struct{}
	syncTotal int64
}

// startPeerServer accepts the primary's replication link on ListenPeer.
// It runs for the node's whole life; a primary refuses every hello.
func (n *Node) startPeerServer(ctx context.Context) error {
	n.mu.Lock()
	volume := n.sb.Name
	n.mu.Unlock()
	peerTLS, err := n.peerTLS(volume)
	if err != nil {
		return err
	}
	ln, err := n.cfg.ListenFunc("tcp", n.cfg.ListenPeer)
	if err != nil {
		return fmt.Errorf("node: peer address %s: %w", n.cfg.ListenPeer, err)
	}
	srv := nbd.NewServer(nbd.ServerOptions{
		Logger:  n.log.With("side", "secondary"),
		Hello:   n.onHello,
		Control: n.onControl,
		// The primary pings every half time-out: a link silent for
		// longer than a few of those is dead, even if no FIN came.
		IdleTimeout: 3 * n.cfg.PeerTimeout,
		// With certificates, only a node of this volume gets in.
		TLS:         peerTLS,
		TLSRequired: peerTLS != nil,
	})
	err = srv.AddExport(nbd.Export{Name: peerExport, Description: "netraid replication", Dev: watchedData{Device: n.vol.Data(), n: n}, RequireHello: true})
	if err != nil {
		ln.Close()
		return err
	}
	n.sec.srv, n.sec.ln, n.sec.done = srv, ln, make(chan struct{})
	go func() {
		defer close(n.sec.done)
		if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			n.log.Error("peer listener stopped", "err", err)
		}
	}()
	return nil
}

func (n *Node) stopPeerServer() {
	if n.sec.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.sec.srv.Shutdown(ctx)
	<-n.sec.done
}

// onHello meets a primary: the secondary checks identity, size, role and
// generations, and refuses with a message that says what to do.
func (n *Node) onHello(_ context.Context, _ string, req []byte) ([]byte, error) {
	h, err := decodeHello(req)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if h.Role == "secondary" {
		return n.onPoke(h)
	}
	// refuse says why, and tells the primary this node's Hello and, when
	// the generations decided (v >= 0), the verdict, as data rather than
	// in the text.
	refuse := func(v Verdict, format string, a ...any) ([]byte, error) {
		err := fmt.Errorf(format, a...)
		n.setPeer("standalone", err)
		reply := n.helloFor("secondary")
		if v >= 0 {
			n.peer.verdict, n.peer.met = v, true
			reply.Verdict = v.String()
		}
		n.peer.hello = &h
		n.log.Error("refused a primary", "peer", h.SetUUID, "reason", err)
		return nil, &nbd.HelloRefusal{Err: err, Data: encode(reply)}
	}
	switch {
	case n.disconnected:
		return refuse(-1, "the secondary was disconnected by its operator: run 'netraid connect' there")
	case n.sb.FailedMembers != 0:
		return refuse(-1, "the secondary's member disk(s) %#x failed: replace them there ('netraid disk replace OLD NEW')", n.sb.FailedMembers)
	case h.Name != n.sb.Name:
		return refuse(Unrelated, "another volume: the primary serves volume %q and this node volume %q", h.Name, n.sb.Name)
	case h.Size > n.size:
		return refuse(-1, "this node's volume (%d bytes) is smaller than the primary's (%d bytes): give it disks at least as large, and create it again", n.size, h.Size)
	case n.prim != nil:
		return refuse(SplitBrain, "%s: both nodes are primary (generations: %s on the node that refused, %s on the node that dialed): demote the node whose changes are to be discarded and run 'netraid connect --discard-local' there",
			SplitBrain, n.gens(), h.Gens)
	}
	v := Decide(h.Gens, n.gens(), n.discardLocal)
	n.peer.verdict, n.peer.hello, n.peer.met = v, &h, true
	switch v {
	case SplitBrain:
		return refuse(v, "%s: both nodes took writes since they parted (generations: %s on the primary, %s on the secondary): "+
			"run 'netraid connect --discard-local' on the node whose changes are to be thrown away (demote it first if it is primary)", v, h.Gens, n.gens())
	case Unrelated:
		return refuse(v, "%s: the primary's data and this node's share no history (generations: %s on the primary, %s on the secondary): "+
			"if this node's data may go, run 'netraid connect --discard-local' here", v, h.Gens, n.gens())
	case TargetNewer:
		return refuse(v, "%s: this secondary holds newer data than the primary (generations: %s on the primary, %s on the secondary): "+
			"demote the primary and promote this node, or run 'netraid connect --discard-local' here to take the primary's data", v, h.Gens, n.gens())
	}
	// From here on this node takes the primary's writes, which its used
	// bitmap will not record: say so before the first (see promote).
	if n.sb.Flags&meta.FlagUsedIncomplete == 0 {
		if err := n.updateSuper(func(sb *meta.Superblock) { sb.Flags |= meta.FlagUsedIncomplete }); err != nil {
			return refuse(-1, "recording that this node takes the primary's writes: %v", err)
		}
	}
	// A primary that dials again found its old link dead; this side may
	// not have noticed yet. The new link wins.
	n.sec.srv.DropClients(peerExport)
	n.setPeer("connected", nil)
	n.peer.lastErr = ""
	reply := n.helloFor("secondary")
	reply.Verdict = v.String()
	reply.Discard = n.discardLocal
	reply.NeedFull = n.sb.Flags&meta.FlagNeedFullSync != 0
	reply.Rebuild = n.rebuildPoint()
	reply.Dirty = n.bm.Snapshot()
	n.log.Info("primary connected", "verdict", v.String(), "peer_generations", h.Gens.String())
	return encode(reply), nil
}

// onPoke answers a secondary that says it is up (pokePeer): a primary of
// the same volume dials it at once instead of at its next attempt. Either
// way the poke is refused: the link is always the primary's dial. Called
// with n.mu held.
func (n *Node) onPoke(h Hello) ([]byte, error) {
	if n.prim == nil || h.Name != n.sb.Name {
		return nil, &nbd.HelloRefusal{Err: errors.New("this node is not the volume's primary: it does not dial")}
	}
	select {
	case n.prim.kick <- struct{}{}:
	default:
	}
	n.log.Info("the secondary says it is up: dialing it")
	return nil, &nbd.HelloRefusal{Err: errors.New("this node is primary: it dials the secondary now")}
}

// pokePeer tells the peer, once, that this node is up, so that a primary
// dials it now rather than at its next attempt (every ReconnectInterval):
// a restarted secondary is back in sync sooner. The answer is always a
// refusal; a peer that is down or not primary changes nothing.
func (n *Node) pokePeer(ctx context.Context) {
	n.mu.Lock()
	hello := n.helloFor("secondary")
	n.mu.Unlock()
	peerTLS, err := n.peerTLS(hello.Name)
	if err != nil {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, n.cfg.PeerTimeout)
	defer cancel()
	c, err := n.dialPeer(dctx, nbd.ClientOptions{Export: peerExport, Timeout: n.cfg.PeerTimeout, Hello: encode(hello), TLS: peerTLS})
	if err == nil {
		c.Close()
	}
	n.log.Debug("told the peer this node is up", "answer", err)
}

// onControl handles the primary's messages about the resync.
func (n *Node) onControl(_ context.Context, _ string, req []byte) ([]byte, error) {
	var m Message
	if err := json.Unmarshal(req, &m); err != nil {
		return nil, fmt.Errorf("bad control message: %w", err)
	}
	if m.Kind == MsgRebuildCursor {
		if m.Rebuild == nil {
			return nil, errors.New("rebuild cursor message without a cursor")
		}
		// The primary flushed this node's copy before it sent the
		// cursor; recordRebuild flushes again before recording it.
		if err := n.recordRebuild(m.Rebuild.Member, m.Rebuild.Cursor); err != nil {
			return nil, err
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		return encode(n.helloFor("secondary")), nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch m.Kind {
	case MsgSyncStart:
		g := n.gens()
		g.SyncStartedAsTarget(m.Gens)
		n.sec.syncTotal = m.Total
		err := n.updateSuper(func(sb *meta.Superblock) {
			setGens(sb, g)
			sb.DiskState = meta.Inconsistent
			sb.ResyncCursor, sb.ResyncTotal = 0, uint64(m.Total)
		})
		if err != nil {
			return nil, err
		}
		n.log.Info("resync from the primary started", "bytes", m.Total)
	case MsgSyncDone:
		g := n.gens()
		g.SyncedAsTarget(m.Gens)
		err := n.updateSuper(func(sb *meta.Superblock) {
			setGens(sb, g)
			sb.DiskState = meta.UpToDate
			sb.Flags &^= meta.FlagNeedFullSync
			sb.ClearRebuild()
			sb.ResyncCursor, sb.ResyncTotal = 0, 0
		})
		if err != nil {
			return nil, err
		}
		// This node's own dirty regions were sent in the hello and are
		// now covered by the resync.
		if err := n.bm.ClearAll(); err != nil {
			return nil, err
		}
		n.discardLocal = false
		n.sec.syncTotal = 0
		n.log.Info("in sync with the primary", "generations", g.String())
	case MsgPing:
	default:
		return nil, fmt.Errorf("unknown control message %q", m.Kind)
	}
	return encode(n.helloFor("secondary")), nil
}

// primaryConnected reports whether a primary is attached to the peer
// export now. Callers hold n.mu.
func (n *Node) primaryConnected() bool {
	return n.sec.srv != nil && n.sec.srv.Clients(peerExport) > 0
}
