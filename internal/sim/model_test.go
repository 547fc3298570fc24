package sim

import (
	"errors"
	"testing"

	"github.com/netraid/netraid/stripe"
)

func TestStampRoundTrip(t *testing.T) {
	b := make([]byte, BlockSize)
	fillBlock(b, 42, 7)
	if id, err := readStamp(b, 7); err != nil || id != 42 {
		t.Fatalf("readStamp = %d, %v; want 42", id, err)
	}
	if _, err := readStamp(b, 8); err == nil {
		t.Fatal("a block's stamp read as another block's")
	}
	b[100] ^= 1
	if _, err := readStamp(b, 7); err == nil {
		t.Fatal("a damaged stamp was accepted")
	}
	if id, err := readStamp(make([]byte, BlockSize), 3); err != nil || id != 0 {
		t.Fatalf("zeroes read as %d, %v", id, err)
	}
}

// rule returns the rule a check broke, or "".
func rule(err error) string {
	var v *Violation
	if errors.As(err, &v) {
		return v.Rule
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

func TestModelPromoted(t *testing.T) {
	none := map[string]bool{}
	bLacks := map[string]bool{"b": true}
	for _, tc := range []struct {
		name    string
		run     func(m *Model) []WriteID // returns b's copy at promotion
		want    string
		excused int
	}{
		{"holds everything", func(m *Model) []WriteID {
			w := m.Issue("a", 0, 2, false)
			m.Ack(w, none)
			m.Flushed("a", m.Tick(), nil)
			return []WriteID{w.ID, w.ID, 0, 0}
		}, "", 0},
		{"lost a mirrored durable write", func(m *Model) []WriteID {
			w := m.Issue("a", 0, 1, true)
			m.Ack(w, none)
			return []WriteID{0, 0, 0, 0}
		}, "promoted-lost", 0},
		{"lost an unflushed write: allowed", func(m *Model) []WriteID {
			w := m.Issue("a", 1, 1, false)
			m.Ack(w, none)
			return []WriteID{0, 0, 0, 0}
		}, "", 0},
		{"lost a write its primary took alone: excused", func(m *Model) []WriteID {
			w := m.Issue("a", 2, 1, true)
			m.Ack(w, bLacks)
			return []WriteID{0, 0, 0, 0}
		}, "", 1},
		{"holds a later write without an earlier durable one (resync target taking writes)", func(m *Model) []WriteID {
			x := m.Issue("a", 0, 1, false)
			m.Ack(x, bLacks)
			m.Flushed("a", m.Tick(), nil)
			w := m.Issue("a", 3, 1, false)
			m.Ack(w, none)
			return []WriteID{0, 0, 0, w.ID}
		}, "promoted-prefix", 0},
		{"holds a later write without an earlier durable one the operator gave up (promote --force of b earlier)", func(m *Model) []WriteID {
			x := m.Issue("a", 0, 1, false)
			m.Ack(x, bLacks)
			m.Flushed("a", m.Tick(), nil)
			w := m.Issue("a", 3, 1, false)
			m.Ack(w, none)
			m.Consent([]WriteID{0, 0, 0, w.ID})
			return []WriteID{0, 0, 0, w.ID}
		}, "", 0},
		{"two primaries' histories are not one: holding its own later write without a's earlier one", func(m *Model) []WriteID {
			y := m.Issue("a", 0, 1, true)
			m.Ack(y, bLacks)
			w := m.Issue("b", 3, 1, true)
			m.Ack(w, map[string]bool{"a": true})
			return []WriteID{0, 0, 0, w.ID}
		}, "", 1},
		{"lost a mirrored durable write the operator gave up (promote --force of b earlier)", func(m *Model) []WriteID {
			w := m.Issue("a", 0, 1, true)
			m.Ack(w, none)
			m.Consent([]WriteID{0, 0, 0, 0})
			return []WriteID{0, 0, 0, 0}
		}, "", 0},
		{"lost a mirrored durable write with a replaced disk of b", func(m *Model) []WriteID {
			w := m.Issue("a", 0, 1, true)
			m.Ack(w, none)
			m.Lost([]int64{0}, []WriteID{0, 0, 0, 0})
			return []WriteID{0, 0, 0, 0}
		}, "", 0},
		{"lost a durable write made after the operator gave up an older one", func(m *Model) []WriteID {
			w := m.Issue("a", 0, 1, true)
			m.Ack(w, none)
			m.Consent([]WriteID{0, 0, 0, 0})
			x := m.Issue("a", 0, 1, true)
			m.Ack(x, none)
			return []WriteID{w.ID, 0, 0, 0}
		}, "promoted-lost", 0},
		{"garbage", func(m *Model) []WriteID {
			w := m.Issue("a", 0, 1, false)
			m.Ack(w, none)
			return []WriteID{0, w.ID, 0, 0}
		}, "garbage", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewModel(4)
			vals := tc.run(m)
			if got := rule(m.CheckPromoted("b", vals)); got != tc.want {
				t.Fatalf("CheckPromoted broke %q, want %q", got, tc.want)
			}
			if m.Excused != tc.excused {
				t.Fatalf("Excused = %d, want %d", m.Excused, tc.excused)
			}
		})
	}
}

func TestModelFloor(t *testing.T) {
	m := NewModel(2)
	// a takes X alone and flushes it; b is promoted (lacking X, excused)
	// and takes Y elsewhere.
	x := m.Issue("a", 0, 1, false)
	m.Ack(x, map[string]bool{"b": true})
	m.Flushed("a", m.Tick(), nil)
	y := m.Issue("b", 1, 1, true)
	m.Ack(y, map[string]bool{"a": true})
	copies := map[string][]WriteID{"a": {x.ID, 0}, "b": {0, y.ID}}
	if err := m.CheckFloor(copies); err != nil {
		t.Fatalf("both durable writes are held somewhere, yet: %v", err)
	}
	// A sync from b to a without the operator's word: X is gone.
	merged := map[string][]WriteID{"a": {0, y.ID}, "b": {0, y.ID}}
	if got := rule(m.CheckFloor(merged)); got != "durable-lost" {
		t.Fatalf("a merged split brain broke %q, want durable-lost", got)
	}
	// With the operator's word (discard a's changes, keep b's copy) it
	// is allowed.
	m.Consent(copies["b"])
	if err := m.CheckFloor(merged); err != nil {
		t.Fatalf("after consent: %v", err)
	}
}

// TestModelFloorFailedWrite: a durable write overwritten where a later
// write to its block failed is not lost: the failed write's range is
// undefined (fenced seed 17049: a timed-out write landed its reused
// buffer over a durable write). Garbage with no failed write after the
// durable one still is.
func TestModelFloorFailedWrite(t *testing.T) {
	m := NewModel(2)
	w := m.Issue("a", 0, 2, true)
	m.Ack(w, nil)
	x := m.Issue("a", 0, 1, false)
	x.Failed = true
	copies := map[string][]WriteID{"a": {Garbage, w.ID}, "b": {0, 0}}
	if err := m.CheckFloor(copies); err != nil {
		t.Fatalf("block 0 was overwritten by a failed write, yet: %v", err)
	}
	copies["a"][1] = Garbage
	if got := rule(m.CheckFloor(copies)); got != "durable-lost" {
		t.Fatalf("garbage over a durable write with no failed write after it broke %q, want durable-lost", got)
	}
}

// TestModelLostKeepsWhatSurvivesACrash: when the operator replaces the
// disks of the copy that alone held a write durably, what survives of
// it is what the other copy holds durably, not what it holds now (plain
// seed 16766: a, its local leg failed, held a flushed write unflushed;
// b's disks were replaced, then a crashed). A write the other copy held
// durably and lost is still lost.
func TestModelLostKeepsWhatSurvivesACrash(t *testing.T) {
	for _, tc := range []struct {
		name string
		// onA: how a's disks hold the write before b's are replaced.
		onA func(h *simBlocks, id WriteID)
		// after: what happens to a's copy after b's disks are replaced.
		after func(h *simBlocks)
		want  string
	}{
		{"a held it unflushed and crashed", func(h *simBlocks, id WriteID) { h.put(id, false) }, func(h *simBlocks) { h.crash() }, ""},
		{"a held it unflushed and did not crash", func(h *simBlocks, id WriteID) { h.put(id, false) }, func(h *simBlocks) {}, ""},
		{"a held it durably and crashed", func(h *simBlocks, id WriteID) { h.put(id, true) }, func(h *simBlocks) { h.crash() }, ""},
		{"a held it durably and overwrote it with zeroes", func(h *simBlocks, id WriteID) { h.put(id, true) }, func(h *simBlocks) { h.put(0, true) }, "durable-lost"},
		{"a never held it", func(h *simBlocks, id WriteID) {}, func(h *simBlocks) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCluster(nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			const block = 5
			a, b := newSimBlocks(t, c, "a", block), newSimBlocks(t, c, "b", block)
			// a's local leg failed: a serves through b, which takes write
			// w and a flush; a's disks got w and no flush.
			w := c.Model.Issue("a", block, 1, false)
			b.put(w.ID, false)
			tc.onA(a, w.ID)
			c.Model.Ack(w, nil)
			b.flush()
			c.Model.Flushed("a", c.Model.Tick(), nil)
			// b's disks fail and the operator replaces every one.
			for member := range c.Layout().Members {
				if err := c.LoseMember("b", member); err != nil {
					t.Fatal(err)
				}
			}
			tc.after(a)
			got, err := c.Copy("a")
			if err != nil {
				t.Fatal(err)
			}
			blank := make([]WriteID, c.Model.Blocks())
			if r := rule(c.Model.CheckFloor(map[string][]WriteID{"a": got, "b": blank})); r != tc.want {
				t.Fatalf("CheckFloor broke %q, want %q (a's block %d holds %d)", r, tc.want, block, got[block])
			}
		})
	}
}

// simBlocks writes one block of a node's copy straight onto its disks.
type simBlocks struct {
	t     *testing.T
	p     *Proc
	block int64
	h     *Handle
	off   int64
}

func newSimBlocks(t *testing.T, c *Cluster, name string, block int64) *simBlocks {
	l := c.Layout()
	p := c.Procs[name]
	e := stripe.Map(block*BlockSize, BlockSize, l.Chunk, l.Members)[0]
	// A new cluster's disks are its members in order.
	return &simBlocks{t: t, p: p, block: block, h: p.Disks[e.Disk].Open(), off: l.DataOffset + e.DiskOff}
}

// put writes write id's stamp to the block (0: zeroes), durably or not.
func (s *simBlocks) put(id WriteID, durable bool) {
	buf := make([]byte, BlockSize)
	if id != 0 {
		fillBlock(buf, id, s.block)
	}
	write := s.h.WriteAt
	if durable {
		write = s.h.WriteAtFUA
	}
	if _, err := write(buf, s.off); err != nil {
		s.t.Fatal(err)
	}
}

func (s *simBlocks) flush() {
	if err := s.h.Flush(); err != nil {
		s.t.Fatal(err)
	}
}

// crash cuts the node's power: its disks drop what was not flushed.
func (s *simBlocks) crash() { Sever(s.p.Disks, true) }

func TestModelRead(t *testing.T) {
	m := NewModel(2)
	m.Promoted("a")
	w := m.Issue("a", 0, 1, false)
	m.Ack(w, nil)
	if err := m.CheckRead("a", 0, w.ID, m.Tick()); err != nil {
		t.Fatal(err)
	}
	if got := rule(m.CheckRead("a", 0, 0, m.Tick())); got != "stale-read" {
		t.Fatalf("a read of an overwritten block broke %q, want stale-read", got)
	}
	// Another node promoted later need not hold a's unflushed write.
	m.Promoted("b")
	if err := m.CheckRead("b", 0, 0, m.Tick()); err != nil {
		t.Fatal(err)
	}
}

// TestModelCrash: a write acknowledged and not flushed before its node
// lost power is not made durable by a flush after the restart.
func TestModelCrash(t *testing.T) {
	m := NewModel(1)
	w := m.Issue("a", 0, 1, false)
	m.Ack(w, nil)
	m.Crashed("a")
	m.Flushed("a", m.Tick(), nil)
	if w.Durable {
		t.Fatal("a write dropped by a power loss became durable at a later flush")
	}
	if err := m.CheckFloor(map[string][]WriteID{"a": {0}}); err != nil {
		t.Fatal(err)
	}
}

// TestModelFlushCoversOneTerm: a flush answered by a node covers the
// writes it acknowledged since it was last promoted, not those of an
// earlier term whose end (a demotion whose flush failed, a forced
// promotion over a replaced disk) may have lost them.
func TestModelFlushCoversOneTerm(t *testing.T) {
	m := NewModel(2)
	m.Promoted("a")
	w := m.Issue("a", 0, 1, false)
	m.Ack(w, nil)
	m.Promoted("a") // demoted (its flush failed), forced up again
	x := m.Issue("a", 1, 1, false)
	m.Ack(x, nil)
	m.Flushed("a", m.Tick(), nil)
	if w.Durable {
		t.Fatalf("%s, acknowledged in a's earlier term, made durable by a flush of its next", w)
	}
	if !x.Durable {
		t.Fatalf("%s, acknowledged in this term, not made durable by its flush", x)
	}
	if err := m.CheckFloor(map[string][]WriteID{"a": {0, x.ID}, "b": {0, 0}}); err != nil {
		t.Fatal(err)
	}
}
