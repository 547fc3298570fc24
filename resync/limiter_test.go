package resync

import (
	"context"
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestBucketMath(t *testing.T) {
	b := bucket{last: t0}
	b.setRate(t0, 1000) // burst 100 bytes
	b.take(t0, 500)
	if w := b.wait(t0); w != 500*time.Millisecond {
		t.Fatalf("after taking 500 at 1000 B/s: wait %v, want 500ms", w)
	}
	if w := b.wait(at(400 * time.Millisecond)); w != 100*time.Millisecond {
		t.Fatalf("400ms later: wait %v, want 100ms", w)
	}
	if w := b.wait(at(500 * time.Millisecond)); w != 0 {
		t.Fatalf("paid back: wait %v, want 0", w)
	}
	// Idle time saves up no more than the burst.
	b.refill(at(10 * time.Second))
	if b.tokens != 100 {
		t.Fatalf("after 10s idle: %v tokens, want the burst of 100", b.tokens)
	}
	b.take(at(10*time.Second), 150)
	if w := b.wait(at(10 * time.Second)); w != 50*time.Millisecond {
		t.Fatalf("150 from a full bucket: wait %v, want 50ms", w)
	}
	// A higher rate pays the debt back sooner.
	b.setRate(at(10*time.Second), 2000)
	if w := b.wait(at(10 * time.Second)); w != 25*time.Millisecond {
		t.Fatalf("after doubling the rate: wait %v, want 25ms", w)
	}
	// Unlimited forgives the debt and never waits.
	b.setRate(at(10*time.Second), 0)
	b.take(at(10*time.Second), 1<<40)
	if w := b.wait(at(10 * time.Second)); w != 0 {
		t.Fatalf("unlimited: wait %v", w)
	}
}

// TestBucketLongRunRate: a copier that takes a region, waits as told, and
// takes the next, moves rate bytes per second on average.
func TestBucketLongRunRate(t *testing.T) {
	const rate = 10 << 20
	const region = 1 << 20
	for _, chunk := range []int64{4096, region, 8 * region} {
		b := bucket{last: t0}
		b.setRate(t0, rate)
		now := t0
		var moved int64
		for moved < 200*region {
			b.take(now, chunk)
			now = now.Add(b.wait(now))
			moved += chunk
		}
		got := float64(moved) / now.Sub(t0).Seconds()
		// Paying in advance: the last chunk's wait is included, so the
		// average is at most the rate, and only a chunk below it.
		low := float64(rate) * (1 - float64(chunk)/float64(moved) - 0.001)
		if got > rate*1.0001 || got < low {
			t.Fatalf("chunk %d: %.0f B/s over %v, want %d", chunk, got, now.Sub(t0), rate)
		}
	}
}

func TestEffectiveRate(t *testing.T) {
	for _, c := range []struct {
		rate, floor    int64
		adaptive, busy bool
		want           int64
	}{
		{100, 10, false, true, 100},
		{100, 10, true, false, 100},
		{100, 10, true, true, 10},
		{0, 10, true, true, 10},
		{0, 10, true, false, 0},
		{5, 10, true, true, 5}, // already below the floor
	} {
		if got := effectiveRate(c.rate, c.floor, c.adaptive, c.busy); got != c.want {
			t.Errorf("effectiveRate(%+v) = %d, want %d", c, got, c.want)
		}
	}
}

func TestMeter(t *testing.T) {
	m := meter{start: t0}
	p := m.progress(at(time.Second), 100, 300, 4096)
	if p.Rate != 100 || p.ETA != 2*time.Second || p.Paused || p.Cursor != 4096 {
		t.Fatalf("progress %+v", p)
	}
	m.pause(at(time.Second))
	p = m.progress(at(3*time.Second), 100, 300, 0)
	if !p.Paused || p.Rate != 100 {
		t.Fatalf("paused: %+v, want the rate of the active second", p)
	}
	m.unpause(at(3 * time.Second))
	p = m.progress(at(4*time.Second), 300, 300, 0)
	if p.Rate != 150 || p.ETA != 0 {
		t.Fatalf("after resume: %+v, want 150 B/s over 2 active seconds", p)
	}
	if p := (&meter{start: t0}).progress(t0, 0, 10, 0); p.Rate != 0 || p.ETA != 0 {
		t.Fatalf("nothing done: %+v", p)
	}
}

func TestLimiterWaitEndsOnCancelAndOnRateChange(t *testing.T) {
	l := NewLimiter(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, 1<<30) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v", err)
	}
	go func() { done <- l.Wait(context.Background(), 1<<30) }()
	l.SetRate(0)
	if err := <-done; err != nil {
		t.Fatalf("Wait after SetRate(0): %v", err)
	}
	if l.Rate() != 0 {
		t.Fatalf("Rate = %d", l.Rate())
	}
}
