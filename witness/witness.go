package witness

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
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
	// TTL is the session's lease; DefaultTTL if zero.
	TTL time.Duration
	// Volume and Node name the election and this node in it.
	Volume, Node string
	// Timeout bounds each request to etcd (the TTL if zero).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Client is one node's view of its volume's witness: an etcd client, the
// node's session (a lease kept alive), the election under it, and the
// records of outdated copies.
type Client struct {
	o      Options
	cli    *clientv3.Client
	prefix string
	log    *slog.Logger

	mu   sync.Mutex
	sess *concurrency.Session
}

// New returns a client of the witness. It does not wait for etcd: the
// first request does.
func New(o Options) (*Client, error) {
	if len(o.Endpoints) == 0 {
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
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		TLS:         o.TLS,
		DialTimeout: o.Timeout,
		// A quiet logger: the node says what matters in its own log.
		Logger:               zap.NewNop(),
		DialKeepAliveTime:    o.TTL,
		DialKeepAliveTimeout: o.Timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("witness: etcd client: %w", err)
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
		s.Close() // revokes the lease: the election key goes at once
	}
	return c.cli.Close()
}

// TTL is the session's lease.
func (c *Client) TTL() time.Duration { return c.o.TTL }

// session returns the live session, making one if there is none or the
// last one ended.
func (c *Client) session(ctx context.Context) (*concurrency.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sess; s != nil {
		select {
		case <-s.Done():
		default:
			return s, nil
		}
	}
	// The lease is granted within the request time-out; the session
	// then lives on the client's context, not the caller's.
	ttl := max(int64(c.o.TTL/time.Second), 1)
	gctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	lease, err := c.cli.Grant(gctx, ttl)
	cancel()
	if err != nil {
		return nil, c.unreachable(err)
	}
	s, err := concurrency.NewSession(c.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(ttl)))
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
	sess *concurrency.Session
	e    *concurrency.Election
	// Token is the fencing token: the revision at which this node's
	// election key was created. A later winner has a larger one.
	Token int64
}

// Done is closed when the session under the leadership ended: its lease
// expired (the node lost etcd for a TTL) or was revoked.
func (l *Leadership) Done() <-chan struct{} { return l.sess.Done() }

// TimeLeft is how long the leadership's lease has left, as the witness
// counts it: the session renews it every third of the TTL, so it stays
// between two thirds of the TTL and the TTL while the witness answers.
func (l *Leadership) TimeLeft(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, l.c.o.Timeout)
	defer cancel()
	r, err := l.c.cli.TimeToLive(ctx, l.sess.Lease())
	if err != nil {
		return 0, l.c.unreachable(err)
	}
	if r.TTL < 0 {
		return 0, nil // expired
	}
	return time.Duration(r.TTL) * time.Second, nil
}

// Key is the election key this leadership holds.
func (l *Leadership) Key() string { return l.e.Key() }

// Campaign waits until this node wins the volume's election, or ctx ends.
// It wins once every key older than its own is gone: the keys of nodes
// that resigned, or whose lease expired.
func (c *Client) Campaign(ctx context.Context) (*Leadership, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	e := concurrency.NewElection(s, c.electionPrefix())
	if err := e.Campaign(ctx, c.o.Node); err != nil {
		return nil, c.unreachable(err)
	}
	return &Leadership{c: c, sess: s, e: e, Token: e.Rev()}, nil
}

// Resign gives the election up: the next candidate wins.
func (l *Leadership) Resign(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.c.o.Timeout)
	defer cancel()
	if err := l.e.Resign(ctx); err != nil {
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
}

// RecordOutdated records that node's copy is outdated as of gen, in a
// transaction guarded by this leadership's key: it happens only if this
// node still holds the election (else ErrNotLeader), and only then may
// the primary answer writes that node did not get.
func (l *Leadership) RecordOutdated(ctx context.Context, node string, gen uint64) error {
	r := Record{Node: node, Generation: gen, By: l.c.o.Node, Token: l.Token, Time: time.Now().UTC()}
	b, _ := json.Marshal(r)
	return l.guarded(ctx, clientv3.OpPut(l.c.outdatedKey(node), string(b)))
}

// ClearOutdated removes node's record, guarded like RecordOutdated: once
// its copy holds the primary's data again.
func (l *Leadership) ClearOutdated(ctx context.Context, node string) error {
	return l.guarded(ctx, clientv3.OpDelete(l.c.outdatedKey(node)))
}

func (l *Leadership) guarded(ctx context.Context, op clientv3.Op) error {
	ctx, cancel := context.WithTimeout(ctx, l.c.o.Timeout)
	defer cancel()
	resp, err := l.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.e.Key()), "=", l.Token)).
		Then(op).Commit()
	if err != nil {
		return l.c.unreachable(err)
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	return nil
}

// Outdated returns the record of node's copy, or nil if there is none.
func (c *Client) Outdated(ctx context.Context, node string) (*Record, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	resp, err := c.cli.Get(ctx, c.outdatedKey(node))
	if err != nil {
		return nil, c.unreachable(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return nil, fmt.Errorf("witness: the record of %s's copy does not parse: %w", node, err)
	}
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
	resp, err := c.cli.Get(ctx, c.electionPrefix()+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return Holder{}, c.unreachable(err)
	}
	if len(resp.Kvs) == 0 {
		return Holder{}, nil
	}
	kv := resp.Kvs[0]
	return Holder{Node: string(kv.Value), Token: kv.CreateRevision}, nil
}

// String describes the client for logs.
func (c *Client) String() string {
	return fmt.Sprintf("etcd %s, volume %s, node %s", strings.Join(c.o.Endpoints, ","), c.o.Volume, c.o.Node)
}
