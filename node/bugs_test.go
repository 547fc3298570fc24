package node_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/internal/sim"
	"github.com/netraid/netraid/node"
)

// wait is how long a test waits for a condition the pair reaches on its
// own (time-outs of a few hundred milliseconds, a resync of 4 MiB).
const wait = 30 * time.Second

// synced is a pair on a simulated network: a primary, b its secondary, in
// sync, with the app writing through a's export.
type synced struct {
	t   *testing.T
	c   *sim.Cluster
	net *sim.SimNet
	app *sim.App
	log *sim.LogWatch
}

func newSynced(t *testing.T, o sim.Options) *synced {
	t.Helper()
	s := &synced{t: t, net: sim.NewSimNet(), log: sim.NewLogWatch()}
	o.Log = s.log
	c, err := sim.NewCluster(s.net, o)
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node logs:\n%s", s.log)
		}
		s.app.Close()
		for _, name := range c.Names {
			for _, d := range c.Procs[name].Disks {
				d.Heal()
			}
			s.net.N.HealAll()
			c.Procs[name].Stop(sim.Kill, wait)
		}
	})
	for _, name := range c.Names {
		if err := c.Procs[name].Start(); err != nil {
			t.Fatal(err)
		}
	}
	s.do("a", node.ActPromote, node.Request{})
	s.app = c.NewApp(wait)
	if err := s.app.Use("a"); err != nil {
		t.Fatal(err)
	}
	s.write(0, 1, false)
	s.flush()
	s.waitFor("the pair in sync", func() bool { _, ok := c.InSync(); return ok })
	return s
}

func (s *synced) do(name, action string, r node.Request) string {
	s.t.Helper()
	msg, err := s.c.Do(name, action, r)
	if err != nil {
		s.t.Fatalf("%s on %s: %v", action, name, err)
	}
	return msg
}

func (s *synced) status(name string) node.Status {
	s.t.Helper()
	st, err := s.c.Status(name)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

func (s *synced) waitFor(what string, cond func() bool) {
	s.t.Helper()
	if err := s.c.WaitFor(wait, what, cond); err != nil {
		s.t.Fatal(err)
	}
}

// waitLog waits for a log line after mark holding every one of subs.
func (s *synced) waitLog(mark int, subs ...string) {
	s.t.Helper()
	deadline := time.After(wait)
	for {
		ch := s.log.Wait()
		if _, ok := s.log.Find(mark, subs...); ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			s.t.Fatalf("no log line with %q within %v", subs, wait)
		}
	}
}

func (s *synced) write(block, n int64, fua bool) *sim.Write {
	s.t.Helper()
	w, out, err := s.app.Write(block, n, fua)
	if out != sim.OK {
		s.t.Fatalf("write %d+%d: %v", block, n, err)
	}
	return w
}

func (s *synced) flush() {
	s.t.Helper()
	if out, err := s.app.Flush(); out != sim.OK {
		s.t.Fatalf("flush: %v", err)
	}
}

func (s *synced) peerState(name string) string {
	st, err := s.c.Status(name)
	if err != nil || st.Peer == nil {
		return ""
	}
	return st.Peer.State
}

// checkIdentical checks that the two copies, reported in sync, hold the
// same write in every block.
func (s *synced) checkIdentical() {
	s.t.Helper()
	ca, err := s.c.Copy("a")
	if err != nil {
		s.t.Fatal(err)
	}
	cb, err := s.c.Copy("b")
	if err != nil {
		s.t.Fatal(err)
	}
	for i := range ca {
		if ca[i] != cb[i] {
			s.t.Fatalf("the pair reports in sync but block %d holds write %d on a and %d on b (a's verdict %s)", i, ca[i], cb[i], s.status("a").Peer.Verdict)
		}
	}
}

// partition cuts the link and waits until both nodes have noticed.
func (s *synced) partition() {
	s.t.Helper()
	s.net.Partition("a", "b")
	s.waitFor("a to notice the link is down", func() bool { return s.peerState("a") == "connecting" })
	s.waitFor("b to notice the link is down", func() bool { return s.peerState("b") != "connected" })
}

