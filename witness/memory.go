package witness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Memory is a witness held in memory, with the semantics the node relies
// on in etcd's: leases with a TTL that sessions renew every third of it
// while their node reaches the witness, and that expire a TTL after the
// last renewal (the keys under them go); an election that the oldest
// live key (lowest create revision) holds, its revision the fencing
// token; guarded transactions; one revision counter that only grows.
// It runs on real time (a sub-second TTL is honoured, where etcd counts
// whole seconds), and lets a test cut a node from it, stop it, or end a
// node's leases. Clients reach it through Options.Backend.
type Memory struct {
	mu      sync.Mutex
	rev     int64
	kv      map[string]*memKV
	leases  map[int64]*memLease
	lastID  int64
	cut     map[string]bool
	dead    map[string]bool
	failing map[string]error
	slowTxn map[string]bool
	stopped bool
	// changed is closed, and replaced, on every change: requests and
	// campaigns waiting for one look again.
	changed chan struct{}
}

type memKV struct {
	val         string
	create, mod int64
	lease       int64
}

type memLease struct {
	id       int64
	node     string
	ttl      time.Duration
	deadline time.Time
	keys     map[string]bool
	timer    *time.Timer
}

// NewMemory returns an empty witness that answers every node.
func NewMemory() *Memory {
	return &Memory{kv: map[string]*memKV{}, leases: map[int64]*memLease{}, cut: map[string]bool{}, dead: map[string]bool{},
		failing: map[string]error{}, slowTxn: map[string]bool{}, changed: make(chan struct{})}
}

func (m *Memory) broadcastLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Cut cuts node from the witness: its requests get no answer (they wait
// until Heal, or fail when their time-out ends) and its sessions are not
// renewed, so its leases expire a TTL after their last renewal.
func (m *Memory) Cut(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cut[node] = true
	m.broadcastLocked()
}

// Fail makes node's requests fail at once with err, as etcd's do when
// it has lost its quorum ("etcdserver: no leader"): its sessions are
// not renewed either.
func (m *Memory) Fail(node string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failing[node] = err
	m.broadcastLocked()
}

// Heal ends Cut and Fail.
func (m *Memory) Heal(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.cut, node)
	delete(m.failing, node)
	m.broadcastLocked()
}

// HoldTxns holds node's guarded transactions (the records and removals
// its leadership makes), as requests slow on the network are: they are
// applied after ReleaseTxns, or fail when their time-out ends first.
// Its reads, campaigns and renewals are answered as before.
func (m *Memory) HoldTxns(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slowTxn[node] = true
	m.broadcastLocked()
}

// ReleaseTxns ends HoldTxns.
func (m *Memory) ReleaseTxns(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.slowTxn, node)
	m.broadcastLocked()
}

// Kill says node's process is gone (kill -9, power loss): its requests
// fail at once, and nothing renews its leases, which expire a TTL after
// their last renewal. Revive ends it, for the next process.
func (m *Memory) Kill(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead[node] = true
	m.broadcastLocked()
}

// Revive ends Kill.
func (m *Memory) Revive(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.dead, node)
	m.broadcastLocked()
}

// Stop stops the witness (every etcd member down): no request is
// answered, and no lease expires, as the witness counts time; clients
// give their sessions up a TTL after their last renewal.
func (m *Memory) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	m.broadcastLocked()
}

// Start ends Stop. Every lease gets a full TTL again, as etcd's new
// leader gives them: a node whose session ended while the witness was
// down keeps its election key for that long.
func (m *Memory) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = false
	for _, l := range m.leases {
		l.deadline = time.Now().Add(l.ttl)
		m.armLocked(l)
	}
	m.broadcastLocked()
}

// Expire ends node's leases now, as their expiry would: the keys under
// them go; its sessions learn it at their next renewal.
func (m *Memory) Expire(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.leases {
		if l.node == node {
			m.revokeLocked(l)
		}
	}
}

// Leases counts node's live leases, as the witness counts them.
func (m *Memory) Leases(node string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := 0
	for _, l := range m.leases {
		if l.node == node {
			k++
		}
	}
	return k
}

func (m *Memory) armLocked(l *memLease) {
	if l.timer != nil {
		l.timer.Stop()
	}
	l.timer = time.AfterFunc(time.Until(l.deadline), func() { m.checkLease(l) })
}

// checkLease expires l if its deadline passed while the witness ran.
func (m *Memory) checkLease(l *memLease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leases[l.id] != l || m.stopped {
		return
	}
	if d := time.Until(l.deadline); d > 0 {
		m.armLocked(l)
		return
	}
	m.revokeLocked(l)
}

