package node

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/repl"
)

// inbound is a primary's link to this secondary, from the hello this
// node accepted until its connection ends, another link supersedes it,
// or this node is promoted. Only the established link writes to this
// node's disks and sends it control messages, and only once its resync
// start is recorded.
type inbound struct {
	conn  uint64 // the connection's nbd.ConnInfo.ID
	peer  repl.Hello
	since time.Time
	heard atomic.Int64 // when the primary was last heard from, Unix ns

	// mu is held shared by every I/O of the link, and exclusively to
	// change what follows: revoke waits for the I/O in flight, so that
	// none lands after it.
	mu       sync.RWMutex
	synced   bool // the resync start was recorded: the link may write
	attached bool // the connection opened the export
	revoked  bool // no more I/O
}

func newInbound(conn uint64, peer repl.Hello) *inbound {
	s := &inbound{conn: conn, peer: peer, since: time.Now()}
	s.touch()
	return s
}

// touch records that the primary was heard from now.
func (s *inbound) touch() { s.heard.Store(time.Now().UnixNano()) }

// heardAgo is how long ago the primary was last heard from.
func (s *inbound) heardAgo() time.Duration {
	return time.Since(time.Unix(0, s.heard.Load()))
}

// revoke ends the link's I/O: it waits for the I/O in flight; none
// starts after.
func (s *inbound) revoke() {
	s.mu.Lock()
	s.revoked = true
	s.mu.Unlock()
}

// setSynced lets the link write, once its resync start is recorded.
func (s *inbound) setSynced() {
	s.mu.Lock()
	s.synced = true
	s.mu.Unlock()
}

// Errors of a link's I/O.
var (
	errLinkRevoked = errors.New("node: the replication link was superseded or ended")
	errNotSynced   = errors.New("node: the replication link has not started its resync: no I/O yet")
)

// enter admits one I/O of the link; on nil the caller must call exit.
func (s *inbound) enter() error {
	s.mu.RLock()
	switch {
	case s.revoked:
		s.mu.RUnlock()
		return errLinkRevoked
	case !s.synced:
		s.mu.RUnlock()
		return errNotSynced
	}
	s.touch()
	return nil
}

func (s *inbound) exit() { s.mu.RUnlock() }

// linkDev is the device the established link writes to: this node's
// data (watched for failing members), through the link's gate.
type linkDev struct {
	s   *inbound
	dev watchedData
}

var (
	_ blockdev.Device      = linkDev{}
	_ blockdev.FUAWriter   = linkDev{}
	_ blockdev.Trimmer     = linkDev{}
	_ blockdev.Zeroer      = linkDev{}
	_ blockdev.BlockSizer  = linkDev{}
	_ blockdev.Checksummer = linkDev{}
)

func (d linkDev) ReadAt(p []byte, off int64) (int, error) {
	if err := d.s.enter(); err != nil {
		return 0, err
	}
	defer d.s.exit()
	return d.dev.ReadAt(p, off)
}

func (d linkDev) WriteAt(p []byte, off int64) (int, error) {
	if err := d.s.enter(); err != nil {
		return 0, err
	}
	defer d.s.exit()
	return d.dev.WriteAt(p, off)
}

func (d linkDev) WriteAtFUA(p []byte, off int64) (int, error) {
	if err := d.s.enter(); err != nil {
		return 0, err
	}
	defer d.s.exit()
	return d.dev.WriteAtFUA(p, off)
}

func (d linkDev) Flush() error {
	if err := d.s.enter(); err != nil {
		return err
	}
	defer d.s.exit()
	return d.dev.Flush()
}

func (d linkDev) Trim(off, n int64) error {
	if err := d.s.enter(); err != nil {
		return err
	}
	defer d.s.exit()
	return d.dev.Trim(off, n)
}

func (d linkDev) WriteZeroes(off, n int64, mayTrim bool) error {
	if err := d.s.enter(); err != nil {
		return err
	}
	defer d.s.exit()
	return d.dev.WriteZeroes(off, n, mayTrim)
}

func (d linkDev) Checksum(off, n int64) (blockdev.Sum, error) {
	if err := d.s.enter(); err != nil {
		return blockdev.Sum{}, err
	}
	defer d.s.exit()
	return d.dev.Checksum(off, n)
}

func (d linkDev) BlockSize() int { return d.dev.BlockSize() }
func (d linkDev) Size() int64    { return d.dev.Size() }

// Close closes nothing: the volume owns the data.
func (d linkDev) Close() error { return nil }
