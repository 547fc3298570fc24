package resync

import (
	"context"
	"sync"
	"time"
)

// bucket is the token arithmetic of Limiter, apart from clocks and
// sleeping: tokens are bytes, earned at rate per second up to burst, and
// spent in advance — a request larger than what is saved up drives the
// balance negative, and the next one waits until it is paid back.
type bucket struct {
	rate   float64 // bytes per second; 0 means unlimited
	tokens float64
	last   time.Time
}

// burstTime is how much unused rate a bucket saves up: a copy that was
// idle (paused, or slowed by the application) may catch up this much.
const burstTime = 100 * time.Millisecond

// burst returns the most tokens the bucket holds.
func (b *bucket) burst() float64 { return b.rate * burstTime.Seconds() }

// refill earns the tokens due since the last call.
func (b *bucket) refill(now time.Time) {
	if b.rate > 0 && now.After(b.last) {
		b.tokens = min(b.tokens+b.rate*now.Sub(b.last).Seconds(), b.burst())
	}
	b.last = now
}

// take spends n tokens at now.
func (b *bucket) take(now time.Time, n int64) {
	b.refill(now)
	if b.rate > 0 {
		b.tokens -= float64(n)
	}
}

// wait returns how long from now until the balance is no longer negative.
func (b *bucket) wait(now time.Time) time.Duration {
	b.refill(now)
	if b.rate <= 0 || b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// setRate changes the rate from now on; the debt already run up is kept
// (a lower rate pays it back more slowly), and unlimited forgives it.
func (b *bucket) setRate(now time.Time, rate int64) {
	b.refill(now)
	b.rate = float64(max(rate, 0))
	if b.rate == 0 {
		b.tokens = 0
	}
	b.tokens = min(b.tokens, b.burst())
}

// Limiter limits a flow of bytes to a rate. It is safe for concurrent use.
type Limiter struct {
	mu      sync.Mutex
	b       bucket
	changed chan struct{} // closed and replaced by SetRate
}

// maxSleep bounds one sleep of Wait, so that a rate change is noticed.
const maxSleep = 250 * time.Millisecond

// NewLimiter returns a limiter of rate bytes per second; 0 is unlimited.
func NewLimiter(rate int64) *Limiter {
	l := &Limiter{changed: make(chan struct{})}
	l.b.setRate(time.Now(), rate)
	return l
}

// SetRate changes the rate; waiters see it at once.
func (l *Limiter) SetRate(rate int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if int64(l.b.rate) == max(rate, 0) {
		return
	}
	l.b.setRate(time.Now(), rate)
	close(l.changed)
	l.changed = make(chan struct{})
}

// Rate returns the rate in bytes per second, 0 if unlimited.
func (l *Limiter) Rate() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(l.b.rate)
}

// Wait spends n bytes and returns when the rate allows it, or with ctx's
// error.
func (l *Limiter) Wait(ctx context.Context, n int64) error {
	l.mu.Lock()
	l.b.take(time.Now(), n)
	l.mu.Unlock()
	for {
		l.mu.Lock()
		d, changed := l.b.wait(time.Now()), l.changed
		l.mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(min(d, maxSleep))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}
