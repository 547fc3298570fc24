package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTrials runs $NETRAID_TRIALS trials (default: one of each fault,
// with and without a witness), seeded by $NETRAID_TRIALS_SEED (default:
// random, logged). It fails if any acknowledged write was lost or any
// trial failed.
func TestTrials(t *testing.T) {
	if msg := ready(faults); msg != "" {
		t.Skip(msg)
	}
	cfg := config{Trials: envInt(t, "NETRAID_TRIALS", len(faults)), Faults: faults, DiskSize: 64 << 20, Out: &lineLog{t: t}}
	cfg.Seed = uint64(envInt(t, "NETRAID_TRIALS_SEED", int(time.Now().UnixNano()%(1<<40))))
	dir, err := os.MkdirTemp("", "netraid-trials-")
	if err != nil {
		t.Fatal(err)
	}
	cfg.LogDir = dir
	sum := (&runner{cfg: cfg}).run(context.Background())
	if sum.Bad() || len(sum.Results) != cfg.Trials {
		t.Fatalf("%d of %d trials lost writes, %d failed; logs in %s (NETRAID_TRIALS_SEED=%d reruns them)",
			sum.Lost, cfg.Trials, sum.Failed, dir, cfg.Seed)
	}
	os.RemoveAll(dir)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("$%s=%q: want a positive number", name, v)
	}
	return n
}

// lineLog passes whole lines to t.Log.
type lineLog struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			return len(p), nil
		}
		l.t.Log(strings.TrimSuffix(line, "\n"))
	}
}

// Every fault comes up once before any comes up twice, and a seed
// always gives the same schedule.
func TestSchedule(t *testing.T) {
	s := schedule(7, faults, 12)
	if len(s) != 12 {
		t.Fatalf("%d trials scheduled, want 12", len(s))
	}
	first := names(s[:len(faults)])
	slices.Sort(first)
	all := faultNames()
	slices.Sort(all)
	if !slices.Equal(first, all) {
		t.Fatalf("the first round %v is not every fault %v", first, all)
	}
	if !slices.Equal(names(s), names(schedule(7, faults, 12))) {
		t.Fatal("the same seed gave another schedule")
	}
}

func TestPickFaults(t *testing.T) {
	got, err := pickFaults("slow-link, kill-primary", false)
	if err != nil || !slices.Equal(names(got), []string{"kill-primary", "slow-link"}) {
		t.Fatalf("pickFaults: %v %v", names(got), err)
	}
	if _, err := pickFaults("kill-primary,meteor", false); err == nil || !strings.Contains(err.Error(), "meteor") {
		t.Fatalf("an unknown fault: %v", err)
	}
	got, err = pickFaults(strings.Join(faultNames(), ","), true)
	if err != nil || !slices.Equal(names(got), names(witnessFaults)) {
		t.Fatalf("--witness picked %v (%v), want %v", names(got), err, names(witnessFaults))
	}
	if _, err := pickFaults("kill-primary", true); err == nil || !strings.Contains(err.Error(), "--witness") {
		t.Fatalf("--witness with only a manual fault: %v", err)
	}
}

// The existing faults run on a pair whose failover is manual; the new
// ones on a fenced pair; names are unique.
func TestFaultKinds(t *testing.T) {
	for _, f := range manualFaults {
		if f.witness {
			t.Errorf("%s runs with a witness", f.name)
		}
	}
	for _, f := range witnessFaults {
		if !f.witness {
			t.Errorf("%s runs without a witness", f.name)
		}
	}
	seen := map[string]bool{}
	for _, n := range faultNames() {
		if seen[n] {
			t.Errorf("fault %s named twice", n)
		}
		seen[n] = true
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	printTable(&b, summary{Results: []result{
		{N: 1, Fault: "link-cut", What: "link down, then up", At: 300, Acked: 900, Stall: 2100 * time.Millisecond, Recovery: 1500 * time.Millisecond, Outcome: "ok"},
		{N: 2, Fault: "kill-primary", What: "kill -9 a", At: 200, Acked: 201, Unknown: 4, Lost: 3, Outcome: "LOST", Detail: "2048 blocks: 3 lost"},
		{N: 3, Fault: "isolate-primary", What: "a isolated", At: 500, Acked: 502, Failover: 6340 * time.Millisecond, Recovery: 3 * time.Second, Outcome: "ok"},
		{N: 4, Fault: "slow-link", What: "slow link", At: 400, Acked: 1400, Stall: 97 * time.Millisecond, Recovery: 20 * time.Millisecond, Outcome: "ok"},
	}})
	out := b.String()
	for _, want := range []string{"recovery", "failover", "2.1s", "1.5s", "6.3s", "<100ms", "LOST", "trial 2 (kill-primary) LOST: 2048 blocks: 3 lost"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " 0s ") {
		t.Errorf("a recovery shorter than the rounding reads as none (0s):\n%s", out)
	}
	if strings.Contains(out, "trial 1 (") {
		t.Errorf("a detail line for a trial that was ok:\n%s", out)
	}
}
