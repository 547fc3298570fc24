package node

import (
	"fmt"
	"log/slog"
	"time"
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
	// Control is the control socket path.
	Control string
	// ListenPeer is where this node accepts its primary; Peer is where it
	// dials its secondary when primary. Both empty: standalone.
	ListenPeer, Peer string
	// Primary promotes the node at start.
	Primary bool
	// PeerTimeout fails the peer leg when a request takes longer.
	PeerTimeout time.Duration
	// ReconnectInterval is the wait between attempts to reach the peer.
	ReconnectInterval time.Duration
	// DiskTimeout fails the local leg when an I/O on the local disks takes
	// longer (a hung disk); 0 = never.
	DiskTimeout time.Duration
	// FaultInjection wraps each local disk in a fault injector that
	// 'netraid disk inject-error' arms: for tests and drills only.
	FaultInjection bool
	// ResyncRate limits resync in bytes per second; 0 = unlimited.
	ResyncRate int64
	// ResyncAdaptive slows resync down while the volume is busy.
	ResyncAdaptive bool
	// BitmapFlush is how long cleared bitmap bits wait before they are
	// written; the resync package's default if zero.
	BitmapFlush time.Duration
	// TLSDir is a node directory of certificates ('netraid certs issue'):
	// with it the export offers TLS and the replication link requires
	// it, both ways, with certificates of this volume's CA.
	TLSDir string
	// TLSRequired refuses NBD clients that do not start TLS.
	TLSRequired bool
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
}

func (c *Config) setDefaults() error {
	if len(c.Disks) == 0 {
		return fmt.Errorf("node: no member disks given")
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:10809"
	}
	if c.Control == "" {
		return fmt.Errorf("node: no control socket path")
	}
	if (c.Peer == "") != (c.ListenPeer == "") {
		return fmt.Errorf("node: --peer and --listen-peer go together")
	}
	if c.TLSRequired && c.TLSDir == "" {
		return fmt.Errorf("node: TLS required but no TLS directory given")
	}
	if c.PeerTimeout <= 0 {
		c.PeerTimeout = 5 * time.Second
	}
	if c.ReconnectInterval <= 0 {
		c.ReconnectInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// standalone reports whether the node has no peer.
func (c *Config) standalone() bool { return c.Peer == "" }