// TestPromoteDuringPrimaryHandshakeRefused is bug 1 of the node state
// machine issue: a secondary that has accepted a primary's hello, whose
// link is not yet attached, must refuse promote; otherwise the primary's
// link attaches to a node that is itself primary and resyncs into the
// disks it exports.
func TestPromoteDuringPrimaryHandshakeRefused(t *testing.T) {
	// A handshake of several round trips must fit in the peer time-out.
	s := newSynced(t, sim.Options{Config: func(_ string, cfg *node.Config) { cfg.PeerTimeout = 3 * time.Second }})
	s.partition()
	// Slow the link so that the hello and the open of the export are
	// far apart, then let the primary dial again.
	s.net.Delay("a", "b", 200*time.Millisecond)
	mark := s.log.Mark()
	s.net.Heal("a", "b")
	s.waitLog(mark, `msg="primary connected"`, "node=b")
	if msg, err := s.c.Do("b", node.ActPromote, node.Request{}); err == nil {
		t.Fatalf("b was promoted while a's link was being set up (%q): two primaries, and a would resync into b's export", msg)
	} else if !strings.Contains(err.Error(), "primary") {
		t.Fatalf("promote refused for another reason: %v", err)
	}
	s.net.Delay("a", "b", 0)
	s.waitFor("the pair in sync again", func() bool { _, ok := s.c.InSync(); return ok })
}

// TestResyncTargetInconsistentBeforeWrites is bug 2: the target of a
// resync must be durably inconsistent before it takes the first write of
// the link that resyncs it. Here the secondary cannot record anything
// (its metadata writes fail), so the resync's start fails; a write the
// primary mirrors meanwhile must not land on the secondary's disks while
// they still say up to date, or the secondary, promoted after the
// primary dies, holds that write without the earlier flushed one the
// resync was to bring.
func TestResyncTargetInconsistentBeforeWrites(t *testing.T) {
	s := newSynced(t, sim.Options{Config: func(_ string, cfg *node.Config) { cfg.PeerTimeout = 3 * time.Second }})
	s.partition()
	x := s.write(100, 1, false) // a takes X alone
	s.flush()
	for _, d := range s.c.Procs["b"].Disks {
		d.FailMeta(s.c.Layout().DataOffset)
	}
	s.net.Delay("a", "b", 100*time.Millisecond)
	mark := s.log.Mark()
	s.net.Heal("a", "b")
	// Until a has attached b as a leg, or b's refusal to start the
	// resync has reached a.
	s.waitFor("a to attach b, or to be told b cannot start the resync", func() bool {
		if _, ok := s.log.Find(mark, "node=a", "sync-start"); ok {
			return true
		}
		for _, l := range s.status("a").Legs {
			if l.Name == "peer" && l.State == "resyncing" {
				return true
			}
		}
		return false
	})
	w, out, _ := s.app.Write(400, 1, false) // mirrored while the resync starts
	t.Logf("X = %s, W = %s (%v)", x, w, out)
	if err := s.c.Procs["a"].Stop(sim.Crash, wait); err != nil {
		t.Fatal(err)
	}
	// b's disks work again after b's own restart (its members failed in
	// memory when they could record nothing).
	if err := s.c.Procs["b"].Stop(sim.Crash, wait); err != nil {
		t.Fatal(err)
	}
	for _, d := range s.c.Procs["b"].Disks {
		d.Heal()
	}
	if err := s.c.Procs["b"].Start(); err != nil {
		t.Fatal(err)
	}
	s.do("b", node.ActPromote, node.Request{})
	vals, err := s.c.Copy("b")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.c.Model.CheckPromoted("b", vals); err != nil {
		t.Fatal(err)
	}
}

