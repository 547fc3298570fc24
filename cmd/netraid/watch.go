package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/netraid/netraid/node"
	"golang.org/x/sys/unix"
)

// progress is a long operation under way: a resync, a rebuild or a
// verify.
type progress struct {
	kind        string // resync, rebuild, verify
	what        string // as shown: "resync (bitmap)", "rebuild (resumed at 12 MiB)"
	done, total int64
	rate        float64 // bytes per second; 0 if unknown
	limit       int64
	eta         time.Duration
	paused      bool
}

func (p progress) fraction() float64 {
	if p.total <= 0 {
		return 1
	}
	return min(max(float64(p.done)/float64(p.total), 0), 1)
}

func (p progress) percent() float64 { return 100 * p.fraction() }

// progressOf lists what st has under way.
func progressOf(st node.Status) []progress {
	var l []progress
	fromResync := func(kind, what string, r *node.ResyncStatus) progress {
		return progress{kind: kind, what: what, done: r.Done, total: r.Total, rate: r.Rate, limit: r.RateLimit,
			eta: (time.Duration(r.ETASeconds) * time.Second).Round(time.Second), paused: r.Paused}
	}
	if r := st.Resync; r != nil {
		l = append(l, fromResync("resync", "resync ("+r.Kind+")", r))
	}
	if r := st.Rebuild; r != nil {
		what := r.Kind
		if what == "" {
			what = "rebuild"
		}
		l = append(l, fromResync("rebuild", what, r))
	}
	if v := st.Verify; v != nil && v.Running {
		l = append(l, progress{kind: "verify", what: "verify", done: v.Done, total: v.Total})
	}
	return l
}

// sample is what the last frame showed of one operation, to work out a
// rate where the daemon gives none (a verify).
type sample struct {
	at   time.Time
	done int64
}

// fillRates sets the rate and ETA of the operations in st that have none,
// from how far each got since the previous frame, and remembers this one.
func fillRates(ps []progress, prev map[string]sample, now time.Time) {
	for i := range ps {
		p := &ps[i]
		s, ok := prev[p.what]
		if p.rate == 0 && !p.paused && ok && p.done > s.done && now.After(s.at) {
			p.rate = float64(p.done-s.done) / now.Sub(s.at).Seconds()
			p.eta = (time.Duration(float64(p.total-p.done)/p.rate) * time.Second).Round(time.Second)
		}
	}
	clear(prev)
	for _, p := range ps {
		prev[p.what] = sample{now, p.done}
	}
}

// progressBar draws fraction as a bar width cells wide inside brackets.
func progressBar(fraction float64, width int) string {
	n := int(fraction*float64(width) + 0.5)
	n = min(max(n, 0), width)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// compactBytes is a size without spaces, for one-line output.
func compactBytes(n int64) string { return strings.ReplaceAll(bytesOf(n), " ", "") }

// watcher redraws a node's status until its context ends.
type watcher struct {
	w        io.Writer
	get      func(context.Context) (node.Status, error)
	interval time.Duration
	// cols is the terminal's width when w is a terminal, else 0: then
	// each refresh is one line (or one JSON object with asJSON).
	cols   int
	asJSON bool
	prev   map[string]sample
}

func (wt *watcher) run(ctx context.Context) error {
	wt.prev = map[string]sample{}
	t := time.NewTicker(wt.interval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, max(wt.interval, 5*time.Second))
		st, err := wt.get(cctx)
		cancel()
		if ctx.Err() != nil {
			return nil // interrupted: what watch is for
		}
		if err := wt.show(st, err, time.Now()); err != nil {
			return err // stdout is gone
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// show writes one refresh.
func (wt *watcher) show(st node.Status, err error, now time.Time) error {
	var ps []progress
	if err == nil {
		ps = progressOf(st)
		fillRates(ps, wt.prev, now)
	}
	switch {
	case wt.asJSON:
		v := any(st)
		if err != nil {
			v = map[string]string{"time": now.UTC().Format(time.RFC3339), "error": err.Error()}
		}
		b, _ := json.Marshal(v)
		_, werr := fmt.Fprintf(wt.w, "%s\n", b)
		return werr
	case wt.cols == 0 && err != nil:
		_, werr := fmt.Fprintf(wt.w, "%s no answer: %v\n", now.Format(time.RFC3339), err)
		return werr
	case wt.cols == 0:
		_, werr := fmt.Fprintf(wt.w, "%s %s\n", now.Format(time.RFC3339), statusLine(st, ps))
		return werr
	}
	var b strings.Builder
	fmt.Fprintf(&b, "netraid status --watch: every %s, Ctrl-C to stop    %s\n\n", wt.interval, now.Format(time.TimeOnly))
	if err != nil {
		fmt.Fprintf(&b, "no answer from the daemon (trying again): %v\n", err)
	} else {
		printStatusWith(&b, st, ps, min(max(wt.cols-70, 10), 40))
	}
	// Home, each line cleared to its end, then everything below: no
	// flicker, and what the previous frame had below is gone.
	frame := "\x1b[H" + strings.ReplaceAll(b.String(), "\n", "\x1b[K\n") + "\x1b[J"
	_, werr := io.WriteString(wt.w, frame)
	return werr
}

// terminalWidth returns w's width in columns if w is a terminal, else 0.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	if ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}
