package main

import (
	"context"
	"time"

	"github.com/netraid/netraid/tests/broker"
)

// amq is an ActiveMQ broker (Debian's package, its configuration changed
// only in its data directory and STOMP connector: see package broker).
type amq struct {
	b    *broker.Broker
	size int
}

func startActiveMQ(ctx context.Context, o options) (store, error) {
	b, err := broker.Launch(ctx, broker.Options{DataDir: o.data, WorkDir: o.work, Heap: o.heap})
	if err != nil {
		return nil, err
	}
	return &amq{b: b, size: o.size}, nil
}

func (a *amq) dial(ctx context.Context) (pipe, error) {
	c, err := a.b.Endpoint().Dial(ctx)
	if err != nil {
		return nil, err
	}
	return &stompPipe{c: c, size: a.size}, nil
}

func (a *amq) pid() int               { return a.b.Pid() }
func (a *amq) started() time.Duration { return a.b.StartupTime() }
func (a *amq) stop() error            { return a.b.Stop() }

// stompPipe sends persistent messages with receipts on one connection.
type stompPipe struct {
	c    *broker.Client
	size int
}

func (p *stompPipe) send(dst string, n int) (string, error) {
	return p.c.SendAsync(dst, broker.Body(n, p.size))
}

func (p *stompPipe) await(id string) error { return p.c.AwaitReceipt(id) }
func (p *stompPipe) close() error          { return p.c.Close() }
