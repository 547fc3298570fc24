package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/repl"
)

// secondaryState is the accepting side of the replication link.
type secondaryState struct {
	srv       *nbd.Server
	ln        net.Listener
	done      chan struct{}
	syncTotal int64
	// link is the primary's link: from its accepted hello until it ends,
	// is superseded or this node is promoted.
	link *inbound
	// data is this node's data as the link writes it.
	data watchedData
}

// detect is how long a silent link takes to be declared dead: the
// primary pings every PingInterval and waits PingTimeout for the answer.
func (c *Config) detect() time.Duration { return c.PingInterval + c.PingTimeout }

// startPeerServer accepts the primary's replication link on ListenPeer.
// It runs for the node's whole life; while primary, the node refuses
// every hello.
func (n *Node) startPeerServer(ctx context.Context) error {
	n.mu.Lock()
	volume := n.sb.Name
	n.mu.Unlock()
	peerTLS, err := n.peerTLS(volume)
	if err != nil {
		return err
	}
	ln, err := n.listenTCP(n.cfg.ListenPeer)
	if err != nil {
		return fmt.Errorf("node: peer address %s: %w", n.cfg.ListenPeer, err)
	}
	n.sec.data = watchedData{Device: n.localDev(), n: n}
	srv, err := repl.NewServer(secHandler{n}, repl.ServerOptions{
		Logger: n.log.With("side", "secondary"),
		Dev:    n.sec.data,
		TLS:    peerTLS,
		Secret: n.secret,
		// The primary pings every PingInterval: a link silent for longer
		// than an interval and a time-out is dead, even if no FIN came.
		IdleTimeout: n.cfg.detect(),
	})
	if err != nil {
		ln.Close()
		return err
	}
	n.mu.Lock() // status reads it
	n.sec.srv, n.sec.ln, n.sec.done = srv, ln, make(chan struct{})
	n.mu.Unlock()
	// A primary whose certificate is revoked loses its open link too.
	n.closeRevoked(ctx, &n.wg, srv)
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

// secHandler is the node as its replication port's repl.Handler.
type secHandler struct{ n *Node }

// Hello meets a primary: the secondary checks identity, size, role and
// generations (decideHello), and refuses with a message that says what to
// do. A hello it accepts supersedes the link before it.
func (h secHandler) Hello(_ context.Context, c nbd.ConnInfo, peer repl.Hello) (repl.Hello, error) {
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkCaller(c, peer); err != nil {
		// Said to a caller that is not this node's peer: nothing of this
		// node, and nothing changes here.
		n.logOnce("refused a caller that is not the configured peer", err, "remote", c.Remote)
		return repl.Hello{}, errors.New("refused")
	}
	if peer.Role == meta.Secondary {
		return repl.Hello{}, n.onPoke(peer)
	}
	// A node that demoted itself for fencing acknowledged nothing beyond
	// what its peer, promoted up to date, holds: its changes go.
	fenced := n.sb.Flags&meta.FlagFenced != 0
	var seen int64
	if n.fence != nil {
		seen = n.fence.seen
	}
	out := decideHello(helloIn{
		Primary: n.prim != nil, Disconnected: n.disconnected, Failed: n.sb.FailedMembers,
		Name: n.sb.Name, Size: n.size, Gens: n.gens(), Discard: n.discardLocal || fenced, Peer: peer,
		Seen: seen,
	})
	if out.Refuse == nil && n.sb.Flags&meta.FlagUsedIncomplete == 0 {
		// From here on this node takes the primary's writes, which its
		// used bitmap will not record: say so before the first (see
		// decidePromote).
		if err := n.updateSuper(func(sb *meta.Superblock) { sb.Flags |= meta.FlagUsedIncomplete }); err != nil {
			out.Refuse = fmt.Errorf("recording that this node takes the primary's writes: %v", err)
		}
	}
	if out.Refuse != nil {
		return repl.Hello{}, n.refuseHello(peer, out)
	}
	n.peer.verdict, n.peer.hello, n.peer.met = out.Verdict, &peer, true
	n.warnVersion(peer.Software)
	if n.fence != nil {
		n.fence.seen = max(n.fence.seen, peer.Token)
	}
	// A primary that dials again found its old link dead; this side may
	// not have noticed yet. The new link wins.
	n.endLink()
	n.sec.link = newInbound(c.ID, peer)
	n.setPeer(PeerWaiting, nil)
	n.peer.lastErr = ""
	reply := n.helloFor()
	reply.Verdict = out.Verdict
	reply.Discard = n.discardLocal || fenced
	reply.NeedFull = n.sb.Flags&meta.FlagNeedFullSync != 0
	reply.Rebuild = n.rebuildPoint()
	reply.Dirty = n.bm.Snapshot()
	n.log.Info("primary connected", "verdict", out.Verdict.String(), "peer_generations", peer.Gens.String())
	return reply, nil
}

// checkCaller says why a caller is not this node's configured peer, or
// nil if it is: its address is --peer's host, its name --peer-name, and,
// once the nodes have met, its copy the volume they met with (the set
// UUID). The name is proven by the link's authentication (the secret, or
// the certificate pinned to --peer-name); with --insecure-link only
// claimed. Callers hold n.mu.
func (n *Node) checkCaller(c nbd.ConnInfo, peer repl.Hello) error {
	host, _, err := net.SplitHostPort(n.cfg.Peer)
	if err != nil {
		host = n.cfg.Peer
	}
	switch {
	case !sameHost(c.Remote, host):
		return fmt.Errorf("a caller from %v, not the peer's address %s", c.Remote, host)
	case n.cfg.PeerName != "" && peer.Node != n.cfg.PeerName:
		return fmt.Errorf("a caller named %q, not the peer %q", peer.Node, n.cfg.PeerName)
	case !n.sb.PeerSetUUID.IsZero() && peer.SetUUID != n.sb.PeerSetUUID.String():
		return fmt.Errorf("a peer whose volume (set %s) is not the one this node met (set %s): if the peer's machine or disks were replaced, run 'netraid forget-peer' on this node",
			peer.SetUUID, n.sb.PeerSetUUID)
	}
	return nil
}

// refuseHello refuses a hello and records why. A refusal while a link is
// established, or on a primary, changes nothing of what the node knows of
// its link: the caller is not its primary. Callers hold n.mu.
func (n *Node) refuseHello(peer repl.Hello, out helloOut) error {
	reply := n.helloFor()
	reply.Verdict = out.Verdict
	if l := n.sec.link; n.prim == nil && (l == nil || !l.attached) {
		n.setPeer(PeerStandalone, out.Refuse)
		if out.Verdict != repl.NoVerdict {
			n.peer.verdict, n.peer.met = out.Verdict, true
		}
		n.peer.hello = &peer
	}
	n.logOnce("refused a primary", out.Refuse, "peer", peer.SetUUID)
	return &repl.Refusal{Msg: out.Refuse.Error(), Peer: &reply}
}

// Attach hands the established link its device: this node's data,
// behind the link's gate. Any other connection is refused.
func (h secHandler) Attach(ctx context.Context, c nbd.ConnInfo) (blockdev.Device, error) {
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sec.link
	switch {
	case n.prim != nil:
		return nil, errNotSecondary
	case s == nil || s.conn != c.ID:
		return nil, errNotLink
	}
	s.attached = true
	n.wg.Go(func() {
		<-ctx.Done()
		n.linkEnded(s)
	})
	return linkDev{s: s, dev: n.sec.data}, nil
}

// linkEnded forgets a link whose connection ended.
func (n *Node) linkEnded(s *inbound) {
	s.revoke()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sec.link != s {
		return
	}
	n.sec.link = nil
	n.sec.syncTotal = 0
	if n.prim == nil && n.peer.state == PeerConnected {
		n.setPeer(PeerWaiting, nil)
	}
	n.log.Info("the primary's link ended")
}

// endLink revokes the link, if any, and closes its connection (in the
// background: a connection's hooks may wait for n.mu). Callers hold n.mu.
func (n *Node) endLink() {
	s := n.sec.link
	if s == nil {
		return
	}
	s.revoke()
	n.sec.link = nil
	n.sec.syncTotal = 0
	srv := n.sec.srv
	n.wg.Go(func() { srv.CloseWhere(func(c nbd.ConnInfo) bool { return c.ID == s.conn }) })
}

// linkView is what promote knows of the primary's link. Callers hold
// n.mu.
func (n *Node) linkView() inboundLink {
	s := n.sec.link
	if s == nil {
		return inboundLink{}
	}
	for _, c := range n.sec.srv.Conns() {
		if c.ID == s.conn {
			return inboundLink{Live: true, Heard: s.heardAgo()}
		}
	}
	return inboundLink{}
}

// onPoke answers a secondary that says it is up (pokePeer) or asks what
// this node holds before it is promoted (askPeer): a primary of the same
// volume dials it at once instead of at its next attempt. Either way the
// poke is refused (the link is always the primary's dial), with this
// node's hello. Called with n.mu held.
func (n *Node) onPoke(h repl.Hello) error {
	reply := n.helloFor()
	if n.prim == nil || h.Name != n.sb.Name {
		return &repl.Refusal{Msg: "this node is not the volume's primary: it does not dial", Peer: &reply}
	}
	n.prim.kickLink()
	n.log.Info("the secondary says it is up: dialing it")
	return &repl.Refusal{Msg: "this node is primary: it dials the secondary now", Peer: &reply}
}

// pokePeer tells the peer, once, that this node is up, so that a primary
// dials it now rather than at its next attempt (every ReconnectInterval):
// a restarted secondary is back in sync sooner. The answer is always a
// refusal; a peer that is down or not primary changes nothing.
func (n *Node) pokePeer(ctx context.Context) {
	_, err := n.hailPeer(ctx)
	n.log.Debug("told the peer this node is up", "answer", err)
}

// askPeer asks the peer what it holds (its hello), as a secondary's poke:
// nil if it is unreachable or does not say.
func (n *Node) askPeer(ctx context.Context) *repl.Hello {
	h, err := n.hailPeer(ctx)
	n.log.Debug("asked the peer what it holds", "answer", err)
	return h
}

// hailPeer dials the peer as a secondary (the poke of pokePeer) and
// returns the hello of its answer, which is always a refusal.
func (n *Node) hailPeer(ctx context.Context) (*repl.Hello, error) {
	n.mu.Lock()
	hello := n.helloFor()
	n.mu.Unlock()
	hello.Role = meta.Secondary
	peerTLS, err := n.peerTLS(hello.Name)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, n.cfg.PeerTimeout)
	defer cancel()
	conn, err := n.cfg.DialFunc(dctx, "tcp", n.cfg.Peer)
	if err != nil {
		return nil, err
	}
	l, err := repl.Connect(dctx, conn, repl.DialOptions{Hello: hello, Timeout: n.cfg.PeerTimeout, TLS: peerTLS, Secret: n.secret})
	if err == nil {
		l.Close()
		return nil, errors.New("the peer took a secondary's hello")
	}
	var r *repl.Refusal
	if errors.As(err, &r) && r.Peer != nil && n.isPeer(*r.Peer) {
		return r.Peer, err
	}
	return nil, err
}

