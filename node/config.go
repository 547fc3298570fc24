package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/pki"
	"github.com/netraid/netraid/witness"
)

// Config is how `netraid serve` runs a node.
type Config struct {
	// Disks are the member disks, in any order.
	Disks []string
	// Listen is the NBD export address: HOST:PORT, or a unix socket path
	// (anything containing a '/').
	Listen string
	// Export is the NBD export name; the volume name if empty.
	Export   string
	ReadOnly bool
	// Control is the control socket path; empty: no control socket (the
	// node is driven through Do and Status).
	Control string
	// ListenPeer is where this node accepts its primary; Peer is where it
	// dials its secondary when primary. Both empty: standalone.
	ListenPeer, Peer string
	// Primary promotes the node at start.
	Primary bool
	// PeerTimeout fails the peer leg when a request takes longer.
	PeerTimeout time.Duration
	// PingInterval is how often a primary pings its secondary, and
	// PingTimeout how long it waits for the answer: a link silent for
	// their sum is dead, on both sides, even if no FIN came (a machine
	// or a link gone, a paused daemon).
	PingInterval, PingTimeout time.Duration
	// ReconnectInterval is the wait between attempts to reach the peer.
	ReconnectInterval time.Duration
	// DiskTimeout fails the local leg when an I/O on the local disks takes
	// longer (a hung disk); 0 = never.
	DiskTimeout time.Duration
	// Faults, if set, wraps each member's data area and arms faults on
	// it for 'netraid disk inject-error': for tests and drills only.
	Faults Faults
	// ResyncRate limits resync in bytes per second; 0 = unlimited.
	ResyncRate int64
	// ResyncAdaptive slows resync down while the volume is busy.
	ResyncAdaptive bool
	// BitmapFlush is how long cleared bitmap bits wait before they are
	// written; the resync package's default if zero.
	BitmapFlush time.Duration
	// TLSDir is a node directory of certificates ('netraid certs issue'):
	// with it the export and the replication link require TLS, both
	// ways, with certificates of this volume's CA not revoked by the
	// directory's ca-crl.pem.
	TLSDir string
	// TLSOptional lets NBD clients that do not start TLS use the export
	// too (with TLSDir).
	TLSOptional bool
	// TLSNodeClients lets a node certificate open the export as a
	// client's would.
	TLSNodeClients bool
	// Readahead is how far ahead of a sequential reader of the export the
	// primary reads (blockdev.Readahead); 0 reads nothing ahead.
	// 'netraid serve' reads 16 MiB ahead unless told otherwise.
	Readahead int64
	// MaxConnections bounds the export's connections; the nbd package's
	// default if zero.
	MaxConnections int
	// MemoryBudget bounds the export's request and reply buffers, all
	// connections together, in bytes; the nbd package's default if zero.
	MemoryBudget int64
	Logger       *slog.Logger
	// PeerSecret is a file holding the secret both nodes share: the
	// link authenticates each end with it (repl.Secret) when there is no
	// TLSDir. InsecureLink lets the link run with neither: anyone who
	// reaches --listen-peer could then replace the primary.
	PeerSecret   string
	InsecureLink bool
	// PeerSecretKey is the secret itself, in place of PeerSecret's file
	// (the in-process harness).
	PeerSecretKey []byte

	// Name names this node (its certificate's node name with TLS; the
	// host name if empty), and PeerName the other node: in the witness's
	// records and in the replication hello.
	Name, PeerName string

	// Etcd, if set, are the endpoints of the volume's witness: failover
	// is then automatic and fenced (see the package documentation);
	// without it failover is manual. EtcdTLS is its client TLS, LeaseTTL
	// the lease of this node's session (witness.DefaultTTL if zero), and
	// OnNoQuorum what a primary does with the writes its lost peer did
	// not get while it cannot record the peer outdated: NoQuorumSuspend
	// (the default: hold them) or NoQuorumIOError (fail them).
	Etcd    []string
	EtcdTLS *tls.Config
	// Witness, if set, is the witness in place of etcd at Etcd (the
	// in-process harness's witness.Memory): failover is then automatic
	// and fenced as with Etcd.
	Witness    witness.Backend
	LeaseTTL   time.Duration
	OnNoQuorum string
	// OnPromote are shell commands run in order after this node is
	// promoted (attach the export, mount, start the service); OnDemote,
	// in order before it is demoted (stop, unmount, detach). Each may take
	// CommandTimeout (2 minutes if zero). A failing on-promote command
	// demotes the node.
	OnPromote, OnDemote []string
	CommandTimeout      time.Duration

	// Version is the binary's version, shown in status, logged at start
	// and said in the replication hello.
	Version string
	// OnReady, if set, is called once when the node is serving: its
	// control socket answers and its export (primary, standalone) or its
	// peer listener (secondary) is up. It must not block.
	OnReady func()

	// The seams through which the node reaches the world, for the
	// in-process harness; nil means the real thing.
	//
	// DialFunc connects to the peer (net.Dialer's DialContext).
	DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)
	// ListenFunc makes the export's and the peer link's listeners (TCP,
	// or a unix socket for an address holding a '/'); nil: net.Listen,
	// and a unix socket only its owner may use.
	ListenFunc func(network, addr string) (net.Listener, error)
	// OpenDisk opens a member disk (O_DIRECT and exclusive by default).
	OpenDisk func(path string, readOnly bool) (blockdev.Device, error)
}

