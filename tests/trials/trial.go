package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// Bounds of one trial's waits and workload.
const (
	syncTimeout    = 2 * time.Minute // a resync, rebuild or reconnect
	ackTimeout     = time.Minute     // the workload acknowledging some more writes
	stopTimeout    = 30 * time.Second
	checkerBlocks  = 2048 // 8 MiB of 4 KiB records
	checkerWorkers = 4    // the workload's writers: at most one write each in flight
	checkerFile    = "diskcheck"
)

// result is one row of the table.
type result struct {
	N        int
	Fault    string        // the fault's name
	What     string        // what was done, for a reader: "kill -9 a (primary); failover to b"
	At       int64         // acknowledged writes when the fault struck
	Acked    int64         // acknowledged writes in all
	Unknown  int           // writes in flight (unacknowledged) when the workload stopped
	Lost     int           // blocks that lost an acknowledged write
	Stall    time.Duration // the longest the workload waited for an acknowledgement (0: it died)
	Failover time.Duration // from the fault to the other node promoted by itself (0: none)
	Recovery time.Duration // from the start of recovery until the copies were in sync again
	Outcome  string        // ok, LOST (an acknowledged write missing), FAIL (a step failed)
	Detail   string        // why, when not ok
	// Defect is something wrong that did not stop the trial (a daemon
	// that crashed and was restarted): the outcome is FAIL unless LOST.
	Defect string
}

// trial is the state of one trial while it runs.
type trial struct {
	s    *harness.Script
	rng  *rand.Rand
	cfg  config
	res  *result
	p    *harness.Pair
	w    *harness.Witness // the pair's etcd, for the faults with a witness; nil otherwise
	prim *harness.Node    // the node serving the volume now
	sec  *harness.Node
	m    *harness.Mount // the workload's mount; nil once it died with its machine
	chk  *harness.DiskChecker
	file string                   // chk's file, in the mount
	from time.Time                // when the workload started
	rep  *harness.DiskCheckReport // set once the workload stopped
	// earlier are the workloads that ran before a failover moved the
	// workload to the new primary, all stopped; the check verifies them
	// too.
	earlier []ran
}

// ran is a workload that stopped and the file it wrote.
type ran struct {
	chk  *harness.DiskChecker
	file string
}

// runTrial runs one trial under s; a step that fails aborts it through
// s (the caller's Run turns that into the FAIL outcome).
func runTrial(s *harness.Script, cfg config, f fault, rng *rand.Rand, res *result) {
	tr := &trial{s: s, rng: rng, cfg: cfg, res: res}
	if f.witness {
		tr.setUpFenced()
	} else {
		tr.setUp()
	}
	tr.startWorkload()
	res.At = int64(100 + rng.IntN(2900))
	tr.logf("workload running; the fault strikes at %d acknowledged writes", res.At)
	tr.chk.WaitAcked(s, res.At, ackTimeout)
	res.At = tr.chk.Acked()
	heal := f.strike(tr)
	begin := time.Now()
	heal()
	res.Recovery = time.Since(begin)
	tr.logf("recovered in %v: %s", res.Recovery.Round(time.Millisecond), res.What)
	tr.check()
}

func (tr *trial) logf(format string, args ...any) {
	tr.s.Logf("[%s] %s", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// setUp makes the pair, promotes a and waits for the first sync.
func (tr *trial) setUp() {
	s := tr.s
	tr.p = harness.NewPair(s, harness.PairOptions{DiskSize: tr.cfg.DiskSize, Args: []string{"--fault-injection"}})
	tr.keepLogs()
	tr.prim, tr.sec = tr.p.A, tr.p.B
	tr.prim.CLI("promote")
	harness.WaitInSync(s, tr.prim, syncTimeout)
}

// startWorkload mounts the primary's export (a new ext4 the first time;
// after a failover, the filesystem the old primary left, its journal
// replayed) and starts a workload on a file of its own.
func (tr *trial) startWorkload() {
	s := tr.s
	first := tr.chk == nil
	if !first {
		if tr.rep == nil || tr.m != nil {
			s.Fatal("trials: the workload moves only once it stopped and its mount is gone")
		}
		tr.earlier = append(tr.earlier, ran{tr.chk, tr.file})
	}
	k := len(tr.earlier)
	tr.file = fmt.Sprintf("%s-%d", checkerFile, k)
	tr.m = harness.MountNBD(s, tr.p.File(fmt.Sprintf("m-work-%d", k)), tr.prim.URI("vol"), first)
	tr.rep = nil
	tr.chk = harness.StartDiskChecker(s, harness.DiskCheckerOptions{
		Path:     filepath.Join(tr.m.Dir, tr.file),
		Blocks:   checkerBlocks,
		Workers:  checkerWorkers,
		Duration: 5 * time.Minute,
		Seed:     tr.rng.Uint64(),
	})
	tr.from = time.Now()
}

// keepLogs copies both nodes' logs next to the trial's log when the
// trial ends, before the pair's directory goes.
func (tr *trial) keepLogs() {
	p, dir, n := tr.p, tr.cfg.LogDir, tr.res.N
	tr.s.Cleanup(func() {
		for _, nd := range []*harness.Node{p.A, p.B} {
			nd.Kill()
			if b, err := os.ReadFile(nd.Log); err == nil {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("trial-%02d-%s.log", n, nd.Name)), b, 0o644)
			}
		}
	})
}

