package node_test

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/internal/sim"
)

var (
	exploreFor   = flag.Duration("explore", 0, "explore random schedules for this long (0: a short run)")
	exploreSeed  = flag.Uint64("seed", 0, "replay this seed only")
	exploreSteps = flag.Int("steps", 40, "steps per schedule")
	exploreFrom  = flag.Uint64("from", 1, "the first seed of a run")
	exploreOff   = flag.String("off", "", "steps to leave out, comma-separated (e.g. disk-hang,pause)")
)

// TestExplore runs randomized schedules of writes, flushes, link cuts,
// pauses, crashes, restarts, promotions, demotions, disk faults and
// verifies on an in-process pair, and checks the data-safety rules after
// every step. A failure prints its seed: go test ./node -run TestExplore
// -seed N replays it.
func TestExplore(t *testing.T) {
	budget := 45 * time.Second
	if *exploreFor > 0 {
		budget = *exploreFor
	}
	if testing.Short() {
		budget = 3 * time.Second
	}
	if *exploreSeed != 0 {
		res, log, err := explore(*exploreSeed)
		if err != nil {
			t.Logf("node logs:\n%s", tail(log, 300))
			var f *sim.Failure
			if errors.As(err, &f) && f.Stacks != "" {
				t.Logf("goroutines when the call was found stuck:\n%s", f.Stacks)
			}
			t.Fatalf("%v", err)
		}
		t.Logf("schedule:\n  %s", strings.Join(res.Schedule, "\n  "))
		return
	}
	// Schedules mostly wait (for time-outs, a resync): several run at
	// once, each on its own pair.
	const workers = 3
	var (
		mu                    sync.Mutex
		next                  = *exploreFrom
		runs, writes, durable int
		excused               int
		unsettled             []uint64
		failed                error
		failedLog             []byte
	)
	deadline := time.Now().Add(budget)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				if failed != nil || time.Now().After(deadline) {
					mu.Unlock()
					return
				}
				seed := next
				next++
				mu.Unlock()
				res, log, err := explore(seed)
				mu.Lock()
				runs++
				writes += res.Writes
				durable += res.Durable
				excused += res.Excused
				if res.Unsettled {
					unsettled = append(unsettled, seed)
				}
				if err != nil && failed == nil {
					failed, failedLog = err, log
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d schedules of %d steps, %d writes acknowledged (%d durable), %d blocks excused (taken alone by a primary)", runs, *exploreSteps, writes, durable, excused)
	if len(unsettled) > 0 {
		t.Logf("%d schedules did not come back in sync after every fault was healed (seeds %v)", len(unsettled), unsettled)
	}
	if failed != nil {
		var f *sim.Failure
		if errors.As(failed, &f) {
			t.Logf("node logs of the failing schedule:\n%s", tail(failedLog, 300))
			if f.Stacks != "" {
				t.Logf("goroutines when the call was found stuck:\n%s", f.Stacks)
			}
			t.Fatalf("%v\nreplay: go test ./node -run TestExplore -seed %d -v", failed, f.Seed)
		}
		t.Fatal(failed)
	}
}

// explore runs the schedule of one seed, returning the nodes' logs.
func explore(seed uint64) (sim.Result, []byte, error) {
	var log bytes.Buffer
	res, err := sim.Explore(sim.ExploreOptions{
		Seed: seed, Steps: *exploreSteps,
		NewNet:  func(uint64) sim.Net { return sim.NewSimNet() },
		Cluster: sim.Options{Log: &syncWriter{w: &log}},
		Weights: weights(),
	})
	return res, log.Bytes(), err
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func tail(b []byte, lines int) []byte {
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n > lines {
				return b[i+1:]
			}
		}
	}
	return b
}

func weights() map[string]int {
	w := map[string]int{}
	for _, name := range strings.Split(*exploreOff, ",") {
		if name != "" {
			w[name] = 0
		}
	}
	return w
}
