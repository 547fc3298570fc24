package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/netraid/netraid/node"
)

// ExploreOptions shape one schedule.
type ExploreOptions struct {
	Seed  uint64
	Steps int
	// Bound is the liveness bound: an application call, a status or an
	// admin command that takes longer is a hang. 15 s by default.
	Bound time.Duration
	// Cluster is passed to NewCluster (Log included).
	Cluster Options
	// NewNet makes the network of the schedule.
	NewNet func(seed uint64) Net
	// Weights override the weights of steps by name (0 turns one off):
	// write, flush, read, partition, heal, reset, pause, crash, kill,
	// shutdown, restart, promote, demote, disconnect, connect, operator,
	// disk-fail, disk-hang, disk-meta, disk-meta-all, disk-heal,
	// disk-replace, verify, wait-sync; with a witness (Cluster.Witness)
	// also witness-cut, witness-heal, witness-down, witness-up.
	Weights map[string]int
}

// Result is what one schedule did.
type Result struct {
	Seed     uint64
	Schedule []string // the steps taken, in order
	// Excused counts blocks that promoted copies lacked because their
	// primary took the writes alone (only fencing protects those: with a
	// witness, any is a violation).
	Excused int
	// Failovers counts the promotions the nodes made by themselves
	// (with a witness).
	Failovers int
	// Writes, Durable: application writes acknowledged, and made durable.
	Writes, Durable int
	// Unsettled: after every fault was healed, the pair did not come in
	// sync within the bound.
	Unsettled bool
}

// Failure is a schedule that broke a rule: the seed replays it.
type Failure struct {
	Result
	Err error
	// Stacks are the goroutines of the process when a call was found
	// stuck, for finding what it waits for.
	Stacks string
}

func (f *Failure) Error() string {
	return fmt.Sprintf("seed %d, after %d steps: %v\nschedule:\n  %s", f.Seed, len(f.Schedule), f.Err, strings.Join(f.Schedule, "\n  "))
}

func (f *Failure) Unwrap() error { return f.Err }

// explorer runs one schedule.
type explorer struct {
	o   ExploreOptions
	c   *Cluster
	app *App
	rng *rand.Rand
	res Result
	// partitioned, paused: the network faults now in force.
	partitioned bool
	delayed     bool
	paused      map[string]bool
	// primary: the nodes seen primary at the last check, to find the
	// promotions the nodes made by themselves (with a witness).
	primary map[string]bool
	// stuck records calls that did not answer within the bound, and
	// stacks the goroutines when the first was found.
	stuck  []string
	stacks string
	start  time.Time
	// refused is what the last promote refused with ("" if it did not).
	refused string
	// rebooted: the nodes the operator restarted in this settle.
	rebooted map[string]bool
}

// Explore runs one randomized schedule of application I/O, network and
// disk faults, crashes and operator commands on a fresh pair, checking
// the rules after every step. The same seed gives the same schedule.
func Explore(o ExploreOptions) (Result, error) {
	if o.Bound == 0 {
		o.Bound = 15 * time.Second
	}
	nw := o.NewNet(o.Seed)
	c, err := NewCluster(nw, o.Cluster)
	if err != nil {
		return Result{}, err
	}
	e := &explorer{o: o, c: c, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), paused: map[string]bool{}, primary: map[string]bool{}}
	e.res.Seed = o.Seed
	e.start = time.Now()
	e.app = c.NewApp(o.Bound)
	e.app.Attached = e.attached
	defer e.teardown()
	err = e.run()
	e.res.Excused = c.Model.Excused
	for _, w := range c.Model.writes {
		if w.Acked {
			e.res.Writes++
		}
		if w.Durable {
			e.res.Durable++
		}
	}
	if err != nil {
		return e.res, &Failure{Result: e.res, Err: err, Stacks: e.stacks}
	}
	return e.res, nil
}

func (e *explorer) teardown() {
	e.app.Close()
	for _, name := range e.c.Names {
		for _, d := range e.c.Procs[name].Disks {
			d.Heal()
		}
		e.c.Net.Resume(name)
		e.c.Procs[name].Stop(Kill, e.o.Bound)
	}
}

