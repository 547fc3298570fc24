package promoter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
)

// retryEvery is how often a client that cannot reach the broker tries
// again.
const retryEvery = 100 * time.Millisecond

// Die kills the node's machine: it goes off the network first (its link
// and, given w, the witness's network), so that nothing it had open is
// closed in good order, as after a power cut; then its netraid daemon
// (kill -9), its broker and its nbdfuse die. It returns when it began.
func (s *Services) Die(w *harness.Witness) time.Time {
	s.t.Helper()
	start := time.Now()
	if m := s.Node.Machine; m != nil {
		m.LinkDown(s.t)
		if w != nil {
			w.CutNode(m)
		}
	}
	s.Node.Kill()
	s.Crash()
	return start
}

// WaitBroker waits until the node's broker answers a STOMP CONNECT, and
// returns how long that took; it fails the test after within.
func (s *Services) WaitBroker(within time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		c, err := s.Broker.Dial(attempt)
		cancelAttempt()
		if err == nil {
			c.Close()
			return time.Since(start)
		}
		last = err
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s's broker did not answer within %v: %v\nits log: %s\nthe node's log:\n%s",
				s.Node.Name, within, last, s.Work+"/broker.log", s.Node.Tail())
		case <-time.After(retryEvery):
		}
	}
}

// FirstAck is a producer coming back after a failover: it connects to
// the broker at ep, again and again until one accepts, and sends message
// seq (persistent, with a receipt) until the broker acknowledges it. It
// returns when that was, or ctx's error with the last failure.
func FirstAck(ctx context.Context, ep broker.Endpoint, queue string, seq, size int) (time.Time, error) {
	var last error
	for {
		if err := sendOne(ctx, ep, queue, seq, size); err == nil {
			return time.Now(), nil
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no message acknowledged by %s: %w (last: %v)", ep, ctx.Err(), last)
		case <-time.After(retryEvery):
		}
	}
}

func sendOne(ctx context.Context, ep broker.Endpoint, queue string, seq, size int) error {
	attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := ep.Dial(attempt)
	if err != nil {
		return err
	}
	return errors.Join(c.Send(queue, broker.Body(seq, size)), c.Close())
}
