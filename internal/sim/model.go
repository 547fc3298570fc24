package sim

import (
	"fmt"
	"sort"
	"sync"
)

// Write is one application write, as the model knows it.
type Write struct {
	ID WriteID
	// Block and N: the blocks written, [Block, Block+N).
	Block, N int64
	// Node is the node whose export took it.
	Node string
	FUA  bool
	// Issued, AckedAt and DurableAt are model times (Model.Tick).
	Issued  int64
	Acked   bool
	AckedAt int64
	// Durable: acknowledged with FUA, or by a FLUSH sent after its ack
	// to the same node and answered.
	Durable   bool
	DurableAt int64
	// Missing names the nodes whose disks did not hold it right after
	// its acknowledgement: writes a primary took alone.
	Missing map[string]bool
	// Dropped: its node lost power before a flush made it durable.
	Dropped bool
	// Failed: it was answered with an error or not at all. Its blocks
	// may hold anything: a write that timed out may land later with
	// whatever its buffer holds by then (blockdev.Timeout).
	Failed bool
}

func (w *Write) String() string {
	return fmt.Sprintf("write %d (blocks %d+%d on %s, issued t%d)", w.ID, w.Block, w.N, w.Node, w.Issued)
}

// Model is the oracle of the simulated application's writes: what was
// sent, acknowledged and made durable, and so what every copy may and
// must hold. Times are the model's own logical clock, so that checks do
// not depend on the speed of the machine.
//
// The rules it checks (DESIGN.md, "nothing lost"):
//   - every block holds zeroes or the stamp of a write sent to it;
//   - a durable write survives on some copy (the floor), unless the
//     operator gave it up (Consent: connect --discard-local, promote
//     --force);
//   - a copy promoted without --force holds every durable write it was
//     sent (a write a primary took alone after losing its peer is counted
//     apart: only fencing protects it), and no write of a primary's sent
//     after a durable write of the same primary's that it lacks.
type Model struct {
	// mu makes the model safe for apps writing from several goroutines.
	mu      sync.Mutex
	blocks  int64
	clock   int64
	writes  []*Write    // by ID-1
	byBlock [][]WriteID // the writes to each block, in order
	// floor is, per block, the newest durable write some copy must hold.
	floor []WriteID
	// promoted is when each node was last seen promoted.
	promoted map[string]int64
	// Excused counts the blocks of promoted copies that lacked only
	// writes their primary took alone.
	Excused int
}

// NewModel returns the model of a volume of blocks blocks, all zero.
func NewModel(blocks int64) *Model {
	return &Model{blocks: blocks, byBlock: make([][]WriteID, blocks), floor: make([]WriteID, blocks), promoted: map[string]int64{}}
}

// Promoted records that node became primary now.
func (m *Model) Promoted(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.promoted[node] = m.tick()
}

// Blocks returns the volume's size in blocks.
func (m *Model) Blocks() int64 { return m.blocks }

// Tick advances the clock and returns the new time.
func (m *Model) Tick() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tick()
}

func (m *Model) tick() int64 {
	m.clock++
	return m.clock
}

// Write returns write id.
func (m *Model) Write(id WriteID) *Write {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.write(id)
}

func (m *Model) write(id WriteID) *Write {
	if id == 0 || int(id) > len(m.writes) {
		return nil
	}
	return m.writes[id-1]
}

// Issue records a write of n blocks from block sent to node's export.
func (m *Model) Issue(node string, block, n int64, fua bool) *Write {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &Write{ID: WriteID(len(m.writes) + 1), Block: block, N: n, Node: node, FUA: fua, Issued: m.tick()}
	m.writes = append(m.writes, w)
	for b := block; b < block+n; b++ {
		m.byBlock[b] = append(m.byBlock[b], w.ID)
	}
	return w
}

// Ack records a successful answer to w; missing names the nodes whose
// disks lacked it right after.
func (m *Model) Ack(w *Write, missing map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Acked, w.AckedAt, w.Missing = true, m.tick(), missing
	if w.FUA {
		m.durable(w)
	}
}