// Defaults of the link's liveness checks: a dead peer is declared so
// within two seconds of silence.
const (
	DefaultPingInterval = time.Second
	DefaultPingTimeout  = time.Second
)

// Faults is the hook through which a node reaches a fault injector
// (blockdev/fault's Injector): WrapData wraps each member's data area as
// the volume assembles it, Inject arms or heals a member.
type Faults interface {
	WrapData(member int, d blockdev.Device) blockdev.Device
	Inject(member int, heal bool) error
}

func (c *Config) setDefaults() error {
	if len(c.Disks) == 0 {
		return fmt.Errorf("node: no member disks given")
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:10809"
	}
	if (c.Peer == "") != (c.ListenPeer == "") {
		return fmt.Errorf("node: --peer and --listen-peer go together")
	}
	if (c.TLSOptional || c.TLSNodeClients) && c.TLSDir == "" {
		return fmt.Errorf("node: TLS options but no TLS directory given")
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = 5 * time.Second
	}
	if c.ReconnectInterval <= 0 {
		c.ReconnectInterval = time.Second
	}
	if c.Name == "" && c.TLSDir != "" {
		if id, err := pki.ReadIdentity(filepath.Join(c.TLSDir, pki.ServerCert)); err == nil {
			c.Name = id.Name
		}
	}
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node: no --name given and no host name: %w", err)
		}
		c.Name = h
	}
	if !c.standalone() && c.TLSDir == "" && c.PeerSecret == "" && c.PeerSecretKey == nil && !c.InsecureLink {
		return fmt.Errorf("node: the replication link needs an authentication: --tls-dir (mutual TLS) or --peer-secret FILE " +
			"('netraid secret new FILE', copied to both nodes); --insecure-link runs it with neither, letting anyone who reaches --listen-peer in")
	}
	if !c.standalone() && (c.PeerSecret != "" || c.PeerSecretKey != nil) && c.TLSDir == "" && c.PeerName == "" {
		return fmt.Errorf("node: --peer-secret needs --peer-name: the secret proves a name, and the node takes only its peer's")
	}
	if c.fenced() && c.PeerName == "" && !c.standalone() {
		return fmt.Errorf("node: with a witness (--etcd) the peer needs a name: give --peer-name")
	}
	switch c.OnNoQuorum {
	case "":
		c.OnNoQuorum = NoQuorumSuspend
	case NoQuorumSuspend, NoQuorumIOError:
	default:
		return fmt.Errorf("node: --on-no-quorum %q: %s or %s", c.OnNoQuorum, NoQuorumSuspend, NoQuorumIOError)
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 2 * time.Minute
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DialFunc == nil {
		var d net.Dialer
		c.DialFunc = d.DialContext
	}
	return nil
}

// standalone reports whether the node has no peer.
func (c *Config) standalone() bool { return c.Peer == "" }

// fenced says whether the node has a witness: failover is then
// automatic and fenced.
func (c *Config) fenced() bool { return len(c.Etcd) > 0 || c.Witness != nil }
