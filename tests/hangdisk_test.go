package tests

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// TestHungDiskServedThroughPeer: a member disk of the primary hangs (its
// NBD server is stopped with SIGSTOP under a loop device) while a
// verifying workload runs. The volume stalls about --disk-timeout, then
// is served through the peer; the workload sees no error; status answers
// throughout; then it shows the local copy failed and names the member.
// How long the volume stalled is printed, not asserted.
func TestHungDiskServedThroughPeer(t *testing.T) {
	requirePair(t)
	harness.RequireRoot(t, "nbdkit", "nbdfuse", "fusermount3")
	const diskTimeout = 3 * time.Second
	var hd *harness.HangDisk
	p := harness.NewPair(t, harness.PairOptions{
		Args: []string{"--disk-timeout", diskTimeout.String()},
		Disk: func(dir, name string, i int, size int64) string {
			if name != "a" || i != 0 {
				return ""
			}
			hd = harness.NewHangDisk(t, dir, "a-hang", size)
			return hd.Dev
		},
	})
	promoteA(t, p)
	probe := startProbe(t, p.A.Socket, "vol", 200<<20)
	load := harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=16",
		"--size=48M", "--number_ios=16000", "--verify=crc32c", "--do_verify=1", "--verify_backlog=512", "--rate_iops=2000")
	p.A.WaitStatus(time.Minute, "writes under way", func(s node.Status) bool { return s.Export.BytesWritten > 4<<20 })

	// A write to a region nothing has written yet needs its write
	// intent recorded: during the hang, that is a bitmap write to the
	// hung member too.
	freshConn := dialExport(t, p.A.Socket, "vol")
	hd.Hang()
	hung := time.Now()
	fresh := startWrite(freshConn, 150<<20, hung)
	polls := pollStatus(t, p.A, func(s node.Status) bool {
		return legState(s, "local") == "failed"
	}, load)
	r, fioErr := load.Result(5 * time.Minute)
	pr := probe.stop()
	fw := fresh.wait()

	// What happened, in full, before any verdict.
	t.Logf("status during the stall: %d calls, slowest %v, %d stale; the local leg showed failed %.2fs after the hang; first stale problem: %q",
		polls.calls, polls.slowest.Round(time.Millisecond), polls.stale, polls.failedAfter.Seconds(), polls.staleProblem)
	var fioW, fioR float64
	if len(r.Jobs) > 0 {
		fioW, fioR = time.Duration(r.Jobs[0].Write.ClatNS.Max).Seconds(), time.Duration(r.Jobs[0].Read.ClatNS.Max).Seconds()
	}
	stalled := max(pr.worst.Seconds(), fioW, fioR, fw.took.Seconds())
	t.Logf("VOLUME STALLED %.2fs with --disk-timeout %v: the longest of the probe's write+flush+read (%.2fs, of %d rounds, begun %+.2fs from the hang), "+
		"fio's longest write (%.2fs) and read (%.2fs), and a write+flush to a fresh region begun as the disk hung (%.2fs, error: %v)",
		stalled, diskTimeout, pr.worst.Seconds(), pr.rounds, pr.worstAt.Sub(hung).Seconds(), fioW, fioR, fw.took.Seconds(), fw.err)
	if pr.errs > 0 {
		t.Errorf("%d of the probe's %d rounds through the export failed, the first begun %+.2fs from the hang: %v",
			pr.errs, pr.rounds, pr.firstErrAt.Sub(hung).Seconds(), pr.firstErr)
	}
	if fw.err != nil {
		t.Errorf("a write to a fresh region (its write intent not yet recorded) begun as the disk hung failed: %v", fw.err)
	}
	if fioErr != nil {
		t.Errorf("the verifying workload failed: %v", fioErr)
	}
	checkServedThroughPeer(t, p.A, hd.Dev)
}

// checkServedThroughPeer checks, after a member disk failed, that the
// node's status shows that disk failed, the others active, the volume
// served through the peer, and no request answered with an error.
func checkServedThroughPeer(t *testing.T, n *harness.Node, failed string) {
	t.Helper()
	st := statusWithin(t, n, 5*time.Second)
	human := n.CLI("status")
	t.Logf("netraid status after the hang:\n%s", human)
	if legState(st, "local") != "failed" {
		t.Errorf("the local leg is %q, want failed", legState(st, "local"))
	}
	if legState(st, "peer") != "up-to-date" {
		t.Errorf("the peer leg is %q: the volume must be served through it", legState(st, "peer"))
	}
	if st.Export.Errors != 0 {
		t.Errorf("the export answered %d requests with errors", st.Export.Errors)
	}
	if !lineWith(human, failed, "failed") {
		t.Errorf("'netraid status' does not show the disk %s as failed", failed)
	}
	for _, m := range st.Members {
		want := "active"
		if m.Path == failed {
			want = "failed"
		}
		if m.State != want {
			t.Errorf("member %d (%s) is %q: want %q (the failed disk is %s)", m.Index, m.Path, m.State, want, failed)
		}
	}
}

