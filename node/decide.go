package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/repl"
)

// The decisions that keep data safe are pure functions of what the node
// knows: its superblock, its link and what the peer said. The code around
// them gathers the inputs under the node's lock and applies the outcome
// (durably first, where the outcome is a superblock). Each is
// table-tested in decide_test.go.

// inboundLink is what a secondary knows of the primary's link to it.
type inboundLink struct {
	// Live: a primary's hello was accepted on a connection that is still
	// open.
	Live bool
	// Heard is how long ago the primary was last heard from.
	Heard time.Duration
}

// promoteIn is what promote decides from.
type promoteIn struct {
	Force      bool
	Standalone bool // no peer configured
	Disk       meta.DiskState
	Flags      uint32
	Failed     uint64 // failed members
	// Rebuild is a one-member rebuild of this copy that may resume.
	Rebuild *RebuildPoint
	Link    inboundLink
	Gens    Gens
	// Peer is what the peer said it holds when asked just before (nil:
	// not asked, or no answer).
	Peer *repl.Hello
	// Detect is how long a silent peer takes to be declared gone.
	Detect time.Duration
}

// promotePlan is what promote does.
type promotePlan struct {
	Refuse error
	Warn   string
	// Rebuilding: the copy serves only through the peer until its
	// rebuild ends; it keeps its generation and disk state.
	Rebuilding bool
	// SetAllUsed: every region counts as used before any write.
	SetAllUsed bool
	// DirtyAll: every region is marked out of sync before any write: a
	// copy forced up from a state that is not up to date differs from
	// its old generation where nothing records it, so whatever is synced
	// from it later is copied whole.
	DirtyAll bool
	// Diverge: a new data generation before any write.
	Diverge bool
	// Disk is the disk state to record.
	Disk         meta.DiskState
	ClearRebuild bool
}

// decidePromote says whether and how a node becomes primary.
func decidePromote(in promoteIn) promotePlan {
	p := promotePlan{Disk: meta.UpToDate}
	rebuild := in.Rebuild
	if in.Force || in.Standalone {
		rebuild = nil
	}
	switch in.Disk {
	case meta.UpToDate, meta.JustCreated:
	default:
		if rebuild != nil {
			p.Rebuilding, p.Disk = true, in.Disk
			p.Warn = fmt.Sprintf("this node's copy is being rebuilt (member %d, from %s): it serves I/O only through the peer, once connected",
				rebuild.Member, humanize.IBytes(uint64(rebuild.Cursor)))
			break
		}
		if !in.Force {
			p.Refuse = fmt.Errorf("this node's copy is %s (%s): promoting it could serve stale or half-synced data; "+
				"promote the peer instead, or wait for the resync to finish; --force promotes anyway and loses what only the peer holds",
				in.Disk, diskStateWhy(in.Disk))
			return p
		}
		p.Warn = fmt.Sprintf("WARNING: promoted a copy that is %s; whatever only the peer holds will be overwritten when they resync", in.Disk)
		p.ClearRebuild = true
		p.DirtyAll = true
	}
	if in.Link.Live {
		p.Refuse = fmt.Errorf("the peer is primary and connected to this node (last heard from %s ago): demote it there first ('netraid demote'); "+
			"if its machine or link is gone, this node notices within %s of silence and then accepts promote",
			in.Link.Heard.Round(time.Millisecond), in.Detect)
		return p
	}
	if h := in.Peer; h != nil && !in.Force && !p.Rebuilding {
		// Two secondaries do not talk, so what the peer holds is asked
		// for: a copy that is up to date on its own disks may still lack
		// what the peer took alone (it recorded a new generation while
		// it held the only copy of this node's writes). A copy being
		// rebuilt serves through the peer: their meeting decides.
		switch {
		case h.Role == meta.Primary:
			p.Refuse = fmt.Errorf("the peer is primary (it answered just now, generations %s): demote it there first ('netraid demote'); "+
				"--force promotes this node anyway and the two copies split", h.Gens)
			return p
		case repl.Decide(in.Gens, h.Gens, false) == repl.TargetNewer:
			p.Refuse = fmt.Errorf("the peer holds newer data than this node (generations: %s here, %s on the peer, whose copy is %s): "+
				"promote the peer instead; --force promotes this node and loses what only the peer holds", in.Gens, h.Gens, h.DiskState)
			return p
		}
	}
	if in.Failed != 0 {
		p.Refuse = fmt.Errorf("member disk(s) %#x of this node failed: replace them ('netraid disk replace') or promote the peer", in.Failed)
		return p
	}
	// A secondary takes its primary's writes without marking them in its
	// used bitmap, and a sync or a rebuild from this node skips the
	// regions that bitmap says were never written: if this node was ever
	// a secondary since it was last promoted, every region counts as used
	// from now on.
	p.SetAllUsed = in.Flags&meta.FlagUsedIncomplete != 0
	// The peer, if any, is not connected to a secondary-turned-primary:
	// from now on this node may take writes it lacks. A copy being
	// rebuilt can take none without the peer: it keeps the peer's
	// generation, so that they meet with nothing to do but the rebuild.
	p.Diverge = (!in.Standalone || in.Gens.Current == 0) && !p.Rebuilding
	return p
}

