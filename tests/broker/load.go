package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

const seqPrefix = "netraid-seq:"

// Body is a message body carrying seq, padded with '.' to size bytes when
// size is larger than the sequence line.
func Body(seq, size int) []byte {
	b := fmt.Appendf(nil, "%s%d\n", seqPrefix, seq)
	for len(b) < size {
		b = append(b, '.')
	}
	return b
}

// Seq reads the sequence number out of a body made by Body.
func Seq(body []byte) (int, error) {
	line, _, ok := bytes.Cut(body, []byte{'\n'})
	num, found := bytes.CutPrefix(line, []byte(seqPrefix))
	if !ok || !found {
		return 0, fmt.Errorf("%w: %.40q", ErrBadBody, body)
	}
	n, err := strconv.Atoi(string(num))
	if err != nil {
		return 0, fmt.Errorf("%w: %.40q", ErrBadBody, body)
	}
	return n, nil
}

// Lost returns, in order, the acknowledged numbers that were not received.
func Lost(acked []int, received map[int]int) []int {
	var lost []int
	for _, n := range acked {
		if received[n] == 0 {
			lost = append(lost, n)
		}
	}
	slices.Sort(lost)
	return lost
}

// Drain limits.
const (
	maxDrain          = 1 << 24          // messages one DrainAll takes at most
	defaultDrainLimit = 10 * time.Minute // when ctx has no deadline
)

// DrainAll consumes the queue with client-individual acks until no message
// came for idle, and returns how many times each sequence number arrived
// (more than once: redelivered). ctx is checked between messages and its
// deadline bounds each wait; without a deadline DrainAll gives up after ten
// minutes. On error it returns what it got so far with the error.
func DrainAll(ctx context.Context, ep Endpoint, queue string, idle time.Duration) (map[int]int, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultDrainLimit)
		defer cancel()
	}
	got := map[int]int{}
	c, err := ep.Dial(ctx)
	if err != nil {
		return got, err
	}
	if err := drain(ctx, c, queue, idle, got); err != nil {
		c.Close()
		return got, err
	}
	return got, c.Close()
}

func drain(ctx context.Context, c *Client, queue string, idle time.Duration, got map[int]int) error {
	if err := c.Subscribe(queue); err != nil {
		return err
	}
	for range maxDrain {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("broker: drain %s: %w", queue, err)
		}
		wait, capped := idle, false
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			wait, capped = time.Until(dl), true
		}
		m, err := c.Receive(wait)
		if errors.Is(err, ErrNoMessage) {
			if capped { // the deadline, not idleness, ended the wait
				return fmt.Errorf("broker: drain %s: %w", queue, context.DeadlineExceeded)
			}
			return nil
		}
		if err != nil {
			return err
		}
		seq, err := Seq(m.Body)
		if err != nil {
			return fmt.Errorf("broker: drain %s message %s: %w", queue, m.ID, err)
		}
		got[seq]++
		if err := c.Ack(m); err != nil {
			return err
		}
	}
	return fmt.Errorf("broker: drain %s: over %d messages", queue, maxDrain)
}