// revokeLocked ends a lease and deletes its keys, in one revision.
func (m *Memory) revokeLocked(l *memLease) {
	if m.leases[l.id] != l {
		return
	}
	delete(m.leases, l.id)
	if l.timer != nil {
		l.timer.Stop()
	}
	if len(l.keys) > 0 {
		m.rev++
		for k := range l.keys {
			delete(m.kv, k)
		}
	}
	m.broadcastLocked()
}

func (m *Memory) connect(o Options) (conn, error) {
	return &memConn{m: m, o: o}, nil
}

// errClosed: the client was closed (etcd's client answers so too).
var errClosed = fmt.Errorf("memory witness: client closed: %w", context.Canceled)

// memConn is one client's connection to a Memory.
type memConn struct {
	m      *Memory
	o      Options
	closed bool // guarded by m.mu
}

func (c *memConn) String() string { return "memory witness" }

func (c *memConn) close() error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	c.closed = true
	c.m.broadcastLocked()
	return nil
}

// reachableLocked says whether c's requests get through now.
func (c *memConn) reachableLocked() bool {
	return !c.closed && !c.m.stopped && !c.m.cut[c.o.Node] && !c.m.dead[c.o.Node] && c.m.failing[c.o.Node] == nil
}

// await runs f under m.mu once c's request gets through: at once if it
// can, when the cut ends if not, never if ctx ends first (its error).
// A dead node's requests and a closed client's fail at once.
func (c *memConn) await(ctx context.Context, f func() error) error {
	return c.awaitOr(ctx, false, f)
}

