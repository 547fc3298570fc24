package repl

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/netraid/netraid/meta"
)

// Gens are a node's data generation identifiers, in the manner of DRBD's
// UUIDs. Current names the data this node holds; zero means the node was
// just created and holds nothing of value. Bitmap is the generation the
// dirty bitmap is relative to: non-zero while this node has changes that
// its peer lacks, counted from the moment they diverged. History keeps the
// generations this node held before, newest first.
type Gens struct {
	Current uint64    `json:"current"`
	Bitmap  uint64    `json:"bitmap"`
	History [4]uint64 `json:"history"`
}

// newGen returns a fresh, non-zero generation identifier.
func newGen() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("repl: no randomness: %v", err))
		}
		if g := binary.LittleEndian.Uint64(b[:]); g != 0 {
			return g
		}
	}
}

// push moves g to the front of the history.
func (g *Gens) push(old uint64) {
	if old == 0 {
		return
	}
	copy(g.History[1:], g.History[:len(g.History)-1])
	g.History[0] = old
}

// Diverge starts a new generation because this node may now take writes
// its peer does not get: when a disconnected node is promoted, when a
// primary loses its peer, and when a full sync begins. The bitmap from
// then on counts what the peer lacks relative to the old generation. A
// node already diverged keeps its bitmap generation: its bitmap still
// covers everything since the older divergence.
func (g *Gens) Diverge() {
	if g.Bitmap == 0 {
		g.Bitmap = g.Current
	} else {
		g.push(g.Current)
	}
	g.Current = newGen()
}

// NewCurrent starts a new current generation with the old one in
// history and no bitmap generation: a copy whose old data lives on where
// nothing tracks what changed since (the disks of a primary that failed
// without a record), so that a later meeting with that old data is a full
// sync, never a no-sync.
func (g *Gens) NewCurrent() {
	g.push(g.Current)
	g.Current = newGen()
}

// SyncedAsSource records that the peer now holds everything this node
// holds: the bitmap generation passes into history.
func (g *Gens) SyncedAsSource() {
	g.push(g.Bitmap)
	g.Bitmap = 0
}

// SyncStartedAsTarget records that a resync from src begins: until it
// ends the target holds a mix of its own data and src's, which the
// resync makes src's. If src's bitmap generation is not the target's own
// (the target is resynced by bitmap from the generation src diverged
// from), the target takes that generation as its current one, so that an
// interrupted resync still meets src as a bitmap resync.
func (g *Gens) SyncStartedAsTarget(src Gens) {
	if src.Bitmap != 0 && g.Current != src.Bitmap {
		g.push(g.Current)
		g.Current = src.Bitmap
	}
	g.Bitmap = 0
}

// SyncedAsTarget records that this node now holds the source's data.
func (g *Gens) SyncedAsTarget(src Gens) {
	*g = Gens{Current: src.Current, History: src.History}
	if src.Bitmap != 0 {
		g.push(src.Bitmap)
	}
}

// GensOf returns the generations a superblock records.
func GensOf(g meta.Generations) Gens {
	return Gens{Current: g.Current, Bitmap: g.Bitmap, History: g.History}
}

// Meta returns g as a superblock records it.
func (g Gens) Meta() meta.Generations {
	return meta.Generations{Current: g.Current, Bitmap: g.Bitmap, History: g.History}
}

// String is a short form for logs and status: current/bitmap.
func (g Gens) String() string {
	return fmt.Sprintf("%016X/%016X", g.Current, g.Bitmap)
}

// Verdict is what two nodes must do when they meet.
type Verdict int8

const (
	// NoVerdict: the generations were not compared (the zero value,
	// left out on the wire).
	NoVerdict Verdict = iota
	// NoSync: the data are the same generation; only the union of the two
	// dirty bitmaps (writes in flight when something failed) is resynced.
	NoSync
	// BitmapSync: the target is the generation the source diverged from;
	// the source's bitmap (with the target's merged in) says what differs.
	BitmapSync
	// FullSync: the target holds nothing or too old a generation; every
	// region the source ever wrote is copied.
	FullSync
	// SplitBrain: both diverged from a common generation and took writes.
	// Refused: an operator must choose whose changes to discard.
	SplitBrain
	// Unrelated: the two copies share no history: another volume's data.
	Unrelated
	// TargetNewer: the node that would be the source is older than the
	// target: it must be demoted and synced from its peer instead.
	TargetNewer
)

func (v Verdict) String() string {
	switch v {
	case NoSync:
		return "no-sync"
	case BitmapSync:
		return "bitmap-sync"
	case FullSync:
		return "full-sync"
	case SplitBrain:
		return "split-brain"
	case Unrelated:
		return "unrelated-data"
	case TargetNewer:
		return "target-newer"
	case NoVerdict:
		return "none"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// MarshalText formats v as String does.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText parses what MarshalText produces.
func (v *Verdict) UnmarshalText(b []byte) error {
	got, ok := parseVerdict(string(b))
	if !ok {
		return fmt.Errorf("repl: unknown verdict %q", b)
	}
	*v = got
	return nil
}

// parseVerdict is the Verdict whose String is s; false if none is.
func parseVerdict(s string) (Verdict, bool) {
	for v := NoVerdict; v <= TargetNewer; v++ {
		if v.String() == s {
			return v, true
		}
	}
	return -1, false
}

// Refused reports whether the verdict leaves the link down.
func (v Verdict) Refused() bool { return v >= SplitBrain }

// Decide compares the generations of the node that is to be the sync
// source (the primary) with those of the target (the secondary).
// discardTarget is the operator's word that the target's own changes may
// be thrown away (connect --discard-local on the target): a split brain
// then resolves as a sync towards the target.
func Decide(src, dst Gens, discardTarget bool) Verdict {
	switch {
	case dst.Current == 0:
		return FullSync
	case src.Current == 0:
		// The source holds nothing: never overwrite data with nothing.
		return TargetNewer
	case src.Current == dst.Current:
		return NoSync
	case src.Bitmap != 0 && dst.Current == src.Bitmap:
		return BitmapSync
	case dst.Bitmap != 0 && src.Current == dst.Bitmap:
		if discardTarget {
			return BitmapSync
		}
		return TargetNewer
	case src.Bitmap != 0 && src.Bitmap == dst.Bitmap:
		if discardTarget {
			// Both bitmaps together cover every region either side
			// changed since they parted.
			return BitmapSync
		}
		return SplitBrain
	case slices.Contains(src.History[:], dst.Current) && dst.Bitmap == 0:
		return FullSync
	case slices.Contains(dst.History[:], src.Current) && src.Bitmap == 0 && !discardTarget:
		// The target moved on from the source's current generation
		// (it recorded a new one while it held the only copy of the
		// source's writes, repl.MsgDiskless) and the source took
		// nothing since: the target holds everything the source does,
		// and more.
		return TargetNewer
	case discardTarget && (related(src, dst)):
		return FullSync
	case related(src, dst):
		return SplitBrain
	}
	if discardTarget {
		return FullSync
	}
	return Unrelated
}

// related reports whether two generation sets share any generation.
func related(a, b Gens) bool {
	ids := func(g Gens) []uint64 {
		return append([]uint64{g.Current, g.Bitmap}, g.History[:]...)
	}
	for _, x := range ids(a) {
		if x != 0 && slices.Contains(ids(b), x) {
			return true
		}
	}
	return false
}