func diskStateWhy(s meta.DiskState) string {
	switch s {
	case meta.Inconsistent:
		return "a resync onto it was under way or was cut off"
	case meta.Outdated:
		return "the peer is known to hold newer data"
	case meta.Failed:
		return "its disks failed"
	}
	return "unknown state"
}

// helloIn is what a secondary decides a primary's hello from.
type helloIn struct {
	Primary      bool // this node is primary
	Disconnected bool // its operator took the link down
	Failed       uint64
	Name         string
	Size         int64
	Gens         Gens
	Discard      bool // connect --discard-local, or demoted for fencing
	Peer         repl.Hello
	// Seen is the newest fencing token this node has seen (0: none).
	Seen int64
}

// helloOut is the secondary's answer: a verdict (repl.NoVerdict when the
// generations were not compared), and a refusal saying what to do, or
// nil to accept.
type helloOut struct {
	Verdict Verdict
	Refuse  error
}

// decideHello says whether a secondary takes a primary's link.
func decideHello(in helloIn) helloOut {
	refuse := func(v Verdict, format string, a ...any) helloOut {
		return helloOut{Verdict: v, Refuse: fmt.Errorf(format, a...)}
	}
	h := in.Peer
	switch {
	case in.Disconnected:
		return refuse(repl.NoVerdict, "the secondary was disconnected by its operator: run 'netraid connect' there")
	case in.Failed != 0:
		return refuse(repl.NoVerdict, "the secondary's member disk(s) %#x failed: replace them there ('netraid disk replace OLD NEW')", in.Failed)
	case h.Name != in.Name:
		return refuse(repl.Unrelated, "another volume: the primary serves volume %q and this node volume %q", h.Name, in.Name)
	case h.Size > in.Size:
		return refuse(repl.NoVerdict, "this node's volume (%d bytes) is smaller than the primary's (%d bytes): give it disks at least as large, and create it again", in.Size, h.Size)
	case in.Seen > h.Token:
		return refuse(repl.NoVerdict, "the primary's election (fencing token %d) is older than one this node has seen (%d): another node took over; "+
			"the primary must win the volume's election again before it writes here", h.Token, in.Seen)
	case in.Primary:
		return refuse(repl.SplitBrain, "%s: both nodes are primary (generations: %s on the node that refused, %s on the node that dialed): "+
			"demote the node whose changes are to be discarded and run 'netraid connect --discard-local' there", repl.SplitBrain, in.Gens, h.Gens)
	}
	v := repl.Decide(h.Gens, in.Gens, in.Discard)
	switch v {
	case repl.SplitBrain:
		return refuse(v, "%s: both nodes took writes since they parted (generations: %s on the primary, %s on the secondary): "+
			"run 'netraid connect --discard-local' on the node whose changes are to be thrown away (demote it first if it is primary)", v, h.Gens, in.Gens)
	case repl.Unrelated:
		return refuse(v, "%s: the primary's data and this node's share no history (generations: %s on the primary, %s on the secondary): "+
			"if this node's data may go, run 'netraid connect --discard-local' here", v, h.Gens, in.Gens)
	case repl.TargetNewer:
		return refuse(v, "%s: this secondary holds newer data than the primary (generations: %s on the primary, %s on the secondary): "+
			"demote the primary and promote this node, or run 'netraid connect --discard-local' here to take the primary's data", v, h.Gens, in.Gens)
	}
	return helloOut{Verdict: v}
}