// Flushed records that a FLUSH sent to node at time issued was answered:
// every write node acknowledged before then, since it was last promoted,
// is durable, but those its power loss dropped. A write of an earlier
// term is not: that term's end (a demotion whose flush failed, a forced
// promotion over a replaced disk) may have lost it, and its export is
// gone. detached names the nodes the flush may not have
// reached (not attached to node's mirror throughout): they may lack
// those writes durably.
func (m *Model) Flushed(node string, issued int64, detached map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.writes {
		if w.Node == node && w.Acked && !w.Durable && !w.Dropped && w.AckedAt < issued && w.AckedAt > m.promoted[node] {
			for d := range detached {
				if w.Missing == nil {
					w.Missing = map[string]bool{}
				}
				w.Missing[d] = true
			}
			m.durable(w)
		}
	}
}

// Crashed records that node lost power: the writes it acknowledged and
// had not made durable may be gone, and no later flush brings them back;
// and it may lack durably any write not durable yet.
func (m *Model) Crashed(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.writes {
		if w.Durable {
			continue
		}
		if w.Node == node {
			w.Dropped = true
		}
		if w.Missing == nil {
			w.Missing = map[string]bool{}
		}
		w.Missing[node] = true
	}
}

func (m *Model) durable(w *Write) {
	w.Durable, w.DurableAt = true, m.tick()
	for b := w.Block; b < w.Block+w.N; b++ {
		m.floor[b] = max(m.floor[b], w.ID)
	}
}

// Consent records that the operator chose keep's copy over the other's
// (connect --discard-local on the other, promote --force of keep): what
// only the other held may be lost. vals is keep's copy now.
func (m *Model) Consent(vals []WriteID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for b, v := range vals {
		if v == Garbage {
			v = 0
		}
		if v < m.floor[b] {
			m.floor[b] = v
		}
	}
}

// Lost records that the blocks given were lost with a disk (replaced by
// the operator after it failed): what only that disk held is gone, and
// what survives there is what the other copy holds durably (vals, as a
// crash would leave it: Cluster.DurableCopy), not what it holds unflushed.
func (m *Model) Lost(blocks []int64, vals []WriteID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range blocks {
		v := vals[b]
		if v == Garbage {
			v = 0
		}
		if v < m.floor[b] {
			m.floor[b] = v
		}
	}
}

// Violation is a broken rule, with what shows it.
type Violation struct {
	Rule   string
	Detail string
}

func (v *Violation) Error() string { return v.Rule + ": " + v.Detail }

func violation(rule, format string, a ...any) *Violation {
	return &Violation{Rule: rule, Detail: fmt.Sprintf(format, a...)}
}

// CheckData checks that every block of node's copy holds zeroes or a
// write sent to that block.
func (m *Model) CheckData(node string, vals []WriteID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkData(node, vals)
}

func (m *Model) checkData(node string, vals []WriteID) error {
	for b, v := range vals {
		if v == 0 {
			continue
		}
		if v == Garbage {
			if m.failedAt(int64(b)) {
				continue
			}
			return violation("garbage", "%s block %d holds neither zeroes nor one whole write's stamp, and no write sent there failed", node, b)
		}
		w := m.write(v)
		if w == nil || int64(b) < w.Block || int64(b) >= w.Block+w.N {
			return violation("garbage", "%s block %d holds the stamp of write %d, which was never sent there", node, b, v)
		}
	}
	return nil
}

// failedAfter reports whether a write sent to block b after write f
// failed.
func (m *Model) failedAfter(b int64, f WriteID) bool {
	for _, id := range m.byBlock[b] {
		if id > f && m.writes[id-1].Failed {
			return true
		}
	}
	return false
}

// failedAt reports whether a write sent to block b failed.
func (m *Model) failedAt(b int64) bool { return m.failedAfter(b, 0) }

