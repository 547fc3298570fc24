package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Producer bounds.
const (
	DefaultProducerCount    = 10000
	DefaultProducerDuration = 2 * time.Minute
)

// ProducerOptions shape and bound a Producer's load.
type ProducerOptions struct {
	Endpoint Endpoint
	Queue    string
	First    int           // first sequence number (a second producer continues where one ended)
	Count    int           // at most this many messages (default DefaultProducerCount)
	Duration time.Duration // for at most this long (default DefaultProducerDuration)
	Size     int           // body size in bytes (at least the sequence line)
	Conns    int           // connections sending in parallel, one message at a time each (default 1)
}

// Report is what a Producer did.
type Report struct {
	Acked   []int // sorted: the broker acknowledged them, so they must survive
	Unknown []int // sorted: sent without an answer, so they may or may not survive
	Err     error // the first error that ended a connection; nil if a bound or Stop ended it
}

// Producer sends numbered persistent messages, each with a receipt, until
// its count or time runs out, Stop is called, or the broker fails.
type Producer struct {
	o      ProducerOptions
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	mu      sync.Mutex // guards the fields below
	next    int
	acked   []int
	unknown []int
	err     error
}

// StartProducer connects o.Conns clients, then starts sending. The
// connections fail or succeed here; later failures end up in the Report.
// ctx ends the producer as Stop does.
func StartProducer(ctx context.Context, o ProducerOptions) (*Producer, error) {
	if o.Count <= 0 {
		o.Count = DefaultProducerCount
	}
	if o.Duration <= 0 {
		o.Duration = DefaultProducerDuration
	}
	if o.Conns <= 0 {
		o.Conns = 1
	}
	if o.Queue == "" {
		return nil, errors.New("broker: ProducerOptions.Queue is required")
	}
	clients := make([]*Client, 0, o.Conns)
	for range o.Conns {
		c, err := o.Endpoint.Dial(ctx)
		if err != nil {
			for _, c := range clients {
				c.Close()
			}
			return nil, err
		}
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	p := &Producer{o: o, cancel: cancel, done: make(chan struct{}), next: o.First}
	for _, c := range clients {
		p.wg.Add(1)
		go p.run(ctx, c)
	}
	go func() {
		p.wg.Wait()
		cancel()
		close(p.done)
	}()
	return p, nil
}

// run sends on one connection until a bound, ctx or an error ends it. A
// message in flight is always waited for (at most the client's time-out).
func (p *Producer) run(ctx context.Context, c *Client) {
	defer p.wg.Done()
	defer c.Close()
	for ctx.Err() == nil {
		seq, ok := p.take()
		if !ok {
			return
		}
		if err := c.Send(p.o.Queue, Body(seq, p.o.Size)); err != nil {
			p.settle(seq, fmt.Errorf("broker: producer message %d: %w", seq, err))
			return
		}
		p.settle(seq, nil)
	}
}

func (p *Producer) take() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil || p.next >= p.o.First+p.o.Count {
		return 0, false
	}
	p.next++
	return p.next - 1, true
}

func (p *Producer) settle(seq int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.acked = append(p.acked, seq)
		return
	}
	p.unknown = append(p.unknown, seq)
	if p.err == nil {
		p.err = err
	}
}

// Acked returns the numbers acknowledged so far, sorted.
func (p *Producer) Acked() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return sorted(p.acked)
}

// Done is closed once every connection stopped sending.
func (p *Producer) Done() <-chan struct{} { return p.done }

// Wait waits until the producer ends by itself and reports.
func (p *Producer) Wait() Report {
	<-p.done
	return p.report()
}

// Stop ends the producer, waiting for messages in flight, and reports.
func (p *Producer) Stop() Report {
	p.cancel()
	return p.Wait()
}

func (p *Producer) report() Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Report{Acked: sorted(p.acked), Unknown: sorted(p.unknown), Err: p.err}
}

func sorted(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