// pendingWrite is a write and flush of 4 KiB in the background.
type pendingWrite struct {
	since time.Time
	done  chan writeAnswer
}

type writeAnswer struct {
	took time.Duration // from since
	err  error
}

// startWrite writes and flushes 4 KiB at off through c in the
// background; wait returns how long it took from since.
func startWrite(c *nbd.Client, off int64, since time.Time) *pendingWrite {
	w := &pendingWrite{since: since, done: make(chan writeAnswer, 1)}
	go func() {
		buf := bytes.Repeat([]byte("fresh region "), 4096/13+1)[:4096]
		_, err := c.WriteAt(buf, off)
		if err == nil {
			err = c.Flush()
		}
		w.done <- writeAnswer{time.Since(since), err}
	}()
	return w
}

func (w *pendingWrite) wait() writeAnswer {
	select {
	case a := <-w.done:
		return a
	case <-time.After(time.Minute):
		return writeAnswer{time.Since(w.since), fmt.Errorf("no answer within a minute")}
	}
}

// lineWith reports whether a line of text holds every one of words.
func lineWith(text string, words ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}

// statusPolls is what pollStatus saw.
type statusPolls struct {
	calls, stale int
	slowest      time.Duration
	failedAfter  time.Duration // until cond held
	staleProblem string
}

// pollStatus asks the node for its status every 300ms, each call with a
// time limit of its own, until cond has held and the workload is done;
// a call not answered fails the test.
func pollStatus(t *testing.T, n *harness.Node, cond func(node.Status) bool, load *harness.Fio) statusPolls {
	t.Helper()
	var ps statusPolls
	start := time.Now()
	held := false
	for !held || !load.Done() {
		if time.Since(start) > 3*time.Minute {
			t.Fatalf("%s: no local failure after 3 minutes of a hung disk (status answered %d calls)\nlog and goroutines:\n%s",
				n.Name, ps.calls, n.Dump())
		}
		t0 := time.Now()
		st := statusWithin(t, n, 3*time.Second)
		ps.calls++
		ps.slowest = max(ps.slowest, time.Since(t0))
		if st.Stale {
			ps.stale++
			if ps.staleProblem == "" && len(st.Problems) > 0 {
				ps.staleProblem = st.Problems[len(st.Problems)-1]
			}
		}
		if !held && cond(st) {
			held, ps.failedAfter = true, time.Since(start)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return ps
}

// probe writes, flushes and reads back 4 KiB through an export in a
// loop, every 20ms, and keeps the longest round and the first error.
type probe struct {
	c    *nbd.Client
	quit chan struct{}
	done chan struct{}
	mu   sync.Mutex
	res  probeResult
}

type probeResult struct {
	rounds, errs int
	worst        time.Duration
	worstAt      time.Time
	firstErr     error
	firstErrAt   time.Time
}

// dialExport connects to an export, with a request time-out far past any
// stall the tests wait out, and closes the connection at cleanup.
func dialExport(t *testing.T, socket, export string) *nbd.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := nbd.Dial(ctx, "unix", socket, nbd.ClientOptions{Export: export, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("connecting to %s: %v", socket, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func startProbe(t *testing.T, socket, export string, off int64) *probe {
	t.Helper()
	pr := &probe{c: dialExport(t, socket, export), quit: make(chan struct{}), done: make(chan struct{})}
	go pr.run(off)
	t.Cleanup(func() { pr.stop() })
	return pr
}

func (pr *probe) run(off int64) {
	defer close(pr.done)
	buf, got := make([]byte, 4096), make([]byte, 4096)
	deadline := time.Now().Add(5 * time.Minute)
	for i := 0; i < 100000 && time.Now().Before(deadline); i++ {
		select {
		case <-pr.quit:
			return
		default:
		}
		copy(buf, bytes.Repeat([]byte(fmt.Sprintf("probe %08d ", i)), 4096/15+1))
		t0 := time.Now()
		err := pr.round(buf, got, off)
		d := time.Since(t0)
		pr.mu.Lock()
		pr.res.rounds++
		if d > pr.res.worst {
			pr.res.worst, pr.res.worstAt = d, t0
		}
		if err != nil {
			if pr.res.errs == 0 {
				pr.res.firstErr, pr.res.firstErrAt = err, t0
			}
			pr.res.errs++
		}
		pr.mu.Unlock()
		if pr.c.Err() != nil {
			return // the connection is gone
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (pr *probe) round(buf, got []byte, off int64) error {
	if _, err := pr.c.WriteAt(buf, off); err != nil {
		return err
	}
	if err := pr.c.Flush(); err != nil {
		return err
	}
	if _, err := pr.c.ReadAt(got, off); err != nil {
		return err
	}
	if !bytes.Equal(got, buf) {
		return fmt.Errorf("read back %q, wrote %q", got[:15], buf[:15])
	}
	return nil
}

// stop ends the probe and returns what it saw. It is safe to call more
// than once.
func (pr *probe) stop() probeResult {
	select {
	case <-pr.quit:
	default:
		close(pr.quit)
	}
	<-pr.done
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.res
}