// latestDurable returns the newest write to block b that is durable, was
// made durable before time before (0: any time), if reached is not empty
// reached that node, and if by is not empty was acknowledged by that node.
func (m *Model) latestDurable(b int64, before int64, reached, by string) WriteID {
	ids := m.byBlock[b]
	for i := len(ids) - 1; i >= 0; i-- {
		w := m.writes[ids[i]-1]
		if !w.Durable || (before > 0 && w.DurableAt >= before) || (reached != "" && w.Missing[reached]) || (by != "" && w.Node != by) {
			continue
		}
		return w.ID
	}
	return 0
}

// CheckPromoted checks the copy of a node just promoted without --force:
// it holds every durable write that reached it (but those the operator
// gave up: Consent, Lost), and nothing written after a durable write it
// lacks (but one the operator gave up). Blocks that lack only writes a primary took
// alone are counted in m.Excused.
func (m *Model) CheckPromoted(node string, vals []WriteID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkData(node, vals); err != nil {
		return err
	}
	excused := 0
	for b, v := range vals {
		// A block the operator gave up (Consent, Lost) below got need
		// not hold it: the floor says what must survive.
		if got := m.latestDurable(int64(b), 0, node, ""); v < got && v < m.floor[b] {
			return violation("promoted-lost", "%s was promoted without --force but block %d holds %d, older than %s, which was durable and had reached it",
				node, b, v, m.write(got))
		}
		if v < m.floor[b] {
			excused++
		}
	}
	var last WriteID
	for _, v := range vals {
		last = max(last, v)
	}
	if last != 0 {
		// A primary's writes are one history: a copy holding one of them
		// holds every one that primary made durable before sending it.
		lw := m.write(last)
		for b, v := range vals {
			if f := m.latestDurable(int64(b), lw.Issued, "", lw.Node); v < f && v < m.floor[b] {
				return violation("promoted-prefix", "%s was promoted without --force holding %s, but block %d holds %d, older than %s, which %s made durable before it sent that write",
					node, lw, b, v, m.write(f), lw.Node)
			}
		}
	}
	m.Excused += excused
	return nil
}

// CheckFloor checks that every durable write the operator did not give up
// survives on some copy: copies maps node names to their data.
func (m *Model) CheckFloor(copies map[string][]WriteID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(copies))
	for n := range copies {
		names = append(names, n)
	}
	sort.Strings(names)
	for b, f := range m.floor {
		if f == 0 {
			continue
		}
		held := false
		for _, n := range names {
			v := copies[n][b]
			// Garbage where a later write to the block failed: that
			// write's range is undefined, and may have landed with
			// whatever its buffer held by then (blockdev.Timeout).
			held = held || v >= f && v != Garbage || v == Garbage && m.failedAfter(int64(b), f)
		}
		if !held {
			var got []string
			for _, n := range names {
				got = append(got, fmt.Sprintf("%s has %d", n, copies[n][b]))
			}
			return violation("durable-lost", "block %d: %s was acknowledged durable and no copy holds it any more (%v)", b, m.write(f), got)
		}
	}
	return nil
}

// CheckRead checks a block read through node's export at time issued:
// it holds at least the newest write node acknowledged there since it was
// last promoted, and the newest durable write that reached node.
func (m *Model) CheckRead(node string, b int64, v WriteID, issued int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v != 0 {
		w := m.write(v)
		if w == nil || b < w.Block || b >= w.Block+w.N {
			return violation("garbage", "a read of block %d through %s returned the stamp of write %d, never sent there", b, node, v)
		}
	}
	need := m.latestDurable(b, 0, node, "")
	ids := m.byBlock[b]
	for i := len(ids) - 1; i >= 0; i-- {
		w := m.writes[ids[i]-1]
		if w.Node == node && w.Acked && w.AckedAt < issued && w.AckedAt > m.promoted[node] {
			need = max(need, w.ID)
			break
		}
	}
	if v < need {
		return violation("stale-read", "a read of block %d through %s returned %d, older than %s", b, node, v, m.write(need))
	}
	return nil
}
