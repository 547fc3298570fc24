package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/repl"
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
	// ctx is the node's lifetime, set by Run (under mu): it ends after
	// the shutdown, not when Run's context does, so that a primary
	// stopping drains and flushes through its link and witness.
	// stopping is Run's context: done once the shutdown began.
	ctx      context.Context
	stopping context.Context

	// roleMu serializes the role changes: a promotion with its on-promote
	// commands, a demotion with its on-demote commands, the stop at
	// shutdown. It is taken before mu, never while holding it.
	roleMu sync.Mutex

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
	// suspended, when not empty, says why I/O is held (status).
	suspended string
	// secret authenticates the link with a shared secret, if configured.
	secret *repl.Secret
	// fence is the witness's side of the node; nil without --etcd. Its
	// fields are guarded by mu (the client is not).
	fence *fence
	// memGens, when set, are this node's generations, which none of its
	// disks could record (they all failed): its peer recorded them.
	memGens *Gens
	// primNow is prim, for the volume's callbacks, which may run with mu
	// held.
	primNow atomic.Pointer[primary]
	// boot is this daemon's start, as its hello says (repl.Hello.Boot).
	boot string
	// lastLogged is the error each repeated condition was last logged
	// with, so that a condition is logged once, not at every retry.
	lastLogged map[string]string

	wg sync.WaitGroup // the node's own goroutines
	// lastStatus is the last status made; busy says what holds n.mu
	// while it does I/O.
	lastStatus atomic.Pointer[Status]
	busy       atomic.Pointer[busyNote]
	// ready is closed once the node serves: its listeners are up and,
	// if it starts primary, it is promoted.
	ready chan struct{}
}

// Ready is closed once the node serves.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// peerStatus is what this node knows of the replication link.
type peerStatus struct {
	state   PeerState
	lastErr string
	verdict Verdict
	met     bool
	hello   *repl.Hello // the peer's last hello
	since   time.Time
}

func (n *Node) setPeer(state PeerState, err error) {
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
	n, err := Open(cfg)
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// Open assembles the volume from cfg.Disks and its write-intent bitmap.
// The node does nothing until Run.
func Open(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	var n *Node
	oo := volume.OpenOptions{Logger: cfg.Logger, OpenDisk: cfg.OpenDisk, IOTimeout: cfg.DiskTimeout,
		OnMemberFailed: func(member int, err error) {
			if n != nil {
				n.memberFailed(member, err)
			}
		},
		OnNoMemberLeft: func() {
			if n == nil {
				return
			}
			if p := n.primNow.Load(); p != nil {
				p.holdForDiskless()
			}
		}}
	if cfg.Faults != nil {
		oo.WrapData = cfg.Faults.WrapData
	}
	vol, err := volume.Open(cfg.Disks, oo)
	if err != nil {
		return nil, err
	}
	sb := vol.Super()
	bm, err := resync.OpenBitmap(vol.Bitmap(), int64(sb.VolumeSize), int64(sb.RegionSize), resync.BitmapOptions{FlushInterval: cfg.BitmapFlush})
	if err != nil {
		vol.Close()
		return nil, fmt.Errorf("node: write-intent bitmap: %w", err)
	}
	var secret *repl.Secret
	if cfg.PeerSecretKey != nil && cfg.TLSDir == "" {
		secret = &repl.Secret{Key: cfg.PeerSecretKey, Self: cfg.Name, Peer: cfg.PeerName}
	} else if cfg.PeerSecret != "" && cfg.TLSDir == "" {
		s, err := repl.ReadSecret(cfg.PeerSecret, cfg.Name, cfg.PeerName)
		if err != nil {
			bm.Close()
			vol.Close()
			return nil, err
		}
		secret = &s
	}
	n = &Node{
		secret: secret,
		cfg:    cfg, log: cfg.Logger.With("volume", sb.Name), vol: vol, bm: bm,
		size: int64(sb.VolumeSize), sb: sb, started: time.Now(), ready: make(chan struct{}),
		lastLogged: map[string]string{}, boot: rand.Text(),
	}
	n.peer.state = PeerStandalone
	if !cfg.standalone() {
		n.peer.state = PeerWaiting
	}
	return n, nil
}

// Run runs the node until ctx is done; then it drains the export,
// flushes and closes everything. A node runs once.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.ctx != nil {
		n.mu.Unlock()
		return errors.New("node: Run called twice")
	}
	life, end := context.WithCancel(context.WithoutCancel(ctx))
	defer end()
	n.ctx, n.stopping = life, ctx
	n.mu.Unlock()
	err := n.run(ctx)
	end()
	if cerr := n.close(); err == nil {
		err = cerr
	}
	return err
}