// isPeer says whether an answer is the configured peer's, for this
// volume: its name, its node name (--peer-name), and, once the nodes have
// met, the copy they met with.
func (n *Node) isPeer(h repl.Hello) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	known := n.sb.PeerSetUUID
	return h.Name == n.sb.Name && (n.cfg.PeerName == "" || h.Node == n.cfg.PeerName) &&
		(known.IsZero() || h.SetUUID == known.String())
}

// Control handles the primary's messages on the established link.
func (h secHandler) Control(_ context.Context, c nbd.ConnInfo, m repl.Message) (repl.Hello, error) {
	n := h.n
	if m.Kind == repl.MsgRebuildCursor {
		if err := n.linkCheck(c); err != nil {
			return repl.Hello{}, err
		}
		// The primary flushed this node's copy before it sent the
		// cursor; recordRebuild flushes again before recording it.
		if err := n.recordRebuild(m.Rebuild.Member, m.Rebuild.Cursor); err != nil {
			return repl.Hello{}, err
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.helloFor(), nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sec.link
	established := s != nil && s.conn == c.ID
	if established {
		s.touch()
	}
	switch m.Kind {
	case repl.MsgSyncStart:
		out := decideSyncStart(syncStartIn{Primary: n.prim != nil, Established: established, Disk: n.sb.DiskState, Gens: n.gens(), Msg: m})
		if out.Refuse != nil {
			return repl.Hello{}, out.Refuse
		}
		if out.Record {
			err := n.updateSuper(func(sb *meta.Superblock) {
				sb.Generations = out.Gens.Meta()
				sb.DiskState = out.Disk
				sb.ResyncCursor, sb.ResyncTotal = 0, uint64(m.Total)
			})
			if err != nil {
				return repl.Hello{}, err
			}
		}
		n.sec.syncTotal = m.Total
		s.setSynced()
		n.setPeer(PeerConnected, nil)
		n.log.Info("resync from the primary started", "bytes", m.Total, "disk_state", out.Disk.String())
	case repl.MsgSyncDone:
		out := decideSyncDone(n.prim != nil, established, n.gens(), m.Gens)
		if out.Refuse != nil {
			return repl.Hello{}, out.Refuse
		}
		err := n.updateSuper(func(sb *meta.Superblock) {
			sb.Generations = out.Gens.Meta()
			sb.DiskState = meta.UpToDate
			if id, err := meta.ParseUUID(s.peer.SetUUID); err == nil {
				sb.PeerSetUUID = id
			}
			sb.Flags &^= meta.FlagNeedFullSync | meta.FlagFenced
			sb.ClearRebuild()
			sb.ResyncCursor, sb.ResyncTotal = 0, 0
		})
		if err != nil {
			return repl.Hello{}, err
		}
		// This node's own dirty regions were sent in the hello and are
		// now covered by the resync.
		if err := n.bm.ClearAll(); err != nil {
			return repl.Hello{}, err
		}
		n.discardLocal = false
		n.sec.syncTotal = 0
		n.log.Info("in sync with the primary", "generations", out.Gens.String())
	case repl.MsgPing:
		switch {
		case n.prim != nil:
			return repl.Hello{}, errNotSecondary
		case !established:
			return repl.Hello{}, errNotLink
		}
	case repl.MsgDiskless:
		switch {
		case n.prim != nil:
			return repl.Hello{}, errNotSecondary
		case !established:
			return repl.Hello{}, errNotLink
		}
		if err := n.updateSuper(func(sb *meta.Superblock) { sb.Generations = m.Gens.Meta() }); err != nil {
			return repl.Hello{}, err
		}
		n.log.Warn("the primary's disks failed: this node holds the only copy of what it writes", "generations", m.Gens.String())
	default:
		return repl.Hello{}, fmt.Errorf("%w: unknown control message %q", repl.ErrProtocol, m.Kind)
	}
	return n.helloFor(), nil
}

// linkCheck says whether a control message may come on connection c: the
// established link, with this node secondary.
func (n *Node) linkCheck(c nbd.ConnInfo) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch s := n.sec.link; {
	case n.prim != nil:
		return errNotSecondary
	case s == nil || s.conn != c.ID:
		return errNotLink
	default:
		s.touch()
	}
	return nil
}

// errOnce is the error a repeated condition was last logged with.
func (n *Node) logOnce(msg string, err error, args ...any) {
	if n.lastLogged[msg] == err.Error() {
		n.log.Debug(msg, append(args, "err", err)...)
		return
	}
	n.lastLogged[msg] = err.Error()
	n.log.Error(msg, append(args, "err", err)...)
}

// versionSkew says how this node's version and its peer's differ, or ""
// when they do not (or one is unknown).
func (n *Node) versionSkew(peer string) string {
	if peer == "" || n.cfg.Version == "" || peer == n.cfg.Version {
		return ""
	}
	return fmt.Sprintf("the peer runs netraid %s and this node %s: finish the upgrade of both (the secondary first, then swap the roles and upgrade the other)",
		peer, n.cfg.Version)
}

// warnVersion logs, once per version met, that the peer runs another
// version. Callers hold n.mu.
func (n *Node) warnVersion(peer string) {
	skew := n.versionSkew(peer)
	if skew == "" || n.lastLogged["version"] == skew {
		return
	}
	n.lastLogged["version"] = skew
	n.log.Warn("the peer runs another version of netraid", "version", n.cfg.Version, "peer_version", peer)
}
