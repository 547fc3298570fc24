package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/mirror"
	"github.com/netraid/netraid/repl"
	"github.com/netraid/netraid/resync"
	"github.com/netraid/netraid/stripe"
)

// A rebuild copies one replaced member's share of a node's copy from the
// other node. Its progress is kept in the rebuilding node's superblock
// (meta's rebuild record): the member, and a cursor below which the
// member holds its share of every region except the dirty ones. The
// cursor moves only after the copies below it were flushed on the new
// disk. After a restart the node asks for that member's share from the
// cursor on, plus the dirty regions whole, instead of a full sync; when
// anything about the meeting is unclear (other generations than a plain
// resync allows, a peer that is not up to date, a discard) the full sync
// is done as before.

// rebuildPoint is the superblock's rebuild to resume, or nil. Callers
// hold n.mu.
func (n *Node) rebuildPoint() *RebuildPoint {
	m, c, ok := n.sb.ResumableRebuild()
	if !ok {
		return nil
	}
	return &RebuildPoint{Member: m, Cursor: c}
}

// fits reports whether rp names a member and a region boundary of the
// volume sb describes.
func fits(rp *RebuildPoint, sb *meta.Superblock) bool {
	size, region := int64(sb.VolumeSize), int64(sb.RegionSize)
	return rp.Member >= 0 && rp.Member < int(sb.Members) && rp.Cursor >= 0 && rp.Cursor <= size &&
		(rp.Cursor%region == 0 || rp.Cursor == size)
}

// rebuildKind is the rebuild's name in status.
func rebuildKind(rp RebuildPoint, what string) string {
	if rp.Cursor == 0 {
		return what
	}
	return fmt.Sprintf("%s (resumed at %s)", what, humanize.IBytes(uint64(rp.Cursor)))
}

// rebuildPlan is what a rebuild from rp visits and copies: the regions
// used or dirty at or past the cursor, and the dirty ones before it;
// the member's share of a clean region, a dirty region whole.
func (n *Node) rebuildPlan(rp RebuildPoint) (mirror.RebuildOptions, error) {
	region := int64(n.sb.RegionSize)
	visit, err := resync.OpenBitmap(blockdev.NewMem(resync.StoreSize(n.size, region)), n.size, region, resync.BitmapOptions{})
	if err != nil {
		return mirror.RebuildOptions{}, err
	}
	if err := visit.SetAll(); err != nil {
		visit.Close()
		return mirror.RebuildOptions{}, err
	}
	first := rp.Cursor / region
	for r := range visit.Regions() {
		if !n.bm.Dirty(r) && (r < first || !n.bm.Used(r)) {
			visit.Clean(r, r)
		}
	}
	chunk, members, idx := int64(n.sb.Chunk), int(n.sb.Members), rp.Member
	pieces := func(off, len int64) [][2]int64 {
		var out [][2]int64
		for _, e := range stripe.Map(off, len, chunk, members) {
			if e.Disk == idx {
				out = append(out, [2]int64{off + e.BufOff, e.Len})
			}
		}
		return out
	}
	return mirror.RebuildOptions{Visit: visit, Pieces: pieces}, nil
}

// rebuildEngine is the engine of a rebuild from rp at rate (the
// configured one, read under n.mu): it starts at the cursor and hands
// record every cursor the engine reports after a flush that is past the
// last one recorded. Status follows rs.
func (n *Node) rebuildEngine(rp RebuildPoint, rate int64, rs *resyncState, record func(int64) error, status func()) *resync.Engine {
	last := rp.Cursor
	return resync.NewEngine(resync.Options{
		Rate: rate, Adaptive: n.cfg.ResyncAdaptive, StartAt: rp.Cursor,
		Progress: func(pr resync.Progress) {
			rs.update(pr)
			if status != nil {
				status()
			}
			// A report while pausing may come before the copies behind
			// its cursor were flushed; the others follow a flush. Past
			// the end the run wraps round to the dirty regions before
			// the start: the cursor then goes back, and is not recorded.
			if pr.Paused || pr.Cursor <= last {
				return
			}
			if err := record(pr.Cursor); err != nil {
				n.log.Warn("recording the rebuild's progress", "member", rp.Member, "cursor", pr.Cursor, "err", err)
				return
			}
			last = pr.Cursor
		},
	})
}