// stuckf records a call that did not answer, with the goroutines' stacks
// the first time.
func (e *explorer) stuckf(format string, a ...any) {
	if e.stacks == "" {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		e.stacks = b.String()
	}
	e.stuck = append(e.stuck, fmt.Sprintf(format, a...))
}

func (e *explorer) logf(format string, a ...any) {
	e.res.Schedule = append(e.res.Schedule, fmt.Sprintf("%6.3fs ", time.Since(e.start).Seconds())+fmt.Sprintf(format, a...))
}

func (e *explorer) run() error {
	for _, name := range e.c.Names {
		if err := e.c.Procs[name].Start(); err != nil {
			return err
		}
	}
	// The usual start: a is promoted and syncs b.
	if err := e.promote("a", false); err != nil {
		return err
	}
	for i := 0; i < e.o.Steps; i++ {
		if err := e.step(); err != nil {
			return err
		}
		if err := e.check(); err != nil {
			return err
		}
	}
	// The end: heal everything, bring both up, let them meet, and check
	// that the copies end up the same if the nodes could agree.
	return e.settle()
}

// step picks and takes one step.
func (e *explorer) step() error {
	type choice struct {
		name   string
		weight int
		do     func() error
	}
	x := e.c.Names[e.rng.IntN(2)]
	choices := []choice{
		{"write", 30, e.write},
		{"flush", 10, e.flush},
		{"read", 6, e.read},
		{"partition", 4, func() error { return e.partition() }},
		{"heal", 4, func() error { return e.heal() }},
		{"reset", 2, func() error { e.logf("reset links"); e.c.Net.Reset("a", "b"); return nil }},
		{"delay", 2, func() error { return e.delay() }},
		{"pause", 2, func() error { return e.pause(x) }},
		{"crash", 2, func() error { return e.crash(x, Crash) }},
		{"kill", 1, func() error { return e.crash(x, Kill) }},
		{"shutdown", 1, func() error { return e.crash(x, Shutdown) }},
		{"restart", 4, func() error { return e.restart(x) }},
		{"promote", 3, func() error { return e.promote(x, e.rng.IntN(8) == 0) }},
		{"demote", 2, func() error { return e.demote(x) }},
		{"disconnect", 2, func() error { return e.admin(x, node.ActDisconnect, node.Request{}) }},
		{"connect", 3, func() error { return e.admin(x, node.ActConnect, node.Request{}) }},
		{"operator", 3, func() error { _, err := e.operator(); return err }},
		{"disk-fail", 1, func() error { return e.diskFault(x, 0) }},
		{"disk-hang", 1, func() error { return e.diskFault(x, 1) }},
		{"disk-meta", 1, func() error { return e.diskFault(x, 2) }},
		{"disk-meta-all", 1, func() error { return e.metaAll(x) }},
		{"disk-heal", 2, func() error { return e.diskHeal(x) }},
		{"disk-replace", 2, func() error {
			st, ok := e.status(x)
			if !ok {
				return nil
			}
			_, err := e.replaceFailed(x, st)
			return err
		}},
		{"verify", 2, func() error { return e.verify() }},
		{"wait-sync", 4, func() error { return e.waitSync(time.Second) }},
	}
	if e.c.Witness != nil {
		choices = append(choices,
			choice{"witness-cut", 3, func() error { return e.witnessPath(x, true) }},
			choice{"witness-heal", 3, func() error { return e.witnessPath(x, false) }},
			choice{"witness-down", 1, func() error { e.logf("witness down"); e.c.Witness.Stop(); return nil }},
			choice{"witness-up", 2, func() error { e.logf("witness up"); e.c.Witness.Start(); return nil }},
		)
	}
	for i := range choices {
		if w, ok := e.o.Weights[choices[i].name]; ok {
			choices[i].weight = w
		}
	}
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	r := e.rng.IntN(total)
	for _, c := range choices {
		if r < c.weight {
			return c.do()
		}
		r -= c.weight
	}
	return nil
}