// moreAcks waits until the workload acknowledged n more writes: the
// volume serves.
func (tr *trial) moreAcks(n int64, why string) {
	tr.s.Helper()
	want := tr.chk.Acked() + n
	tr.logf("waiting for %d more acknowledged writes (%s)", n, why)
	tr.chk.WaitAcked(tr.s, want, ackTimeout)
}

// hold is how long a fault lasts, in writes acknowledged meanwhile.
func (tr *trial) hold() int64 { return int64(300 + tr.rng.IntN(1500)) }

// stopWorkload stops the workload once and records its report.
func (tr *trial) stopWorkload() {
	if tr.rep != nil {
		return
	}
	rep, err := tr.chk.Stop(stopTimeout)
	if err != nil {
		tr.s.Fatal(err)
	}
	tr.rep = &rep
	tr.res.Acked += rep.Acked
	tr.res.Unknown += rep.Unknown
	tr.res.Stall = max(tr.res.Stall, rep.MaxStall)
	tr.logf("workload stopped: %d writes, %d acknowledged, %d in flight, longest stall %v (from %s), errors %v",
		rep.Writes, rep.Acked, rep.Unknown, rep.MaxStall.Round(time.Millisecond),
		rep.StallEnd.Add(-rep.MaxStall).Format("15:04:05.000"), rep.Errors)
}

// waitInSync waits until the serving node has its peer connected, every
// leg up to date, no rebuild and no failed member. It logs the progress
// every few seconds.
func (tr *trial) waitInSync() {
	tr.s.Helper()
	last := time.Now()
	tr.prim.WaitStatus(syncTimeout, "the copies in sync", func(st node.Status) bool {
		if synced(st) {
			return true
		}
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			tr.logf("%s: not in sync yet: %s", tr.prim.Name, progress(st))
		}
		return false
	})
}

func synced(st node.Status) bool {
	if !harness.InSync(st) || st.Rebuild != nil || st.DiskState != "up-to-date" {
		return false
	}
	for _, m := range st.Members {
		if m.State != "active" {
			return false
		}
	}
	return true
}

// progress sums a status up in a line.
func progress(st node.Status) string {
	s := fmt.Sprintf("disk %s, out of sync %s", st.DiskState, humanize.IBytes(uint64(st.OutOfSync)))
	if st.Peer != nil {
		s += ", peer " + st.Peer.State
	}
	for _, l := range st.Legs {
		s += fmt.Sprintf(", leg %s %s", l.Name, l.State)
	}
	for _, r := range []*node.ResyncStatus{st.Resync, st.Rebuild} {
		if r != nil {
			s += fmt.Sprintf(", %s %s of %s at %s/s", r.Kind, humanize.IBytes(uint64(r.Done)), humanize.IBytes(uint64(r.Total)), humanize.IBytes(uint64(r.Rate)))
		}
	}
	return s
}

// check is the end of every trial: the workload writes a little more on
// the recovered pair if it still runs, then stops; the workload's
// filesystem is checked; a fresh mount of the serving copy must hold
// every acknowledged write; and, demoted (with a witness: stopped, the
// secondary first, so that nobody promotes itself meanwhile), both copies
// must be identical.
func (tr *trial) check() {
	s := tr.s
	if tr.rep == nil {
		tr.moreAcks(100, "the recovered pair serves")
	}
	tr.stopWorkload()
	if tr.m != nil {
		tr.logf("unmounting the workload's filesystem; e2fsck")
		tr.m.UnmountAndCheck()
		tr.m = nil
	}
	vm := harness.MountNBD(s, tr.p.File("m-verify"), tr.prim.URI("vol"), false)
	var lost []string
	for _, w := range append(tr.earlier, ran{tr.chk, tr.file}) {
		got, err := w.chk.Verify(filepath.Join(vm.Dir, w.file))
		if err != nil {
			s.Fatal(err)
		}
		tr.logf("verify %s through a fresh mount of %s: %v", w.file, tr.prim.Name, got)
		tr.res.Lost += len(got.Lost)
		if len(got.Lost) > 0 {
			lost = append(lost, w.file+": "+got.String())
		}
	}
	vm.UnmountAndCheck()
	tr.logf("e2fsck clean after recovery")
	// The server notices nbdfuse's exit a moment later; demote refuses clients.
	tr.prim.WaitStatus(stopTimeout, "nbdfuse gone", func(st node.Status) bool { return st.Export != nil && st.Export.Clients == 0 })
	if tr.w != nil {
		tr.logf("stopping %s (secondary), then %s (primary)", tr.sec.Name, tr.prim.Name)
		tr.sec.Stop()
		tr.prim.Stop()
	} else {
		tr.prim.CLI("demote")
	}
	harness.SameData(s, tr.p.A, tr.p.B)
	switch {
	case tr.res.Lost > 0:
		tr.res.Outcome, tr.res.Detail = "LOST", strings.Join(append(lost, tr.res.Defect), "\n")
	case tr.res.Defect != "":
		tr.res.Outcome, tr.res.Detail = "FAIL", tr.res.Defect
	default:
		tr.res.Outcome = "ok"
	}
}