// peerLost is what a primary does when its peer leg fails.
type peerLost int

const (
	// peerLostNothing: the node is stopping; its last flush reached the
	// peer, and the link going now loses nothing.
	peerLostNothing peerLost = iota
	// peerLostHold: this copy is being rebuilt from the peer, or its
	// disks failed, so without the peer no I/O succeeds: nothing to
	// record, the generation stays.
	peerLostHold
	// peerLostDiverge: a new data generation, durable before any write
	// the peer lacks is answered; if it cannot be recorded, I/O is held
	// until it can (or the node stops: then held writes fail).
	peerLostDiverge
)

// decidePeerLost says what a primary does when its peer leg fails, from
// whether it is stopping and whether its local copy can take writes (not
// rebuilding, not failed).
func decidePeerLost(stopping, localUsable bool) peerLost {
	switch {
	case stopping:
		return peerLostNothing
	case !localUsable:
		return peerLostHold
	}
	return peerLostDiverge
}

// Errors of the link's control messages.
var (
	// errNotLink: a control message that did not come on the
	// established link of this node's primary.
	errNotLink = errors.New("control messages are taken only from this node's primary, on its established link")
	// errNotSecondary: this node is primary.
	errNotSecondary = errors.New("this node is primary: it takes no resync and no control message from another node")
)

// syncStartIn is what a secondary decides a resync's start from.
type syncStartIn struct {
	Primary     bool // this node is primary
	Established bool // the message came on the established link
	Disk        meta.DiskState
	Gens        Gens
	Msg         repl.Message
}

// syncStartOut is the outcome: the disk state and generations to record
// before answering (Record), or a refusal.
type syncStartOut struct {
	Refuse error
	Record bool
	Disk   meta.DiskState
	Gens   Gens
}

// decideSyncStart says what a secondary records before it takes the
// writes of a link: a copy that will be written to by a resync is
// inconsistent until the resync ends, unless it holds exactly the
// primary's data (same generation, nothing to copy).
func decideSyncStart(in syncStartIn) syncStartOut {
	switch {
	case in.Primary:
		return syncStartOut{Refuse: errNotSecondary}
	case !in.Established:
		return syncStartOut{Refuse: errNotLink}
	}
	if in.Msg.Total == 0 && in.Msg.Verdict == repl.NoSync && in.Disk == meta.UpToDate && in.Gens.Current == in.Msg.Gens.Current {
		return syncStartOut{Disk: in.Disk, Gens: in.Gens}
	}
	g := in.Gens
	g.SyncStartedAsTarget(in.Msg.Gens)
	return syncStartOut{Record: true, Disk: meta.Inconsistent, Gens: g}
}

// syncDoneOut is what a secondary records when a resync ends.
type syncDoneOut struct {
	Refuse error
	Gens   Gens
}

// decideSyncDone says what a secondary records when its primary says the
// resync is done.
func decideSyncDone(primary, established bool, own, src Gens) syncDoneOut {
	switch {
	case primary:
		return syncDoneOut{Refuse: errNotSecondary}
	case !established:
		return syncDoneOut{Refuse: errNotLink}
	}
	g := own
	g.SyncedAsTarget(src)
	return syncDoneOut{Gens: g}
}