func (n *Node) run(ctx context.Context) error {
	if n.cfg.Control != "" {
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
	}

	n.mu.Lock() // the control socket is up: an action may change it
	wasPrimary := n.sb.Role == meta.Primary
	n.mu.Unlock()
	if n.cfg.fenced() {
		if err := n.newFence(); err != nil {
			n.shutdown()
			return err
		}
	}
	if n.cfg.ListenPeer != "" {
		if err := n.startPeerServer(ctx); err != nil {
			n.stopFence()
			return err
		}
	}
	if n.fence != nil {
		n.startFence(ctx)
	}
	if !n.cfg.standalone() && !n.cfg.Primary {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.pokePeer(ctx)
		}()
	}
	if !n.cfg.standalone() {
		n.warnLink()
	}
	if wasPrimary && !n.cfg.standalone() && !n.cfg.Primary {
		n.log.Warn("this node was primary when it stopped; it starts as secondary: promote it when it should serve")
	}
	if n.cfg.standalone() || n.cfg.Primary {
		if _, err := n.promoteAndStart(ctx, false); err != nil {
			n.shutdown()
			return err
		}
	}
	n.log.Info("node running", "role", n.role(), "disks", strings.Join(n.cfg.Disks, ","), "size", n.size, "version", n.cfg.Version)
	close(n.ready)
	if n.cfg.OnReady != nil {
		n.cfg.OnReady()
	}
	<-ctx.Done()
	n.log.Info("shutting down")
	return n.shutdown()
}

// shutdown stops the primary's export and link, and the peer server.
func (n *Node) shutdown() error {
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	n.mu.Lock()
	p := n.prim
	n.mu.Unlock()
	var errs []error
	if p != nil {
		if len(n.cfg.OnDemote) > 0 {
			// The service on the volume stops before the export does.
			errs = append(errs, n.runCommands(context.Background(), "on-demote", n.cfg.OnDemote))
		}
		errs = append(errs, p.stop(true))
	}
	n.stopPeerServer()
	n.stopFence()
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
	n.busy.Store(&busyNote{what: "writing superblocks", since: time.Now()})
	defer n.busy.Store(nil)
	mem := n.memGens
	err := n.vol.UpdateSuper(func(sb *meta.Superblock) {
		if mem != nil {
			// The generations only the peer could record: recorded here
			// too from now on.
			sb.Generations = mem.Meta()
		}
		f(sb)
	})
	if err == nil {
		n.memGens = nil
	}
	// Whatever the outcome, the superblock is what the volume says: the
	// update is in effect exactly when it is durable somewhere.
	n.sb = n.vol.Super()
	if err != nil {
		return fmt.Errorf("node: writing superblocks: %w", err)
	}
	return nil
}

// busyNote says what holds the node's lock, for a status made while it
// is held.
type busyNote struct {
	what  string
	since time.Time
}

// gens returns the generations as the superblock holds them, or as the
// peer recorded them for this node when no disk of it was left to
// (memGens). Callers hold n.mu.
func (n *Node) gens() Gens {
	if n.memGens != nil {
		return *n.memGens
	}
	return repl.GensOf(n.sb.Generations)
}

// isUnixAddr reports whether a listen address is a unix socket path.
func isUnixAddr(a string) bool { return strings.Contains(a, "/") }

// listen listens on a TCP address or a unix socket path, replacing a
// stale socket file.
func (n *Node) listen(addr string) (net.Listener, error) {
	if !isUnixAddr(addr) {
		return n.listenTCP(addr)
	}
	if n.cfg.ListenFunc != nil {
		return n.cfg.ListenFunc("unix", addr)
	}
	if c, err := net.DialTimeout("unix", addr, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("node: %s is in use by another server", addr)
	}
	// Only this user may reach the export through its socket: it hands
	// out the whole volume.
	return listenUnixMode(addr, 0o600)
}

// listenTCP listens on a TCP address.
func (n *Node) listenTCP(addr string) (net.Listener, error) {
	if n.cfg.ListenFunc != nil {
		return n.cfg.ListenFunc("tcp", addr)
	}
	return net.Listen("tcp", addr)
}

// helloFor is this node's hello. Callers hold n.mu.
func (n *Node) helloFor() repl.Hello {
	var token int64
	if n.fence != nil && n.fence.lead != nil {
		token = n.fence.lead.Token
	}
	return repl.Hello{
		Proto: repl.Proto, Software: n.cfg.Version, Node: n.cfg.Name, Peer: n.cfg.PeerName, Token: token, Boot: n.boot,
		Name: n.sb.Name, SetUUID: n.sb.SetUUID.String(), Size: n.size, Region: int64(n.sb.RegionSize),
		Role: role(n.prim != nil), DiskState: n.sb.DiskState, Gens: n.gens(), OutOfSync: n.bm.DirtyBytes(),
	}
}
