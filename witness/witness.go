package witness

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultTTL is the lease of a node's session: a node whose daemon or
// machine dies, or that loses etcd, loses the election this long after
// its last renewal.
const DefaultTTL = 3 * time.Second

// Errors. Callers test with errors.Is.
var (
	// ErrNotLeader: the write was guarded by an election key this node
	// no longer holds (its lease expired, another node won): it did not
	// happen.
	ErrNotLeader = errors.New("witness: this node does not hold the volume's election")
	// ErrUnreachable: etcd did not answer in time.
	ErrUnreachable = errors.New("witness: etcd unreachable")
)

// Options configure a Client.
type Options struct {
	// Endpoints are etcd's client URLs or HOST:PORTs.
	Endpoints []string
	// TLS, if set, is the client TLS configuration for etcd.
	TLS *tls.Config
	// Backend, if set, is the witness the client talks to instead of
	// etcd at Endpoints: a Memory, for tests and the simulation.
	Backend Backend
	// TTL is the session's lease; DefaultTTL if zero.
	TTL time.Duration
	// Volume and Node name the election and this node in it.
	Volume, Node string
	// Timeout bounds each request to etcd (the TTL if zero).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Backend is a witness other than etcd at Options.Endpoints. Only this
// package makes them (Memory).
type Backend interface {
	connect(o Options) (conn, error)
}

// conn is a client's connection to its witness, etcd's or a Memory's,
// with etcd's semantics. Its errors are the context's when a request
// did not get through in time.
type conn interface {
	// grant opens a session: a lease of ttl, kept alive while the
	// witness answers.
	grant(ctx context.Context, ttl time.Duration) (session, error)
	// get reads a key, and the revision of its last change.
	get(ctx context.Context, key string) (value []byte, modRev int64, ok bool, err error)
	// first returns the key under prefix created first.
	first(ctx context.Context, prefix string) (value []byte, createRev int64, ok bool, err error)
	// txn applies op if guard's create revision is rev, and says
	// whether it did.
	txn(ctx context.Context, guard string, rev int64, op op) (bool, error)
	close() error
	String() string
}

// op is a write in a guarded transaction: a put, or a delete. With
// ifMod, it applies only if the key's last change was at that revision
// (the transaction still succeeds when it is not: the guard held).
type op struct {
	key, val string
	del      bool
	ifMod    int64
}

// session is a lease kept alive, and the election under it.
type session interface {
	// done is closed when the lease expired (no renewal for its TTL,
	// as the client counts it) or was revoked.
	done() <-chan struct{}
	// timeLeft is the lease's time left as the witness counts it; <= 0
	// when expired.
	timeLeft(ctx context.Context) (time.Duration, error)
	// campaign puts this session's key under election+"/" (or finds
	// it) and waits until no key there is older; it returns the key and
	// its create revision. If ctx ends first the key is removed.
	campaign(ctx context.Context, election, val string) (key string, rev int64, err error)
	// close revokes the lease, within the request time-out.
	close()
}

// Client is one node's view of its volume's witness: a connection to it,
// the node's session (a lease kept alive), the election under it, and
// the records of outdated copies.
type Client struct {
	o      Options
	cli    conn
	prefix string
	log    *slog.Logger

	mu   sync.Mutex
	sess session
}

// New returns a client of the witness. It does not wait for etcd: the
// first request does.
func New(o Options) (*Client, error) {
	if len(o.Endpoints) == 0 && o.Backend == nil {
		return nil, errors.New("witness: no etcd endpoints")
	}
	if o.Volume == "" || o.Node == "" {
		return nil, errors.New("witness: the volume and the node need names")
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Timeout <= 0 {
		o.Timeout = o.TTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var cli conn
	var err error
	if o.Backend != nil {
		cli, err = o.Backend.connect(o)
	} else {
		cli, err = dialEtcd(o)
	}
	if err != nil {
		return nil, err
	}
	return &Client{o: o, cli: cli, prefix: "/netraid/v1/" + o.Volume + "/", log: o.Logger}, nil
}

// Close ends the session (its election key goes with its lease) and the
// client.
func (c *Client) Close() error {
	c.mu.Lock()
	s := c.sess
	c.sess = nil
	c.mu.Unlock()
	if s != nil {
		s.close() // revokes the lease: the election key goes at once
	}
	return c.cli.close()
}

// TTL is the session's lease.
func (c *Client) TTL() time.Duration { return c.o.TTL }

// session returns the live session, making one if there is none or the
// last one ended.
func (c *Client) session(ctx context.Context) (session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sess; s != nil {
		select {
		case <-s.done():
		default:
			return s, nil
		}
	}
	// The lease is granted within the request time-out; the session
	// then lives on the client's context, not the caller's.
	gctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	s, err := c.cli.grant(gctx, c.o.TTL)
	cancel()
	if err != nil {
		return nil, c.unreachable(err)
	}
	c.sess = s
	return s, nil
}

func (c *Client) unreachable(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return fmt.Errorf("witness: %w", err)
}

func (c *Client) electionPrefix() string { return c.prefix + "election" }
func (c *Client) outdatedKey(node string) string {
	return c.prefix + "outdated/" + node
}

// Leadership is this node's win of the volume's election.
type Leadership struct {
	c    *Client
	sess session
	key  string
	// Token is the fencing token: the revision at which this node's
	// election key was created. A later winner has a larger one.
	Token int64
}

// Done is closed when the session under the leadership ended: its lease
// expired (the node lost etcd for a TTL) or was revoked.
func (l *Leadership) Done() <-chan struct{} { return l.sess.done() }

// TimeLeft is how long the leadership's lease has left, as the witness
// counts it: the session renews it every third of the TTL, so it stays
// between two thirds of the TTL and the TTL while the witness answers.
func (l *Leadership) TimeLeft(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, l.c.o.Timeout)
	defer cancel()
	d, err := l.sess.timeLeft(ctx)
	if err != nil {
		return 0, l.c.unreachable(err)
	}
	return max(d, 0), nil
}

// Key is the election key this leadership holds.
func (l *Leadership) Key() string { return l.key }

// Campaign waits until this node wins the volume's election, or ctx ends.
// It wins once every key older than its own is gone: the keys of nodes
// that resigned, or whose lease expired.
func (c *Client) Campaign(ctx context.Context) (*Leadership, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	key, rev, err := s.campaign(ctx, c.electionPrefix(), c.o.Node)
	if err != nil {
		return nil, c.unreachable(err)
	}
	return &Leadership{c: c, sess: s, key: key, Token: rev}, nil
}

// Resign gives the election up: the next candidate wins.
func (l *Leadership) Resign(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.c.o.Timeout)
	defer cancel()
	if _, err := l.c.cli.txn(ctx, l.key, l.Token, op{key: l.key, del: true}); err != nil {
		return l.c.unreachable(err)
	}
	return nil
}

// Record is an outdated copy, as the witness keeps it.
type Record struct {
	// Node is the node whose copy is outdated.
	Node string `json:"node"`
	// Generation is the primary's data generation from which on that
	// copy lacks writes.
	Generation uint64 `json:"generation"`
	// By is the primary that recorded it, and Token its fencing token.
	By    string    `json:"by"`
	Token int64     `json:"token"`
	Time  time.Time `json:"time"`
	// Rev is the witness's revision of the record's last change (not
	// stored in it): ClearOutdated removes this record only.
	Rev int64 `json:"-"`
}

// RecordOutdated records that node's copy is outdated as of gen, in a
// transaction guarded by this leadership's key: it happens only if this
// node still holds the election (else ErrNotLeader), and only then may
// the primary answer writes that node did not get.
func (l *Leadership) RecordOutdated(ctx context.Context, node string, gen uint64) error {
	r := Record{Node: node, Generation: gen, By: l.c.o.Node, Token: l.Token, Time: time.Now().UTC()}
	b, _ := json.Marshal(r)
	return l.guarded(ctx, op{key: l.c.outdatedKey(node), val: string(b)})
}

// ClearOutdated removes r, node's record as Outdated read it, guarded
// like RecordOutdated: once its copy holds the primary's data again. A
// record made since r was read stays (the copy fell behind again after
// the moment the caller means): a removal delayed in flight may not
// erase it.
func (l *Leadership) ClearOutdated(ctx context.Context, r *Record) error {
	return l.guarded(ctx, op{key: l.c.outdatedKey(r.Node), del: true, ifMod: r.Rev})
}

func (l *Leadership) guarded(ctx context.Context, o op) error {
	ctx, cancel := context.WithTimeout(ctx, l.c.o.Timeout)
	defer cancel()
	ok, err := l.c.cli.txn(ctx, l.key, l.Token, o)
	if err != nil {
		return l.c.unreachable(err)
	}
	if !ok {
		return ErrNotLeader
	}
	return nil
}

// Outdated returns the record of node's copy, or nil if there is none.
func (c *Client) Outdated(ctx context.Context, node string) (*Record, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	v, rev, ok, err := c.cli.get(ctx, c.outdatedKey(node))
	if err != nil {
		return nil, c.unreachable(err)
	}
	if !ok {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("witness: the record of %s's copy does not parse: %w", node, err)
	}
	r.Node, r.Rev = node, rev // the key names the node
	return &r, nil
}

// Holder is who holds the volume's election.
type Holder struct {
	Node  string `json:"node"`
	Token int64  `json:"token"`
}

// Leader returns who holds the election now, or a zero Holder if no one
// does.
func (c *Client) Leader(ctx context.Context) (Holder, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	v, rev, ok, err := c.cli.first(ctx, c.electionPrefix()+"/")
	if err != nil {
		return Holder{}, c.unreachable(err)
	}
	if !ok {
		return Holder{}, nil
	}
	return Holder{Node: string(v), Token: rev}, nil
}

// String describes the client for logs.
func (c *Client) String() string {
	return fmt.Sprintf("%s, volume %s, node %s", c.cli, c.o.Volume, c.o.Node)
}