// recordRebuild moves this node's rebuild cursor forward to cursor, after
// a flush of the local disks makes the copies below it durable. The
// bitmap is written first too, so that the regions cleaned since the last
// lazy write are not copied whole again after a restart.
func (n *Node) recordRebuild(member int, cursor int64) error {
	if err := n.vol.Data().Flush(); err != nil {
		return err
	}
	if err := n.bm.Sync(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.sb.Rebuilding || int(n.sb.RebuildMember) != member || int64(n.sb.RebuildCursor) >= cursor {
		return nil
	}
	rp := RebuildPoint{Member: member, Cursor: cursor}
	if !fits(&rp, &n.sb) {
		return fmt.Errorf("node: rebuild cursor %d does not fit the volume", cursor)
	}
	return n.updateSuper(func(sb *meta.Superblock) { sb.SetRebuild(uint32(member), uint64(cursor)) })
}

// beginRebuild returns the channel that the next rebuildLocal closes
// when it ends, and that waitRebuild waits for.
func (p *primary) beginRebuild() chan struct{} {
	done := make(chan struct{})
	p.mu.Lock()
	p.rebuildDone = done
	p.mu.Unlock()
	return done
}

// rebuildLocal rebuilds member rp.Member of the local leg (resyncing)
// from the peer leg, from rp.Cursor on, recording its progress; at the
// end the copy is up to date. It closes done (from beginRebuild) when it
// returns.
func (p *primary) rebuildLocal(ctx context.Context, rp RebuildPoint, done chan struct{}) error {
	n := p.n
	defer close(done)
	p.mu.Lock()
	leg := p.local
	p.mu.Unlock()
	n.mu.Lock()
	plan, err := n.rebuildPlan(rp)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	defer plan.Visit.Close()
	n.log.Info("rebuilding a replaced member from the peer", "member", rp.Member, "from", rp.Cursor,
		"regions_bytes", plan.Visit.DirtyBytes(), "used_bytes", n.bm.UsedBytes(), "dirty_bytes", n.bm.DirtyBytes())
	rs := newResyncState(rebuildKind(rp, "rebuild"), plan.Visit.DirtyBytes(), n.cfg.ResyncRate)
	n.rebuild = rs.status()
	eng := n.rebuildEngine(rp, n.cfg.ResyncRate, rs, func(c int64) error { return n.recordRebuild(rp.Member, c) }, func() {
		n.mu.Lock()
		n.rebuild = rs.status()
		n.mu.Unlock()
	})
	n.mu.Unlock()
	err = p.mir.Rebuild(ctx, leg, eng, plan)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		if n.rebuild != nil {
			n.rebuild.Kind = rebuildKind(rp, "rebuild") + " failed: " + err.Error()
		}
		return fmt.Errorf("rebuild of member %d: %w", rp.Member, err)
	}
	n.rebuild = nil
	if err := n.updateSuper(func(sb *meta.Superblock) {
		sb.DiskState = meta.UpToDate
		sb.Flags &^= meta.FlagNeedFullSync
		sb.ClearRebuild()
	}); err != nil {
		return fmt.Errorf("recording the end of the rebuild: %w", err)
	}
	n.log.Info("rebuild of the replaced disk done", "member", rp.Member, "copied", leg.Stats().SyncBytes)
	if p.disklessDone.Load() && n.sb.FailedMembers == 0 {
		// The disks recorded outdated (recordDiskless) are rebuilt.
		n.wg.Go(func() {
			p.clearRecordIf(n.cfg.Name, func() bool {
				n.mu.Lock()
				defer n.mu.Unlock()
				return n.sb.FailedMembers == 0
			})
		})
	}
	return nil
}

