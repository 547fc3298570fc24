package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// load is a shape of producers: conns connections, depth writes in flight
// on each.
type load struct {
	name         string
	conns, depth int
}

// parseLoads reads NAME=CONNSxDEPTH[,NAME=CONNSxDEPTH...].
func parseLoads(spec string) ([]load, error) {
	var out []load
	for _, item := range strings.Split(spec, ",") {
		name, shape, ok := strings.Cut(strings.TrimSpace(item), "=")
		cs, ds, ok2 := strings.Cut(shape, "x")
		c, err1 := strconv.Atoi(cs)
		d, err2 := strconv.Atoi(ds)
		if !ok || !ok2 || name == "" || err1 != nil || err2 != nil || c < 1 || d < 1 || c > 256 || d > 1024 {
			return nil, fmt.Errorf("load %q: want NAME=CONNSxDEPTH, 1-256 connections, depth 1-1024", item)
		}
		out = append(out, load{name: name, conns: c, depth: d})
	}
	return out, nil
}

// result is what a load achieved.
type result struct {
	Kind      string  `json:"kind"`
	Store     string  `json:"store"`
	Load      string  `json:"load"`
	Conns     int     `json:"conns"`
	Depth     int     `json:"depth"`
	Msgs      int     `json:"msgs"`
	Seconds   float64 `json:"seconds"`
	MsgsPerS  float64 `json:"msgs_per_s"`
	LatMeanUS float64 `json:"lat_mean_us"`
	LatP50US  float64 `json:"lat_p50_us"`
	LatP99US  float64 `json:"lat_p99_us"`
	LatMaxUS  float64 `json:"lat_max_us"`
	ServerCPU float64 `json:"server_cpu_s,omitempty"`
}

// run drives the store with l's producers for warmup plus duration and
// reports the measured part.
func (l load) run(ctx context.Context, st store, o options) (result, error) {
	pipes := make([]pipe, 0, l.conns)
	defer func() {
		for _, p := range pipes {
			p.close()
		}
	}()
	for range l.conns {
		p, err := st.dial(ctx)
		if err != nil {
			return result{}, err
		}
		pipes = append(pipes, p)
	}
	begin := time.Now()
	from, until := begin.Add(o.warmup), begin.Add(o.warmup+o.duration)
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	cpu := make(chan float64, 2)
	if len(o.cpuPids) > 0 {
		for _, at := range []time.Time{from, until} {
			t := time.AfterFunc(time.Until(at), func() { cpu <- cpuSeconds(o.cpuPids) })
			defer t.Stop()
		}
	}
	lats := make([][]time.Duration, l.conns)
	errs := make([]error, l.conns)
	var wg sync.WaitGroup
	for i, p := range pipes {
		wg.Go(func() {
			dst := fmt.Sprintf("bench.%s.%d", l.name, i)
			lats[i], errs[i] = l.produce(ctx, p, dst, from, i)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	var cpuUsed float64
	if len(o.cpuPids) > 0 {
		c0, c1 := <-cpu, <-cpu
		if c0 < 0 || c1 < 0 {
			return result{}, fmt.Errorf("the CPU time of processes %v could not be read: did one exit?", o.cpuPids)
		}
		cpuUsed = c1 - c0
	}
	all := slices.Concat(lats...)
	secs := o.duration.Seconds()
	res := result{Kind: "load", Store: o.store, Load: l.name, Conns: l.conns, Depth: l.depth,
		Msgs: len(all), Seconds: secs, MsgsPerS: float64(len(all)) / secs, ServerCPU: cpuUsed}
	if len(all) == 0 {
		return res, errors.New("no write was answered in the measured time")
	}
	slices.Sort(all)
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	res.LatMeanUS = us(sum / time.Duration(len(all)))
	res.LatP50US = us(percentile(all, 0.50))
	res.LatP99US = us(percentile(all, 0.99))
	res.LatMaxUS = us(all[len(all)-1])
	return res, nil
}

// produce keeps l.depth writes in flight on p until ctx ends, then waits
// for those in flight. It returns the latencies of the writes answered
// from `from` until ctx's deadline.
func (l load) produce(ctx context.Context, p pipe, dst string, from time.Time, conn int) ([]time.Duration, error) {
	type inflight struct {
		token string
		sent  time.Time
	}
	until, _ := ctx.Deadline()
	var (
		lats []time.Duration
		fifo []inflight
		n    = conn << 32 // message numbers, distinct per connection
	)
	for {
		for ctx.Err() == nil && len(fifo) < l.depth {
			t := time.Now()
			tok, err := p.send(dst, n)
			if err != nil {
				return lats, err
			}
			n++
			fifo = append(fifo, inflight{tok, t})
		}
		if len(fifo) == 0 {
			return lats, nil
		}
		w := fifo[0]
		fifo = fifo[1:]
		if err := p.await(w.token); err != nil {
			return lats, err
		}
		if now := time.Now(); !now.Before(from) && !now.After(until) {
			lats = append(lats, now.Sub(w.sent))
		}
	}
}

// percentile is the nearest-rank percentile q of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
