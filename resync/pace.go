package resync

import (
	"context"
	"sync"
	"time"
)

// DefaultFloorRate is the rate an adaptive copy drops to while the
// application does I/O, when Options does not say: enough that a peer
// catches up under a steady load within hours, not days (md's
// speed_limit_min, 1 MiB/s, leaves a 1 TiB resync under load for 12
// days), and little beside what the application gets from the disks.
const DefaultFloorRate = 16 << 20

// effectiveRate is the rate a copy runs at: the configured rate, lowered to
// the floor while the application is busy if the copy is adaptive. 0 is
// unlimited.
func effectiveRate(rate, floor int64, adaptive, busy bool) int64 {
	if adaptive && busy && floor > 0 && (rate == 0 || rate > floor) {
		return floor
	}
	return rate
}

// pacer paces a copy or a verify: rate limit, adaptive floor and pause.
type pacer struct {
	lim      *Limiter
	mu       sync.Mutex
	rate     int64
	floor    int64
	adaptive bool
	resume   chan struct{} // non-nil while paused; closed by Resume
}

func newPacer(rate, floor int64, adaptive bool) *pacer {
	if floor <= 0 {
		floor = DefaultFloorRate
	}
	return &pacer{lim: NewLimiter(rate), rate: max(rate, 0), floor: floor, adaptive: adaptive}
}

func (p *pacer) setRate(rate int64) {
	p.mu.Lock()
	p.rate = max(rate, 0)
	p.mu.Unlock()
	p.lim.SetRate(rate)
}

func (p *pacer) getRate() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate
}

func (p *pacer) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume == nil {
		p.resume = make(chan struct{})
	}
}

func (p *pacer) unpause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
}

// wait blocks while paused — calling onPause(true) when it starts waiting
// and onPause(false) when it goes on — then spends n bytes at the rate that
// applies now.
func (p *pacer) wait(ctx context.Context, n int64, busy bool, onPause func(bool)) error {
	p.mu.Lock()
	resume := p.resume
	p.mu.Unlock()
	if resume != nil {
		onPause(true)
		select {
		case <-resume:
		case <-ctx.Done():
			onPause(false)
			return ctx.Err()
		}
		onPause(false)
	}
	p.mu.Lock()
	rate := effectiveRate(p.rate, p.floor, p.adaptive, busy)
	p.mu.Unlock()
	p.lim.SetRate(rate)
	return p.lim.Wait(ctx, n)
}

// Progress describes a resync or verify under way.
type Progress struct {
	// Done is the bytes copied (or compared) so far; Total is Done plus
	// what is left as far as known now (writes may add to it).
	Done, Total int64
	// Rate is the average bytes per second while not paused; ETA the time
	// left at that rate (0 when unknown).
	Rate float64
	ETA  time.Duration
	// Paused is true while the copy is paused.
	Paused bool
	// Cursor is the byte offset of the next region the run visits: safe
	// to persist and pass to a later run as Options.StartAt. Regions the
	// run has passed were copied, flushed and their bits cleaned (when the
	// mirror allows cleaning), so a later run started there copies only
	// the rest, plus whatever was written or left dirty behind the cursor.
	Cursor int64
}

// meter measures the rate of a run, leaving out time spent paused.
type meter struct {
	start    time.Time
	idle     time.Duration
	pausedAt time.Time // zero unless paused
}

func (m *meter) pause(now time.Time) {
	if m.pausedAt.IsZero() {
		m.pausedAt = now
	}
}

func (m *meter) unpause(now time.Time) {
	if !m.pausedAt.IsZero() {
		m.idle += now.Sub(m.pausedAt)
		m.pausedAt = time.Time{}
	}
}

// progress fills in Rate, ETA and Paused for done of total bytes.
func (m *meter) progress(now time.Time, done, total, cursor int64) Progress {
	p := Progress{Done: done, Total: max(total, done), Cursor: cursor, Paused: !m.pausedAt.IsZero()}
	active := now.Sub(m.start) - m.idle
	if p.Paused {
		active -= now.Sub(m.pausedAt)
	}
	if active > 0 && done > 0 {
		p.Rate = float64(done) / active.Seconds()
		p.ETA = time.Duration(float64(p.Total-done) / p.Rate * float64(time.Second))
	}
	return p
}