// waitRebuild waits for a rebuild of the local leg that is still running
// (a link that failed under it ends it).
func (p *primary) waitRebuild(ctx context.Context) error {
	p.mu.Lock()
	done := p.rebuildDone
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ownRebuild is the rebuild of this primary's own copy that is waiting
// for the peer, or nil: the local leg is resyncing and the superblock
// records a rebuild to resume. Callers hold n.mu.
func (p *primary) ownRebuild() *RebuildPoint {
	if p.local == nil || p.local.State() != mirror.Resyncing {
		return nil
	}
	return p.n.rebuildPoint()
}

// checkRebuildSource says why a peer cannot be the source of this
// primary's own rebuild, or nil if it can: same generation, up to date,
// and nothing of its own to be synced or discarded.
func checkRebuildSource(rp *RebuildPoint, v Verdict, peer repl.Hello, mayLack bool) error {
	if mayLack {
		return fmt.Errorf("this node's copy has an unfinished rebuild of member %d (from %s) and the peer, its source, lost its link, then came back restarted, "+
			"before writes answered since the last flush were flushed: they may be gone, and what this node holds of them cannot be told from what it does not. "+
			"Demote this node and promote the peer (what it lacks was never flushed); this node is then synced from it", rp.Member, humanize.IBytes(uint64(rp.Cursor)))
	}
	if v == repl.NoSync && peer.DiskState == meta.UpToDate && !peer.NeedFull && !peer.Discard {
		return nil
	}
	return fmt.Errorf("this node's copy has an unfinished rebuild of member %d (from %s) and the peer cannot be its source "+
		"(verdict %s, peer %s%s): demote this node and promote the peer; this node is then synced from it",
		rp.Member, humanize.IBytes(uint64(rp.Cursor)), v, peer.DiskState, map[bool]string{true: ", itself waiting for a full sync"}[peer.NeedFull])
}

// peerMayLack says whether the peer, back on the link, may lack writes
// answered since the last flush that it alone held when its link was
// lost (lostFrom: its boot then; nil if it held none alone). Unless it
// is the same daemon, not restarted since, it may have crashed and lost
// them.
func peerMayLack(lostFrom *string, peer repl.Hello) bool {
	return lostFrom != nil && (*lostFrom == "" || peer.Boot != *lostFrom)
}

// checkDisklessSource says why a primary whose local disks failed cannot
// take the peer back, or nil if it can: the peer holds everything (the
// same generation, up to date, nothing owed to it), and serves in the
// primary's place. mayLack: the peer's link ended while it held, alone,
// writes answered since the last flush; had it crashed, it lost them,
// and a flush answered once it is back would call them durable.
func checkDisklessSource(v Verdict, peer repl.Hello, mayLack bool) error {
	if mayLack {
		return errors.New("this node's disks failed and the peer, the only copy, lost its link, then came back restarted, before writes answered since the last flush were flushed: " +
			"they may be gone. Demote this node and promote the peer (what it lacks was never flushed), then replace the disks here ('netraid disk replace')")
	}
	if v == repl.NoSync && peer.DiskState == meta.UpToDate && !peer.NeedFull && !peer.Discard {
		return nil
	}
	return fmt.Errorf("this node's disks failed and the peer does not hold all of its data (verdict %s, peer %s): "+
		"nothing here can be copied to it; demote this node and promote the peer (what only this node held is lost with its disks), "+
		"then replace the disks here ('netraid disk replace')", v, peer.DiskState)
}

// peerRebuild decides whether a secondary that asks for a full sync
// because of a replaced member may get a rebuild of that member instead:
// it says from where, the verdict is a plain resync in that direction,
// and it discards nothing. Otherwise nil: a full sync.
func (n *Node) peerRebuild(v Verdict, peer repl.Hello) *RebuildPoint {
	rp := peer.Rebuild
	if !peer.NeedFull || rp == nil || peer.Discard || (v != repl.NoSync && v != repl.BitmapSync) || !fits(rp, &n.sb) {
		return nil
	}
	return rp
}