// primary returns the node the app should write to: the one it uses if
// that node is still primary, else a primary if any.
func (e *explorer) primaryNow() string {
	var found string
	for _, name := range e.c.Names {
		st, ok := e.status(name)
		if ok && st.Role == "primary" {
			if name == e.app.Node() {
				return name
			}
			found = name
		}
	}
	return found
}

// status returns a running node's status; a status call that does not
// answer within the bound is a hang (recorded for check).
func (e *explorer) status(name string) (node.Status, bool) {
	n := e.c.Procs[name].Node()
	if n == nil {
		return node.Status{}, false
	}
	ch := make(chan node.Status, 1)
	go func() { ch <- n.Status() }()
	select {
	case st := <-ch:
		return st, true
	case <-time.After(e.o.Bound):
		e.stuckf("status of %s did not answer within %v", name, e.o.Bound)
		return node.Status{}, false
	}
}

// attached names the nodes attached to x's mirror now (its peer leg up
// to date or resyncing).
func (e *explorer) attached(x string) map[string]bool {
	out := map[string]bool{}
	st, ok := e.status(x)
	if !ok {
		return out
	}
	for _, l := range st.Legs {
		if l.Name == "peer" && (l.State == "up-to-date" || l.State == "resyncing") {
			out[e.c.Other(x)] = true
		}
	}
	return out
}

// useApp points the app at the primary; false if there is none, or its
// process is paused (the app would wait for it as long as it stays so).
func (e *explorer) useApp() bool {
	p := e.primaryNow()
	if p == "" || e.paused[p] {
		e.app.Close()
		return false
	}
	if err := e.app.Use(p); err != nil {
		return false
	}
	return true
}

func (e *explorer) write() error {
	if !e.useApp() {
		e.logf("write: no export")
		return nil
	}
	n := int64(1 + e.rng.IntN(4))
	b := e.rng.Int64N(e.c.Model.Blocks() - n + 1)
	fua := e.rng.IntN(5) == 0
	w, out, err := e.app.Write(b, n, fua)
	e.logf("write %d blocks %d+%d fua=%v on %s: %s", w.ID, b, n, fua, w.Node, describe(out, err))
	return e.liveness(out, w.Node, err)
}

func (e *explorer) flush() error {
	if !e.useApp() {
		e.logf("flush: no export")
		return nil
	}
	node := e.app.Node()
	out, err := e.app.Flush()
	e.logf("flush on %s: %s", node, describe(out, err))
	return e.liveness(out, node, err)
}

func (e *explorer) read() error {
	if !e.useApp() {
		e.logf("read: no export")
		return nil
	}
	node := e.app.Node()
	b := e.rng.Int64N(e.c.Model.Blocks())
	out, err := e.app.Read(b)
	e.logf("read block %d on %s: %s", b, node, describe(out, err))
	var v *Violation
	if errors.As(err, &v) {
		return err
	}
	return e.liveness(out, node, err)
}

func describe(out Outcome, err error) string {
	switch out {
	case OK:
		return "ok"
	case Stuck:
		return "stuck: " + err.Error()
	}
	if err == nil {
		return "failed"
	}
	return "failed: " + err.Error()
}

// liveness turns a call that hung into a violation, unless the node says
// it suspended I/O on purpose.
func (e *explorer) liveness(out Outcome, name string, err error) error {
	if out != Stuck {
		return nil
	}
	if st, ok := e.status(name); ok && st.Suspended != "" {
		e.logf("(I/O suspended on %s: %s)", name, st.Suspended)
		return nil
	}
	e.stuckf("a call to %s's export took longer than %v without the node saying it suspended I/O: %v", name, e.o.Bound, err)
	return violation("stuck", "%s", strings.Join(e.stuck, "; "))
}

func (e *explorer) partition() error {
	e.logf("partition a-b")
	e.c.Net.Partition("a", "b")
	e.partitioned = true
	return nil
}

func (e *explorer) heal() error {
	e.logf("heal a-b")
	e.c.Net.Heal("a", "b")
	e.partitioned = false
	if e.c.Witness != nil {
		e.logf("heal the paths to the witness, witness up")
		e.c.HealWitness()
	}
	for name, p := range e.paused {
		if p {
			e.logf("resume %s", name)
			e.c.Net.Resume(name)
			e.paused[name] = false
		}
	}
	return nil
}