// TestNewGenerationNotSavedNotAcknowledged is bug 5: a primary that loses
// its peer and cannot record a new generation must not acknowledge the
// writes the peer does not get (it holds them, and status says so);
// otherwise, when the peer is promoted and the two meet, the generations
// say "bitmap resync" instead of "split brain", and the old primary's
// acknowledged writes are overwritten.
func TestNewGenerationNotSavedNotAcknowledged(t *testing.T) {
	s := newSynced(t, sim.Options{})
	s.write(16, 1, false) // region 1 dirty, and left so: no flush
	for _, d := range s.c.Procs["a"].Disks {
		d.FailMeta(s.c.Layout().DataOffset)
	}
	s.partition()
	// X goes to the region already dirty: no bitmap write is needed, but
	// a cannot record the generation it starts by losing b.
	type result struct {
		w   *sim.Write
		out sim.Outcome
		err error
	}
	xc := make(chan result, 1)
	go func() {
		w, out, err := s.app.Write(17, 1, false)
		xc <- result{w, out, err}
	}()
	var x result
	held := false
	s.waitFor("X answered, or held with a's status saying why", func() bool {
		select {
		case x = <-xc:
			return true
		default:
		}
		held = s.status("a").Suspended != ""
		return held
	})
	t.Logf("a's status: suspended %q", s.status("a").Suspended)
	// b is promoted (a looks dead to it) and takes Y; a's disks work
	// again; a's operator demotes it and connects it.
	s.do("b", node.ActPromote, node.Request{})
	appB := s.c.NewApp(wait)
	defer appB.Close()
	if err := appB.Use("b"); err != nil {
		t.Fatal(err)
	}
	if _, out, err := appB.Write(300, 1, true); out != sim.OK {
		t.Fatal(err)
	}
	for _, d := range s.c.Procs["a"].Disks {
		d.Heal()
	}
	// a's operator demotes it (what it held fails); its disks work again
	// after a restart (its members failed in memory when they could
	// record nothing).
	if _, err := s.c.Do("a", node.ActDemote, node.Request{Force: true}); err != nil {
		t.Logf("demote a: %v", err)
	}
	if held {
		select {
		case x = <-xc:
		case <-time.After(wait):
			t.Fatal("X still neither answered nor failed")
		}
	}
	t.Logf("X = %s: %v %v", x.w, x.out, x.err)
	if err := s.c.Procs["a"].Stop(sim.Shutdown, wait); err != nil {
		t.Logf("shutdown a: %v", err)
	}
	s.net.Heal("a", "b")
	if err := s.c.Procs["a"].Start(); err != nil {
		t.Fatal(err)
	}
	s.waitFor("a and b to meet", func() bool {
		st := s.status("a")
		return st.Peer != nil && st.Peer.Verdict != ""
	})
	s.c.WaitFor(5*time.Second, "a resync", func() bool { _, ok := s.c.InSync(); return ok })
	copies := map[string][]sim.WriteID{}
	for _, name := range s.c.Names {
		vals, err := s.c.Copy(name)
		if err != nil {
			t.Fatal(err)
		}
		copies[name] = vals
	}
	if err := s.c.Model.CheckFloor(copies); err != nil {
		t.Fatalf("%v (a's verdict: %s)", err, s.status("a").Peer.Verdict)
	}
}

// TestConcurrentDemotes: two demotions at once (an operator's and the
// fencing's, or two operators') demote once; the second says the node is
// already secondary. Both stopped the same primary before: a panic
// (close of a closed channel) that killed the daemon.
func TestConcurrentDemotes(t *testing.T) {
	s := newSynced(t, sim.Options{})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := s.c.Do("a", node.ActDemote, node.Request{Force: true})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a demote: %v", err)
		}
	}
	if st := s.c.Procs["a"].Node().Status(); st.Role != "secondary" {
		t.Fatalf("a is %s after two demotes", st.Role)
	}
}

// TestCleanShutdownHandsOver: a primary stopped cleanly (SIGTERM, planned
// maintenance) with its peer in sync drains and flushes through its link
// before it closes it: it reports no error and starts no generation of
// its own, so that its peer, promoted, takes it back as a secondary with
// no operator. The daemon's context was done first and closed the link
// under the last flush: a new generation, exit 1, and a split brain.
func TestCleanShutdownHandsOver(t *testing.T) {
	s := newSynced(t, sim.Options{})
	for i := range int64(8) {
		s.write(i, 1, false)
	}
	s.flush()
	s.app.Close()
	mark := s.log.Mark()
	if err := s.c.Procs["a"].Stop(sim.Shutdown, wait); err != nil {
		t.Fatalf("a's clean stop: %v", err)
	}
	if line, ok := s.log.Find(mark, "node=a", "peer leg failed"); ok {
		t.Fatalf("a's clean stop failed its peer leg: %s", line)
	}
	s.waitFor("b to see a's link end", func() bool { return s.peerState("b") != "connected" })
	s.do("b", node.ActPromote, node.Request{})
	if err := s.c.Procs["a"].Start(); err != nil {
		t.Fatal(err)
	}
	s.waitFor("a back as b's in-sync secondary", func() bool { p, ok := s.c.InSync(); return ok && p == "b" })
}