// awaitOr is await; a transaction (txn) also waits while HoldTxns holds
// them.
func (c *memConn) awaitOr(ctx context.Context, txn bool, f func() error) error {
	m := c.m
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m.mu.Lock()
		if c.closed {
			m.mu.Unlock()
			return errClosed
		}
		if m.dead[c.o.Node] {
			m.mu.Unlock()
			return fmt.Errorf("memory witness: %s's process is gone: %w", c.o.Node, context.Canceled)
		}
		if err := m.failing[c.o.Node]; err != nil {
			m.mu.Unlock()
			return err
		}
		if c.reachableLocked() && !(txn && m.slowTxn[c.o.Node]) {
			err := f()
			m.mu.Unlock()
			return err
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (c *memConn) get(ctx context.Context, key string) (v []byte, mod int64, ok bool, err error) {
	err = c.await(ctx, func() error {
		if kv := c.m.kv[key]; kv != nil {
			v, mod, ok = []byte(kv.val), kv.mod, true
		}
		return nil
	})
	return v, mod, ok, err
}

func (c *memConn) first(ctx context.Context, prefix string) (v []byte, rev int64, ok bool, err error) {
	err = c.await(ctx, func() error {
		for k, kv := range c.m.kv {
			if strings.HasPrefix(k, prefix) && (!ok || kv.create < rev) {
				v, rev, ok = []byte(kv.val), kv.create, true
			}
		}
		return nil
	})
	return v, rev, ok, err
}

func (c *memConn) txn(ctx context.Context, guard string, rev int64, o op) (ok bool, err error) {
	err = c.awaitOr(ctx, true, func() error {
		g := c.m.kv[guard]
		if ok = g != nil && g.create == rev; ok {
			c.m.applyLocked(o, 0)
		}
		return nil
	})
	return ok, err
}

// applyLocked applies a put (under lease, if not 0) or a delete, in a
// new revision; with o.ifMod, only if the key's last change was then.
func (m *Memory) applyLocked(o op, lease int64) {
	kv := m.kv[o.key]
	if o.ifMod != 0 && (kv == nil || kv.mod != o.ifMod) {
		return
	}
	switch {
	case o.del && kv == nil:
		return
	case o.del:
		delete(m.kv, o.key)
		if l := m.leases[kv.lease]; l != nil {
			delete(l.keys, o.key)
		}
	case kv == nil:
		m.kv[o.key] = &memKV{val: o.val, create: m.rev + 1, mod: m.rev + 1, lease: lease}
		if l := m.leases[lease]; l != nil {
			l.keys[o.key] = true
		}
	default:
		kv.val, kv.mod = o.val, m.rev+1
	}
	m.rev++
	m.broadcastLocked()
}

func (c *memConn) grant(ctx context.Context, ttl time.Duration) (session, error) {
	var s *memSession
	err := c.await(ctx, func() error {
		m := c.m
		m.lastID++
		l := &memLease{id: m.lastID, node: c.o.Node, ttl: ttl, deadline: time.Now().Add(ttl), keys: map[string]bool{}}
		m.leases[l.id] = l
		m.armLocked(l)
		s = &memSession{c: c, lease: l.id, ttl: ttl, deadline: l.deadline, doneCh: make(chan struct{}), stop: make(chan struct{})}
		return nil
	})
	if err != nil {
		return nil, err
	}
	go s.keepAlive()
	return s, nil
}

// memSession is a lease its client renews every third of the TTL while
// the witness answers it, and gives up a TTL after the last renewal it
// got, or when a renewal finds the lease gone.
type memSession struct {
	c     *memConn
	lease int64
	ttl   time.Duration

	// Guarded by c.m.mu:
	deadline time.Time
	ended    bool

	doneCh   chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

func (s *memSession) done() <-chan struct{} { return s.doneCh }

// endLocked ends the session: Done closes.
func (s *memSession) endLocked() {
	if !s.ended {
		s.ended = true
		close(s.doneCh)
	}
}

func (s *memSession) keepAlive() {
	m := s.c.m
	t := time.NewTicker(max(s.ttl/3, time.Millisecond))
	defer t.Stop()
	for {
		m.mu.Lock()
		wait := time.Until(s.deadline)
		m.mu.Unlock()
		dl := time.NewTimer(wait)
		select {
		case <-s.stop:
			dl.Stop()
			return
		case <-t.C:
		case <-dl.C:
		}
		dl.Stop()
		m.mu.Lock()
		switch l := m.leases[s.lease]; {
		case s.ended:
		case s.c.reachableLocked() && l == nil:
			s.endLocked() // the lease expired or was revoked
		case s.c.reachableLocked():
			l.deadline = time.Now().Add(l.ttl)
			s.deadline = l.deadline
			m.armLocked(l)
		case !time.Now().Before(s.deadline):
			s.endLocked() // no renewal for a TTL: given up
		}
		ended := s.ended || s.c.closed
		m.mu.Unlock()
		if ended {
			return
		}
	}
}

// close stops the renewals and revokes the lease, within the request
// time-out.
func (s *memSession) close() {
	s.stopOnce.Do(func() { close(s.stop) })
	m := s.c.m
	m.mu.Lock()
	s.endLocked()
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.c.o.Timeout)
	defer cancel()
	s.c.await(ctx, func() error {
		if l := m.leases[s.lease]; l != nil {
			m.revokeLocked(l)
		}
		return nil
	})
}

func (s *memSession) timeLeft(ctx context.Context) (d time.Duration, err error) {
	err = s.c.await(ctx, func() error {
		d = -1
		if l := s.c.m.leases[s.lease]; l != nil {
			d = time.Until(l.deadline)
		}
		return nil
	})
	return d, err
}

// campaign is etcd's Election.Campaign: the session's key, created under
// its lease if it is not there yet, wins once no key under the election
// is older. Like etcd's, it does not notice its own key going while it
// waits (its Done does).
func (s *memSession) campaign(ctx context.Context, election, val string) (string, int64, error) {
	m := s.c.m
	pfx := election + "/"
	key := fmt.Sprintf("%s%x", pfx, s.lease)
	var rev int64
	err := s.c.await(ctx, func() error {
		if m.leases[s.lease] == nil {
			return errors.New("memory witness: requested lease not found")
		}
		if kv := m.kv[key]; kv != nil {
			rev = kv.create
			if kv.val != val {
				m.applyLocked(op{key: key, val: val}, s.lease)
			}
			return nil
		}
		m.applyLocked(op{key: key, val: val}, s.lease)
		rev = m.kv[key].create
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	for {
		won := false
		var ch chan struct{}
		err := s.c.await(ctx, func() error {
			won = true
			for k, kv := range m.kv {
				if strings.HasPrefix(k, pfx) && kv.create < rev {
					won = false
				}
			}
			ch = m.changed
			return nil
		})
		if err == nil && won {
			return key, rev, nil
		}
		if err == nil {
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-ch:
				continue
			}
		}
		// Clean up, as etcd's Campaign does when its context ends.
		rctx, cancel := context.WithTimeout(context.Background(), s.c.o.Timeout)
		s.c.txn(rctx, key, rev, op{key: key, del: true})
		cancel()
		return "", 0, err
	}
}
