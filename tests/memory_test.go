package tests

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// TestMemoryBudgetManyClients: 64 clients each put 32 MiB of reads in
// flight and never take a reply, then a well-behaved client writes and
// reads back. The daemon's peak RSS stays within its --memory-budget plus
// a stated overhead (without the budget, each would hold its 32 MiB: 2
// GiB), the daemon says that requests wait for the budget, and the
// well-behaved client, whose requests fit in a connection's reserve, goes
// on.
func TestMemoryBudgetManyClients(t *testing.T) {
	const (
		budget   = 128 << 20
		hogs     = 64
		reads    = 8
		readSize = 4 << 20
	)
	// No read-ahead: the daemon's buffers are then the requests' alone.
	n, addr := serveNode(t, "budget", "--memory-budget", "128MiB", "--readahead", "0")
	before, _ := n.Status()
	pid := daemonPID(t, n)
	baseline := memKiB(t, pid, "VmRSS") << 10
	// The overhead: Go's collector lets the heap grow to twice what is
	// live (one budget more), each connection has its read buffer and
	// goroutines (256 KiB is ample), and 64 MiB for the rest.
	bound := baseline + 2*budget + (hogs+1)*(256<<10) + 64<<20

	var conns []*rawConn
	for h := range hogs {
		r := dialRaw(t, addr)
		r.open("budget")
		for i := range reads {
			off := uint64(h*reads+i) * readSize % uint64(before.Size-readSize)
			r.request(cmdRead, uint64(i), off, readSize, nil)
		}
		conns = append(conns, r)
	}
	stop := guardRSS(t, pid, bound+256<<20, conns)
	defer stop()
	// The daemon has taken in a read of 4 MiB per client, twice its
	// budget, and holds what the budget lets it: the rest wait.
	n.WaitStatus(60*time.Second, "a read per client taken in", func(s node.Status) bool {
		return s.Export.Requests >= before.Export.Requests+hogs
	})
	waitLog(t, n, "memory budget reached: requests wait", 60*time.Second)
	good := startGoodClient(t, addr, "budget")
	good.progress(t, "while 64 clients hold reads they do not take")
	stop()
	peak := memKiB(t, pid, "VmHWM") << 10
	ops, worst := good.stop(t)
	t.Logf("peak RSS %s: baseline %s, bound %s (twice the %s budget, 256 KiB per connection, 64 MiB)",
		humanize.IBytes(uint64(peak)), humanize.IBytes(uint64(baseline)), humanize.IBytes(uint64(bound)), humanize.IBytes(budget))
	t.Logf("the well-behaved client: %d verified write+read pairs, slowest %v", ops, worst.Round(time.Millisecond))
	if peak > bound {
		t.Fatalf("peak RSS %s is above the bound %s", humanize.IBytes(uint64(peak)), humanize.IBytes(uint64(bound)))
	}
}

// waitLog waits until the node's log says what.
func waitLog(t *testing.T, n *harness.Node, what string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if log, _ := os.ReadFile(n.Log); strings.Contains(string(log), what) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not log %q within %v:\n%s", what, within, n.Tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// guardRSS keeps the machine safe from a daemon whose memory runs away:
// past limit, it closes the clients that make it grow. stop ends the
// guard and reports a breach.
func guardRSS(t *testing.T, pid int, limit int64, conns []*rawConn) (stop func()) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan int64, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				done <- 0
				return
			case <-tick.C:
			}
			if rss := rssBytes(pid); rss > limit {
				for _, r := range conns {
					r.nc.Close()
				}
				done <- rss
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			if rss := <-done; rss > 0 {
				t.Fatalf("the daemon's RSS reached %s, past %s: its clients were cut", humanize.IBytes(uint64(rss)), humanize.IBytes(uint64(limit)))
			}
		})
	}
}

// rssBytes is a process's resident set, 0 if it cannot be read.
func rssBytes(pid int) int64 {
	kb, _ := statusKiB(pid, "VmRSS")
	return kb << 10
}