// TestLastDiskLostWhileServingThroughPeer is explorer seed 202: a
// primary's member 1 fails (its local copy with it: the volume is served
// through the peer, and the other member's bitmap records what the local
// copy misses), then member 0 fails too, with no member left to record
// it on. A write to a clean region then is on the peer alone, and
// nothing on a's disks says so: after both crash, a's old disks, whose
// superblock still names the generation the peer holds, met it as a
// plain resync with a rebuild of member 1 only, and "in sync" hid the
// write missing on member 0. The peer must record a new generation
// before such a write is answered.
func TestLastDiskLostWhileServingThroughPeer(t *testing.T) {
	s := newSynced(t, sim.Options{})
	lay := s.c.Layout()
	blocksPerRegion := lay.Region / sim.BlockSize
	a := s.c.Procs["a"]
	a.Disks[1].FailMeta(lay.DataOffset)
	s.write(2*blocksPerRegion, 1, false) // a clean region: member 1's bitmap write fails
	s.waitFor("a to serve through b", func() bool { return s.status("a").DiskState == "failed" })
	a.Disks[0].FailMeta(lay.DataOffset)
	// A clean region whose first chunk is on member 0, which still
	// works but for its metadata: its bitmap write fails it.
	w := s.write(5*blocksPerRegion, 1, false)
	s.flush()
	t.Logf("W = %s; a's generations %s, b's %s", w, s.status("a").Gens, s.status("b").Gens)
	for _, name := range []string{"a", "b"} {
		if err := s.c.Procs[name].Stop(sim.Crash, wait); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range a.Disks {
		d.Heal()
	}
	for _, name := range []string{"a", "b"} {
		if err := s.c.Procs[name].Start(); err != nil {
			t.Fatal(err)
		}
	}
	s.do("b", node.ActPromote, node.Request{})
	for _, m := range s.status("a").Members {
		if m.State == "failed" {
			d := a.AddDisk()
			s.do("a", node.ActDiskReplace, node.Request{Disk: m.Path, NewDisk: d.Name})
		}
	}
	s.waitFor("the pair in sync", func() bool { _, ok := s.c.InSync(); return ok })
	s.checkIdentical()
}

// TestDisklessPrimaryPeerCrashLosesWrites is explorer seed 487: the
// primary's disks failed and it serves through its peer; the peer takes
// a plain write (acknowledged, not yet flushed) and crashes, losing it.
// The flush that follows fails. When the peer comes back, it must not
// join as the primary's in-sync copy: it lacks a write the primary
// acknowledged, which nothing can copy back, so a later flush answered
// as if all were well would call that write durable.
func TestDisklessPrimaryPeerCrashLosesWrites(t *testing.T) {
	s := newSynced(t, sim.Options{})
	for _, d := range s.c.Procs["a"].Disks {
		d.Fail()
	}
	s.write(40, 1, false) // its local leg fails: served through b
	s.waitFor("a to serve through b", func() bool { return s.status("a").DiskState == "failed" })
	w := s.write(60, 2, false) // on b alone, not flushed
	if err := s.c.Procs["b"].Stop(sim.Crash, wait); err != nil {
		t.Fatal(err)
	}
	if out, _ := s.app.Flush(); out == sim.OK {
		t.Fatal("a flush answered with b, the only copy, crashed")
	}
	if err := s.c.Procs["b"].Start(); err != nil {
		t.Fatal(err)
	}
	s.waitFor("a to meet b again", func() bool {
		st := s.status("a")
		return st.Peer != nil && (st.Peer.State == "connected" || st.Peer.State == "standalone")
	})
	out, err := s.app.Flush()
	t.Logf("W = %s; a's peer %s %q; a later flush: %v %v", w, s.status("a").Peer.State, s.status("a").Peer.LastError, out, err)
	s.checkFloor()
}

// TestForcedPromoteOfRebuildingCopySyncsWhole is explorer seed 487's
// second form: a secondary whose disks were replaced and never rebuilt
// is forced up while its peer is away. Its copy lacks data the peer
// holds, and no bitmap records where; when the peer returns as its
// secondary, the resync must make the two copies identical (the peer
// losing what only it held, as the forced promotion warned), not copy
// only the regions written since and call the pair in sync.
func TestForcedPromoteOfRebuildingCopySyncsWhole(t *testing.T) {
	s := newSynced(t, sim.Options{})
	s.write(40, 16, false)
	s.flush()
	s.do("a", node.ActDemote, node.Request{Force: true}) // cuts the app off
	s.net.Partition("a", "b")
	s.waitFor("both to notice the link is down", func() bool { return s.peerState("a") != "connected" && s.peerState("b") != "connected" })
	b := s.c.Procs["b"]
	for _, m := range s.status("b").Members {
		d := b.AddDisk()
		s.do("b", node.ActDiskReplace, node.Request{Disk: m.Path, NewDisk: d.Name})
	}
	s.do("b", node.ActPromote, node.Request{Force: true})
	t.Logf("b after its forced promotion: %s, generations %s", s.status("b").DiskState, s.status("b").Gens)
	s.net.Heal("a", "b")
	s.waitFor("the pair in sync", func() bool { p, ok := s.c.InSync(); return ok && p == "b" })
	s.checkIdentical()
}

// TestRebuildingPrimaryPeerCrashLosesWrites: a primary rebuilds a
// replaced member from its peer while it serves; the peer takes plain
// writes (answered, not yet flushed) and crashes, losing them. The
// primary cannot tell which of them its half-rebuilt copy holds: no
// flush may answer as if they were durable, it must not take the
// restarted peer back as its source, and the operator's way out (demote
// it, promote the peer) ends in a pair in sync with identical copies.
// A peer that only lost its link, not restarted, is taken back.
func TestRebuildingPrimaryPeerCrashLosesWrites(t *testing.T) {
	for _, crash := range []bool{true, false} {
		t.Run(map[bool]string{true: "crash", false: "partition"}[crash], func(t *testing.T) {
			s := newSynced(t, sim.Options{Config: func(_ string, cfg *node.Config) { cfg.ResyncRate = 64 << 10 }})
			lay := s.c.Layout()
			blocksPerRegion := lay.Region / sim.BlockSize
			for r := int64(0); r < 32; r += 3 {
				s.write(r*blocksPerRegion+1, 1, false)
			}
			s.flush()
			a := s.c.Procs["a"]
			d := a.AddDisk()
			s.do("a", node.ActDiskReplace, node.Request{Disk: s.status("a").Members[0].Path, NewDisk: d.Name})
			s.waitFor("a's rebuild under way", func() bool { return s.status("a").RebuildPoint != nil })
			var ws []*sim.Write
			for _, r := range []int64{0, 1, 16, 30, 31} {
				ws = append(ws, s.write(r*blocksPerRegion+1, 1, false))
			}
			t.Logf("written, not flushed: %v; a's rebuild %+v", ws, s.status("a").RebuildPoint)
			if crash {
				if err := s.c.Procs["b"].Stop(sim.Crash, wait); err != nil {
					t.Fatal(err)
				}
			} else {
				s.partition()
			}
			if out, err := s.app.Flush(); out == sim.OK {
				t.Fatal("a flush answered with b, the rebuild's source, away")
			} else {
				t.Logf("a flush with b away: %v", err)
			}
			if crash {
				if err := s.c.Procs["b"].Start(); err != nil {
					t.Fatal(err)
				}
			} else {
				s.net.Heal("a", "b")
			}
			s.do("a", node.ActResyncRate, node.Request{Rate: 0})
			s.waitFor("a to meet b again", func() bool {
				st := s.status("a")
				return st.Peer != nil && (st.Peer.State == "connected" || st.Peer.State == "standalone")
			})
			t.Logf("a's peer %s %q", s.status("a").Peer.State, s.status("a").Peer.LastError)
			if crash {
				if out, _ := s.app.Flush(); out == sim.OK {
					t.Fatal("a flush answered after a restarted b, which may lack writes it alone held, was taken back")
				}
				// Its final flush fails: it has no in-sync leg.
				_, err := s.c.Do("a", node.ActDemote, node.Request{Force: true})
				if st := s.status("a"); st.Role != "secondary" {
					t.Fatalf("a is %s after demote --force: %v", st.Role, err)
				}
				s.do("b", node.ActPromote, node.Request{})
				s.do("b", node.ActResyncRate, node.Request{Rate: 0})
				if err := s.app.Use("b"); err != nil {
					t.Fatal(err)
				}
			}
			prim := map[bool]string{true: "b", false: "a"}[crash]
			s.identical(prim)
			s.checkFloor()
		})
	}
}

// TestUnmarkedWriteNeverReachesPeer is plain explorer seed 3217: the
// primary's last disks fail, and while it has its peer record that the
// peer holds the only copy (repl.MsgDiskless), a write to a clean region
// comes: its bitmap mark, with no member left, persists nothing. That
// write must not reach the peer before the peer has made the record. In
// the seed it did; the peer never made the record; the primary crashed
// and came back with healed disks, whose bitmap never had the write's
// region, and the pair met at the same generation and called itself in
// sync, with the write (failed to the application, but on the peer's
// disk) on one copy only.
func TestUnmarkedWriteNeverReachesPeer(t *testing.T) {
	s := newSynced(t, sim.Options{})
	lay := s.c.Layout()
	blocksPerRegion := lay.Region / sim.BlockSize
	s.write(5*blocksPerRegion, 1, false) // its region dirty; its chunk on member 0
	a := s.c.Procs["a"]
	a.Disks[0].Fail()
	a.Disks[1].FailMeta(lay.DataOffset)
	for _, d := range s.c.Procs["b"].Disks {
		d.HangMeta(lay.DataOffset) // b cannot record a new generation, and takes data
	}
	mark := s.log.Mark()
	var wg sync.WaitGroup
	wg.Go(func() {
		// No mark needed; its write fails a0, and recording that, a1:
		// a asks b to record the new generation, which hangs.
		w, out, err := s.app.Write(5*blocksPerRegion, 1, false)
		t.Logf("W1 = %s: %v %v", w, out, err)
	})
	s.waitLog(mark, "node=a", "local disks failed")
	app2 := s.c.NewApp(wait)
	defer app2.Close()
	if err := app2.Use("a"); err != nil {
		t.Fatal(err)
	}
	w2, out, err := app2.Write(3*blocksPerRegion, 1, false) // a clean region
	t.Logf("W2 = %s: %v %v", w2, out, err)
	if err := s.c.Procs["a"].Stop(sim.Crash, wait); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Procs["b"].Stop(sim.Kill, wait); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, name := range []string{"a", "b"} {
		for _, d := range s.c.Procs[name].Disks {
			d.Heal()
		}
		if err := s.c.Procs[name].Start(); err != nil {
			t.Fatal(err)
		}
	}
	s.do("a", node.ActPromote, node.Request{})
	s.waitFor("the pair in sync", func() bool { _, ok := s.c.InSync(); return ok })
	s.checkIdentical()
}

// TestPromoteRefusedWhenPeerHoldsNewer is plain explorer seed 5197: a
// write answered with the pair in sync, not yet flushed; then every disk
// of the primary fails its metadata writes, so it serves through its
// peer, which records that it holds the only copy (a new generation);
// the flush that follows is durable on the peer alone. The primary
// crashes, losing its unflushed copy of the write, and comes back with
// healed disks that still say up to date at the old generation (nothing
// new could be recorded on them). Promoted without --force while its
// peer is up, it must refuse: the peer holds a newer generation that
// descends from its own, as a connected DRBD secondary refuses. The peer
// is the one to promote.
func TestPromoteRefusedWhenPeerHoldsNewer(t *testing.T) {
	s := newSynced(t, sim.Options{})
	lay := s.c.Layout()
	blocksPerRegion := lay.Region / sim.BlockSize
	a := s.c.Procs["a"]
	w := s.write(blocksPerRegion+1, 4, false) // in sync, not flushed
	for _, d := range a.Disks {
		d.FailMeta(lay.DataOffset)
	}
	s.write(3*blocksPerRegion, 1, false) // a clean region: its mark fails every member
	s.waitFor("a to serve through b", func() bool { return s.status("a").DiskState == "failed" })
	s.flush() // durable on b alone
	gb := s.status("b").Gens
	if err := a.Stop(sim.Crash, wait); err != nil {
		t.Fatal(err)
	}
	for _, d := range a.Disks {
		d.Heal()
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("W = %s; a's generations %s (%s), b's %s", w, s.status("a").Gens, s.status("a").DiskState, gb)
	msg, err := s.c.Do("a", node.ActPromote, node.Request{})
	if err == nil {
		s.app.Close()
		if uerr := s.app.Use("a"); uerr == nil {
			s.checkFloor()
		}
		t.Fatalf("a was promoted (%q) while b, up and reachable, holds newer data (generations %s)", msg, gb)
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("the refusal does not say the peer holds newer data: %v", err)
	}
	t.Logf("a refused: %v", err)
	s.waitFor("b to notice a's link is gone", func() bool { return s.peerState("b") != "connected" })
	s.do("b", node.ActPromote, node.Request{})
	s.waitFor("the pair in sync", func() bool { _, ok := s.c.InSync(); return ok })
	s.checkFloor()
	s.checkIdentical()
}