func (e *explorer) pause(x string) error {
	if e.app.Node() == x {
		e.app.Close()
	}
	e.logf("pause %s", x)
	e.c.Net.Pause(x)
	e.paused[x] = true
	return nil
}

func (e *explorer) crash(x string, how How) error {
	p := e.c.Procs[x]
	if !p.Running() {
		return nil
	}
	if e.app.Node() == x {
		e.app.Close()
	}
	err := p.Stop(how, e.o.Bound)
	e.logf("%s %s: %s", how, x, errText(err))
	if how == Crash {
		e.c.Model.Crashed(x)
	}
	var se *StuckError
	if errors.As(err, &se) {
		e.stacks = se.Stacks
		return violation("stuck", "%v", err)
	}
	return nil
}

func (e *explorer) restart(x string) error {
	p := e.c.Procs[x]
	if p.Running() {
		return nil
	}
	if e.paused[x] {
		e.c.Net.Resume(x)
		e.paused[x] = false
	}
	err := p.Start()
	e.logf("start %s: %v", x, errText(err))
	// A node that cannot assemble its disks (all failed) stays down.
	return nil
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// do runs an admin command within the bound.
func (e *explorer) do(x, action string, r node.Request) (string, error, bool) {
	n := e.c.Procs[x].Node()
	if n == nil {
		return "", errors.New("not running"), true
	}
	type answer struct {
		msg string
		err error
	}
	ch := make(chan answer, 1)
	ctx, cancel := context.WithTimeout(context.Background(), e.o.Bound)
	defer cancel()
	go func() {
		msg, err := n.Do(ctx, action, r)
		ch <- answer{msg, err}
	}()
	select {
	case a := <-ch:
		return a.msg, a.err, true
	case <-time.After(e.o.Bound + time.Second):
		return "", nil, false
	}
}

func (e *explorer) admin(x, action string, r node.Request) error {
	_, err, ok := e.do(x, action, r)
	if !ok {
		e.stuckf("'%s' on %s did not answer within %v", action, x, e.o.Bound)
		return violation("stuck", "%s", strings.Join(e.stuck, "; "))
	}
	e.logf("%s %s%s: %s", action, x, flags(r), errText(err))
	return nil
}

func flags(r node.Request) string {
	var f []string
	if r.Force {
		f = append(f, " --force")
	}
	if r.DiscardLocal {
		f = append(f, " --discard-local")
	}
	if r.Repair {
		f = append(f, " --repair")
	}
	return strings.Join(f, "")
}

// promote promotes x; a promotion that succeeds is checked against the
// model (without --force) or gives the other copy up (with it).
func (e *explorer) promote(x string, force bool) error {
	if !e.c.Procs[x].Running() {
		return nil
	}
	was, _ := e.status(x)
	_, err, ok := e.do(x, node.ActPromote, node.Request{Force: force})
	if !ok {
		e.stuckf("promote on %s did not answer within %v", x, e.o.Bound)
		return violation("stuck", "%s", strings.Join(e.stuck, "; "))
	}
	e.logf("promote %s%s: %s", x, flags(node.Request{Force: force}), errText(err))
	e.refused = ""
	if err != nil {
		e.refused = err.Error()
	}
	if err != nil || was.Role == "primary" {
		return nil
	}
	vals, cerr := e.c.Copy(x)
	if cerr != nil {
		return cerr
	}
	e.c.Model.Promoted(x)
	e.primary[x] = true
	if force {
		e.c.Model.Consent(vals)
		return nil
	}
	if st, ok := e.status(x); ok && st.RebuildPoint != nil {
		// A copy whose rebuild is unfinished serves nothing of its own
		// until its peer has rebuilt it: reads through the export check
		// what it serves.
		e.logf("(%s serves through its peer until its rebuild is done)", x)
		return nil
	}
	return e.c.Model.CheckPromoted(x, vals)
}

// demote demotes x, disconnecting the app first (an operator unmounts
// before demoting).
func (e *explorer) demote(x string) error {
	if e.app.Node() == x {
		e.app.Close()
	}
	return e.admin(x, node.ActDemote, node.Request{Force: e.rng.IntN(4) == 0})
}

// operator does one thing an operator would do about a pair that does
// not come in sync, if there is one, and reports whether it acted:
//   - two primaries: demote the one the application does not use;
//   - no primary: promote a node (one that is up to date if any; with
//     --force, giving the other copy up, if neither will be promoted);
//   - a primary whose local disks failed, with an up-to-date secondary:
//     demote it and promote the secondary;
//   - a node with a failed member, whose peer can rebuild it: replace
//     the disk with a blank one;
//   - a secondary refused for a split brain, unrelated data or being
//     newer: discard its changes (giving them up in the model);
//   - settling, a node whose disks all failed with none left to record
//     it: restart its daemon (once), as its status says.
func (e *explorer) operator() (bool, error) {
	sts := map[string]node.Status{}
	for _, name := range e.c.Names {
		st, ok := e.status(name)
		if !ok {
			return false, nil
		}
		sts[name] = st
	}
	if e.rebooted != nil {
		// Settling, with every disk healed: a node whose disks all
		// failed with none left to record it says to restart it once
		// they work again; an operator does, once.
		for _, x := range e.c.Names {
			if e.rebooted[x] || !slices.ContainsFunc(sts[x].Problems, func(p string) bool { return strings.Contains(p, "restart the daemon once they work again") }) {
				continue
			}
			e.rebooted[x] = true
			e.logf("operator: %s's disks work again: restart its daemon", x)
			if err := e.crash(x, Shutdown); err != nil {
				return true, err
			}
			return true, e.restart(x)
		}
	}
	keep := e.app.Node()
	if keep == "" {
		keep = "a"
	}
	other := e.c.Other(keep)
	var prim, sec string
	switch a, b := sts["a"].Role == "primary", sts["b"].Role == "primary"; {
	case a && b:
		e.logf("operator: both primary, demote %s", other)
		return true, e.admin(other, node.ActDemote, node.Request{Force: true})
	case !a && !b:
		return e.promoteAny(sts, keep)
	case a:
		prim, sec = "a", "b"
	default:
		prim, sec = "b", "a"
	}
	sp, ss := sts[prim], sts[sec]
	refused := sp.Peer != nil && sp.Peer.State == "standalone"
	if sp.DiskState == "failed" && (ss.DiskState == "up-to-date" || refused) ||
		sp.RebuildPoint != nil && refused && ss.DiskState == "up-to-date" {
		// With the peer up to date, a swap; with the peer refused too
		// (it lacks data only the failed disks held), the peer is all
		// there is: promoted, with --force if it must be. A primary
		// rebuilt from its peer that refuses it (it came back restarted
		// and may lack unflushed writes) asks for the same swap.
		e.logf("operator: %s's copy is %s, %s is %s: swap", prim, sp.DiskState, sec, ss.DiskState)
		if e.app.Node() == prim {
			e.app.Close()
		}
		if err := e.admin(prim, node.ActDemote, node.Request{Force: true}); err != nil {
			return true, err
		}
		if err := e.promote(sec, false); err != nil {
			return true, err
		}
		if st, ok := e.status(sec); ok && st.Role != "primary" {
			e.logf("operator: %s will not be promoted: force it", sec)
			return true, e.promote(sec, true)
		}
		return true, nil
	}
	for _, x := range []string{sec, prim} {
		if ok, err := e.replaceFailed(x, sts[x]); ok || err != nil {
			return ok, err
		}
	}
	if sp.RebuildPoint != nil && sp.Peer != nil && sp.Peer.State == "standalone" && ss.DiskState != "up-to-date" {
		// Each copy waits for the other to rebuild it: a disk of each
		// node was replaced. The operator keeps the primary's, with the
		// share of its replaced disk lost.
		e.logf("operator: neither copy is whole: keep %s's, with --force", prim)
		if e.app.Node() == prim {
			e.app.Close()
		}
		if err := e.admin(prim, node.ActDemote, node.Request{Force: true}); err != nil {
			return true, err
		}
		return true, e.promote(prim, true)
	}
	if ss.Peer != nil && ss.Peer.State == "standalone" {
		for _, why := range []string{"split-brain", "unrelated", "target-newer"} {
			if strings.Contains(ss.Peer.LastError, why) {
				vals, err := e.c.Copy(prim)
				if err != nil {
					return true, err
				}
				e.c.Model.Consent(vals)
				e.logf("operator: %s, discard %s's changes", why, sec)
				return true, e.admin(sec, node.ActConnect, node.Request{DiscardLocal: true})
			}
		}
	}
	return false, nil
}

// promoteAny promotes a node when neither is primary: first one that is
// up to date (keep first), then any that will be, then with --force. It
// does nothing (false) while a node refuses because it has not yet
// noticed that its old primary is gone: that passes by itself.
func (e *explorer) promoteAny(sts map[string]node.Status, keep string) (bool, error) {
	order := []string{keep, e.c.Other(keep)}
	for _, x := range order {
		if sts[x].DiskState != "up-to-date" {
			continue
		}
		e.logf("operator: no primary, promote %s", x)
		if err := e.promote(x, false); err != nil {
			return true, err
		}
		if st, ok := e.status(x); !ok || st.Role == "primary" {
			return true, nil
		}
		// Up to date on its own disks, but refused: the witness records
		// that its peer acknowledged writes it lacks (the peer promotes
		// itself if it can), or the peer said it holds newer data. The
		// other is tried; if it cannot be promoted either, the operator
		// chooses a copy below, losing what only the other held.
	}
	waiting := false
	for _, x := range order {
		if err := e.promote(x, false); err != nil {
			return true, err
		}
		if st, ok := e.status(x); ok && st.Role == "primary" {
			return true, nil
		}
		waiting = waiting || strings.Contains(e.refused, "this node notices within")
	}
	if waiting {
		return false, nil
	}
	// Neither will be promoted: the operator forces one, a copy that has
	// not failed if there is one. A failed member is replaced first: a
	// copy with one is refused even forced. When both copies failed (a
	// member on each), the one kept has its failed disks replaced with
	// blank ones (what only they held is lost) and is forced up; the
	// other is then synced from it.
	for _, bothFailed := range []bool{false, true} {
		for _, x := range order {
			if !bothFailed && sts[x].DiskState == "failed" {
				continue
			}
			replaced, err := e.replaceFailed(x, sts[x])
			if err != nil {
				return true, err
			}
			if bothFailed && !replaced {
				continue
			}
			if bothFailed {
				e.logf("operator: both copies failed: %s's failed disks replaced, force it", x)
			} else {
				e.logf("operator: neither node will be promoted, force %s", x)
			}
			return true, e.promote(x, true)
		}
	}
	return true, nil
}

// replaceFailed replaces a failed member of x with a blank disk, if it
// has one; the node rebuilds it from its peer (or, on a secondary, asks
// its primary for a full sync).
func (e *explorer) replaceFailed(x string, st node.Status) (bool, error) {
	for _, m := range st.Members {
		if m.State != "failed" {
			continue
		}
		p := e.c.Procs[x]
		d := p.AddDisk()
		msg, err, ok := e.do(x, node.ActDiskReplace, node.Request{Disk: m.Path, NewDisk: d.Name})
		if !ok {
			e.stuckf("disk replace on %s did not answer within %v", x, e.o.Bound)
			return true, violation("stuck", "%s", strings.Join(e.stuck, "; "))
		}
		e.logf("disk replace %s %s %s: %s", x, m.Path, d.Name, errText(err))
		if err != nil {
			p.DropDisk(d.Name)
			return false, nil
		}
		_ = msg
		// The failed disk's share of x's copy is gone: what only it held
		// is lost with it, not by the node.
		if err := e.c.LoseMember(x, m.Index); err != nil {
			return true, err
		}
		p.DropDisk(m.Path)
		return true, nil
	}
	return false, nil
}

// diskFault arms a fault on one member of x: it fails, hangs, or fails
// its metadata writes.
func (e *explorer) diskFault(x string, kind int) error {
	p := e.c.Procs[x]
	d := p.Disks[e.rng.IntN(len(p.Disks))]
	switch kind {
	case 0:
		e.logf("disk %s fails", d.Name)
		d.Fail()
	case 1:
		e.logf("disk %s hangs", d.Name)
		d.Hang()
	default:
		e.logf("disk %s fails metadata writes", d.Name)
		d.FailMeta(e.c.layout.DataOffset)
	}
	return nil
}

// metaAll makes every member of x fail its metadata writes: the node
// can record nothing new.
func (e *explorer) metaAll(x string) error {
	e.logf("every disk of %s fails metadata writes", x)
	for _, d := range e.c.Procs[x].Disks {
		d.FailMeta(e.c.layout.DataOffset)
	}
	return nil
}

// delay sets the link's one-way delay to 0-40 ms.
func (e *explorer) delay() error {
	d := time.Duration(e.rng.IntN(5)) * 10 * time.Millisecond
	e.logf("delay a-b %v", d)
	e.c.Net.Delay("a", "b", d)
	e.delayed = d > 0
	return nil
}

func (e *explorer) diskHeal(x string) error {
	for _, d := range e.c.Procs[x].Disks {
		if d.Faulty() {
			e.logf("disk %s healed", d.Name)
			d.Heal()
		}
	}
	return nil
}

func (e *explorer) verify() error {
	p := e.primaryNow()
	if p == "" {
		return nil
	}
	return e.admin(p, node.ActVerify, node.Request{Repair: e.rng.IntN(2) == 0, Wait: true})
}

// waitSync waits, up to max, for the pair to be connected and in sync;
// then the copies must be the same.
func (e *explorer) waitSync(max time.Duration) error {
	if e.primaryNow() == "" || !e.c.Procs["a"].Running() || !e.c.Procs["b"].Running() || e.partitioned {
		e.logf("wait for sync: the pair cannot meet now")
		return nil
	}
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if name, ok := e.inSync(); ok {
			e.logf("in sync (primary %s)", name)
			return e.identical()
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.logf("wait for sync: not in sync within %v", max)
	return nil
}

// inSync reports whether the pair is connected and in sync (and which
// node is primary).
func (e *explorer) inSync() (string, bool) { return e.c.InSync() }

// identical checks that both copies hold the same data.
func (e *explorer) identical() error {
	a, err := e.c.Copy("a")
	if err != nil {
		return err
	}
	b, err := e.c.Copy("b")
	if err != nil {
		return err
	}
	for i := range a {
		if a[i] != b[i] {
			return violation("copies-differ", "the pair reports in sync but block %d holds write %d on a and %d on b", i, a[i], b[i])
		}
	}
	return nil
}

// check runs the rules that hold after every step.
func (e *explorer) check() error {
	if len(e.stuck) > 0 {
		return violation("stuck", "%s", strings.Join(e.stuck, "; "))
	}
	copies := map[string][]WriteID{}
	for _, name := range e.c.Names {
		vals, err := e.c.Copy(name)
		if err != nil {
			return err
		}
		if e.c.Trusted(name) {
			if err := e.c.Model.CheckData(name, vals); err != nil {
				return err
			}
		}
		copies[name] = vals
	}
	if err := e.c.Model.CheckFloor(copies); err != nil {
		return err
	}
	var prim []string
	sts := map[string]node.Status{}
	for _, name := range e.c.Names {
		if st, ok := e.status(name); ok {
			sts[name] = st
			if st.Role == "primary" {
				prim = append(prim, name)
			}
		}
	}
	if err := e.checkFailovers(prim); err != nil {
		return err
	}
	if len(prim) == 2 && !e.partitioned && !e.delayed && !slices.Contains(slices.Collect(maps.Values(e.paused)), true) {
		// With the link cut, slowed or a node's network paused, a node
		// hears of the link's end late (a cut one when its ping times
		// out): its view is stale, and the data checks above are what
		// count.
		return e.twoPrimaries(sts)
	}
	return nil
}

// twoPrimaries checks the statuses, read one node after the other, in
// which both nodes are primary: neither may have its link to the other
// connected. The reads are moments apart, and with a witness the roles
// change on their own (a fenced node demotes itself, its peer promotes
// itself and connects), so a node primary and connected in its read may
// have handed over before or after the other's. The connected node's
// reads must bracket a read of the other as primary: connected in both,
// with the same generation and its link up since the same moment, it was
// so all along, while the other was primary too.
func (e *explorer) twoPrimaries(sts map[string]node.Status) error {
	connected := func(st node.Status) bool {
		return st.Role == "primary" && st.Peer != nil && st.Peer.State == "connected"
	}
	for i, x := range e.c.Names {
		before := sts[x]
		if !connected(before) {
			continue
		}
		y := e.c.Names[1-i]
		other, ok := sts[y], true
		if i > 0 {
			// y was read before x: read it again.
			other, ok = e.status(y)
		}
		if !ok || other.Role != "primary" {
			continue
		}
		after, ok := e.status(x)
		if ok && connected(after) && after.Gens.Current == before.Gens.Current && after.Peer.Since == before.Peer.Since {
			return violation("two-primaries", "both nodes are primary and %s says its link is connected", x)
		}
	}
	return nil
}

// settle ends a schedule: every fault healed, both nodes up, the
// operator doing what is needed (operator), until the pair is in sync
// with identical copies, or the bound has passed (counted in
// Result.Unsettled, with the schedule kept for a look).
func (e *explorer) settle() error {
	e.logf("settle")
	e.heal()
	e.c.Net.Delay("a", "b", 0)
	e.delayed = false
	for _, name := range e.c.Names {
		e.diskHeal(name)
		if !e.c.Procs[name].Running() {
			e.restart(name)
		}
	}
	for _, name := range e.c.Names {
		e.admin(name, node.ActConnect, node.Request{})
	}
	e.rebooted = map[string]bool{}
	defer func() { e.rebooted = nil }()
	deadline := time.Now().Add(e.o.Bound)
	for time.Now().Before(deadline) {
		if p, ok := e.inSync(); ok {
			e.logf("in sync (primary %s)", p)
			return e.identical()
		}
		acted, err := e.operator()
		if err != nil {
			return err
		}
		if err := e.check(); err != nil {
			return err
		}
		if !acted {
			time.Sleep(10 * time.Millisecond)
		}
	}
	e.logf("settle: not in sync within %v", e.o.Bound)
	for _, name := range e.c.Names {
		if st, ok := e.status(name); ok {
			peer := ""
			if st.Peer != nil {
				peer = fmt.Sprintf("peer %s %q", st.Peer.State, st.Peer.LastError)
			}
			var legs []string
			for _, l := range st.Legs {
				legs = append(legs, l.Name+"="+l.State)
			}
			e.logf("  %s: %s %s gens %s legs %v members %+v %s problems %q", name, st.Role, st.DiskState, st.Gens, legs, st.Members, peer, st.Problems)
		}
	}
	e.res.Unsettled = true
	return nil
}

// witnessPath cuts or heals x's path to the witness.
func (e *explorer) witnessPath(x string, cut bool) error {
	if cut {
		e.logf("partition %s-witness", x)
		e.c.Net.Partition(x, WitnessHost)
	} else {
		e.logf("heal %s-witness", x)
		e.c.Net.Heal(x, WitnessHost)
	}
	return nil
}

// checkFailovers checks, with a witness, the copy of a node that
// promoted itself since the last check like one promoted without
// --force; and that no promoted copy lacked a write its peer took
// alone: fencing protects those.
func (e *explorer) checkFailovers(prim []string) error {
	if e.c.Witness == nil {
		return nil
	}
	now := map[string]bool{}
	for _, x := range prim {
		now[x] = true
		if e.primary[x] {
			continue
		}
		e.res.Failovers++
		e.logf("(%s promoted itself)", x)
		vals, err := e.c.Copy(x)
		if err != nil {
			return err
		}
		e.c.Model.Promoted(x)
		if st, ok := e.status(x); ok && st.RebuildPoint != nil {
			continue
		}
		if err := e.c.Model.CheckPromoted(x, vals); err != nil {
			return err
		}
	}
	e.primary = now
	if e.c.Model.Excused > 0 {
		return violation("fenced-excused", "with a witness, a promoted copy lacked %d blocks of writes its peer acknowledged alone", e.c.Model.Excused)
	}
	return nil
}
