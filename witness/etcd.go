package witness

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// etcdConn is a connection to etcd at Options.Endpoints: the witness in
// production.
type etcdConn struct {
	o   Options
	cli *clientv3.Client
}

func dialEtcd(o Options) (*etcdConn, error) {
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
	return &etcdConn{o: o, cli: cli}, nil
}

func (e *etcdConn) String() string { return "etcd " + strings.Join(e.o.Endpoints, ",") }

func (e *etcdConn) close() error { return e.cli.Close() }

// grant: etcd counts leases in whole seconds, one at least.
func (e *etcdConn) grant(ctx context.Context, ttl time.Duration) (session, error) {
	secs := max(int64(ttl/time.Second), 1)
	lease, err := e.cli.Grant(ctx, secs)
	if err != nil {
		return nil, err
	}
	s, err := concurrency.NewSession(e.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(secs)))
	if err != nil {
		return nil, err
	}
	return &etcdSession{e: e, s: s}, nil
}

func (e *etcdConn) get(ctx context.Context, key string) ([]byte, int64, bool, error) {
	resp, err := e.cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return nil, 0, false, err
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, true, nil
}

func (e *etcdConn) first(ctx context.Context, prefix string) ([]byte, int64, bool, error) {
	resp, err := e.cli.Get(ctx, prefix, clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		return nil, 0, false, err
	}
	return resp.Kvs[0].Value, resp.Kvs[0].CreateRevision, true, nil
}

func (e *etcdConn) txn(ctx context.Context, guard string, rev int64, o op) (bool, error) {
	do := clientv3.OpPut(o.key, o.val)
	if o.del {
		do = clientv3.OpDelete(o.key)
	}
	if o.ifMod != 0 {
		// A nested transaction: the guard decides Succeeded, the key's
		// revision only whether the write is made.
		do = clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(o.key), "=", o.ifMod)}, []clientv3.Op{do}, nil)
	}
	resp, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(guard), "=", rev)).Then(do).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// etcdSession is etcd's concurrency.Session: the client renews the lease
// every third of its TTL, and gives it up TTL after the last renewal it
// got.
type etcdSession struct {
	e *etcdConn
	s *concurrency.Session
}

func (s *etcdSession) done() <-chan struct{} { return s.s.Done() }

func (s *etcdSession) close() { s.s.Close() }

func (s *etcdSession) timeLeft(ctx context.Context) (time.Duration, error) {
	r, err := s.e.cli.TimeToLive(ctx, s.s.Lease())
	if err != nil {
		return 0, err
	}
	return time.Duration(r.TTL) * time.Second, nil
}

func (s *etcdSession) campaign(ctx context.Context, election, val string) (string, int64, error) {
	el := concurrency.NewElection(s.s, election)
	if err := el.Campaign(ctx, val); err != nil {
		return "", 0, err
	}
	return el.Key(), el.Rev(), nil
}
