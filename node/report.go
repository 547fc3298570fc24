package node

import (
	"fmt"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/mirror"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/repl"
	"github.com/netraid/netraid/resync"
	"github.com/netraid/netraid/witness"
)

// statusWait is how long Status waits for the node's lock before it
// answers with the last status it made and what holds the node up.
const statusWait = 250 * time.Millisecond

// Status reports the node's state for the control API. It answers within
// a fraction of a second whatever the node is doing: when the node's lock
// is held longer (a superblock write to a disk that hangs, until the disk
// time-out), it returns the last status it made, saying so.
func (n *Node) Status() Status {
	deadline := time.Now().Add(statusWait)
	for !n.mu.TryLock() {
		if time.Now().After(deadline) {
			return n.staleStatus()
		}
		time.Sleep(2 * time.Millisecond)
	}
	st := n.status()
	n.mu.Unlock()
	n.lastStatus.Store(&st)
	return st
}

// staleStatus is the last status made, with what keeps the node busy.
func (n *Node) staleStatus() Status {
	var st Status
	if last := n.lastStatus.Load(); last != nil {
		st = *last
		st.Problems = append([]string(nil), last.Problems...)
	}
	what := "an operation"
	since := time.Now()
	if b := n.busy.Load(); b != nil {
		what, since = b.what, b.since
	}
	st.Problems = append(st.Problems, fmt.Sprintf("the node has been busy %s for %s (a disk may hang; it is failed after --disk-timeout): this status is from %s",
		what, time.Since(since).Round(time.Millisecond), st.Time.Format(time.RFC3339)))
	st.Stale = true
	return st
}

// status makes the status. Callers hold n.mu.
func (n *Node) status() Status {
	sb := n.sb
	st := Status{
		Volume: sb.Name, Version: n.cfg.Version, SetUUID: sb.SetUUID.String(), Size: n.size,
		Chunk: int64(sb.Chunk), Region: int64(sb.RegionSize),
		Role: "secondary", DiskState: sb.DiskState.String(), Gens: n.gens(),
		OutOfSync: n.bm.DirtyBytes(), Bitmap: bitmapStatus(n.bm.Stats()),
		Uptime: time.Since(n.started).Seconds(), Time: time.Now().UTC(),
	}
	failed := 0
	// unrecorded are the members failed in memory that no superblock
	// records failed: the last to fail, with none left to record it.
	var unrecorded uint64
	for _, m := range n.vol.Members() {
		state := "active"
		if m.Failed {
			state = "failed"
			failed++
			if !sb.MemberFailed(m.Index) {
				unrecorded |= 1 << uint(m.Index)
			}
		}
		st.Members = append(st.Members, MemberStatus{Index: m.Index, Path: m.Path, Size: m.Size, State: state})
	}
	allFailed := failed == len(st.Members)
	if allFailed {
		// No member was left to record it: the superblock still says
		// what it said before.
		st.DiskState = meta.Failed.String()
	}
	if !n.cfg.standalone() {
		ps := &PeerStatus{Address: n.cfg.Peer, Listen: n.cfg.ListenPeer, TLS: n.cfg.TLSDir != "", Auth: n.cfg.linkAuth(),
			Name: n.cfg.PeerName, State: n.peer.state.String(), LastError: n.peer.lastErr}
		if p := n.linkProblem(); p != "" {
			st.Problems = append(st.Problems, p)
		}
		if lv := n.linkView(); n.prim == nil && lv.Live {
			ps.LastHeard = max(lv.Heard.Seconds(), 1e-3)
		}
		if !n.peer.since.IsZero() {
			ps.Since = n.peer.since.UTC().Format(time.RFC3339Nano)
		}
		if n.peer.met {
			ps.Verdict = n.peer.verdict.String()
		}
		if h := n.peer.hello; h != nil {
			ps.Role, ps.DiskState, ps.Version = h.Role.String(), h.DiskState.String(), h.Software
			if skew := n.versionSkew(h.Software); skew != "" {
				st.Problems = append(st.Problems, skew)
			}
			g := h.Gens
			ps.Gens = &g
		}
		st.Peer = ps
		switch ps.State {
		case "standalone":
			st.Problems = append(st.Problems, "the peer link is refused: "+n.peer.lastErr)
		case "disconnected":
			st.Problems = append(st.Problems, "the link was taken down by the operator: 'netraid connect' brings it back")
		}
	}
	if p := n.prim; p != nil {
		st.Role = "primary"
		st.Export = serverStatus(p.srv, p.export)
		st.Export.Address, st.Export.ReadOnly, st.Export.TLS = p.addr, n.cfg.ReadOnly, n.exportTLSMode()
		if p.ra != nil {
			rs := p.ra.Stats()
			st.Export.Readahead = &ReadaheadStatus{Window: n.cfg.Readahead, Hits: rs.Hits, Misses: rs.Misses, ReadAhead: rs.ReadAhead}
		}
		for _, l := range p.mir.Legs() {
			ls := l.Stats()
			st.Legs = append(st.Legs, LegStatus{Name: l.Name(), State: legState(l.State()), Error: errText(l.Err()),
				Reads: ls.Reads, Writes: ls.Writes, ReadBytes: ls.ReadBytes, WriteBytes: ls.WriteBytes, Flushes: ls.Flushes, Errors: ls.Errors,
				Resynced: ls.SyncBytes})
		}
		p.mu.Lock()
		if p.sync != nil {
			st.Resync = p.sync.status()
		}
		p.mu.Unlock()
		if p.local.State() == mirror.Failed {
			st.Problems = append(st.Problems, "the local disks failed; the volume is served through the peer: replace the failed disk with 'netraid disk replace OLD NEW'")
		}
	} else {
		if n.sec.syncTotal > 0 {
			st.Resync = &ResyncStatus{Kind: "incoming", Total: n.sec.syncTotal}
		}
		if n.sec.srv != nil {
			st.Replication = serverStatus(n.sec.srv, repl.Export)
			st.Replication.Address = n.cfg.ListenPeer
		}
	}
	st.Failover = n.failoverStatus()
	if f := st.Failover; f.Mode != "manual" && f.Error != "" {
		st.Problems = append(st.Problems, "the witness (etcd) does not answer: "+f.Error+
			" (a primary with its peer in sync goes on; nobody is promoted automatically until it answers)")
	}
	if st.Failover.Fenced {
		st.Problems = append(st.Problems, "this node demoted itself for fencing (its lease in the witness ended with no peer in sync): "+
			"what it alone holds was never acknowledged; it is discarded when the node meets the new primary, which resyncs it")
	}
	if n.suspended != "" {
		st.Suspended = n.suspended
		st.Problems = append(st.Problems, n.suspended)
	}
	if n.verify != nil {
		v := *n.verify
		st.Verify = &v
	}
	if n.rebuild != nil {
		r := *n.rebuild
		st.Rebuild = &r
	}
	if rp := n.rebuildPoint(); rp != nil {
		st.RebuildPoint = rp
		if n.prim != nil && n.prim.local.State() == mirror.Resyncing && n.rebuild == nil {
			st.Problems = append(st.Problems, fmt.Sprintf("this node's copy is being rebuilt (member %d, from %s) from the peer, which is not connected: no I/O is served until it is",
				rp.Member, humanize.IBytes(uint64(rp.Cursor))))
		}
	}
	switch {
	case allFailed && unrecorded != 0:
		st.Problems = append(st.Problems, fmt.Sprintf("every member disk failed, %#x with no disk left to record it: "+
			"replace them ('netraid disk replace OLD NEW'), or restart the daemon once they work again to use them as they are", sb.FailedMembers|unrecorded))
	case sb.FailedMembers != 0:
		st.Problems = append(st.Problems, fmt.Sprintf("failed member disk(s) %#x: replace with 'netraid disk replace OLD NEW'", sb.FailedMembers))
	}
	return st
}

func legState(s mirror.LegState) string {
	switch s {
	case mirror.InSync:
		return "up-to-date"
	case mirror.Resyncing:
		return "resyncing"
	case mirror.Failed:
		return "failed"
	}
	return s.String()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// failoverStatus says how this node fails over. Callers hold n.mu.
func (n *Node) failoverStatus() *FailoverStatus {
	f := n.fence
	if f == nil {
		return &FailoverStatus{Mode: "manual"}
	}
	v := f.view
	fs := &FailoverStatus{
		Mode: "etcd", Endpoints: n.cfg.Etcd, Node: n.cfg.Name, PeerName: n.cfg.PeerName,
		Holder: v.holder.Node, HolderToken: v.holder.Token, LeaseTTL: f.w.TTL().Seconds(),
		Waiting: f.why, Error: v.err,
	}
	if !v.at.IsZero() {
		fs.Checked = v.at.UTC().Format(time.RFC3339)
	}
	if f.lead != nil {
		fs.Token = f.lead.Token
		if v.lease == f.lead { // not a look from before it was won
			fs.LeaseLeft = v.leaseLeft.Seconds()
		}
	}
	fs.Fenced = n.sb.Flags&meta.FlagFenced != 0
	if !f.fencedAt.IsZero() {
		fs.LastFenced = f.fencedAt.UTC().Format(time.RFC3339Nano)
	}
	for _, r := range []*witness.Record{v.own, v.peer} {
		if r != nil {
			fs.Outdated = append(fs.Outdated, OutdatedRecord{Node: r.Node, Generation: fmt.Sprintf("%016X", r.Generation),
				By: r.By, Token: r.Token, Time: r.Time.Format(time.RFC3339)})
		}
	}
	if !f.lastFailover.IsZero() {
		fs.LastFailover = f.lastFailover.UTC().Format(time.RFC3339)
		fs.FailoverSeconds = f.took.Seconds()
	}
	return fs
}

func bitmapStatus(bs resync.BitmapStats) BitmapStatus {
	return BitmapStatus{Writes: bs.Commits, WriteErrors: bs.Errors, Marks: bs.Marks, FastMarks: bs.FastMarks}
}

// serverStatus is what an NBD server's export name took: the volume's
// export on a primary, the replication link's on a secondary.
func serverStatus(srv *nbd.Server, name string) *ExportStatus {
	ss := srv.Stats()
	return &ExportStatus{
		Name: name, Clients: srv.Clients(name),
		Requests: ss.Requests, BytesRead: ss.BytesRead, BytesWritten: ss.BytesWritten, Errors: ss.Errors,
		Commands: ss.Commands, ErrorReplies: ss.Errnos, InFlight: ss.InFlight, InFlightBytes: ss.InFlightBytes,
		Connections: ss.Connections, TotalConnections: ss.TotalConnections, BufferBytes: ss.BufferBytes, BufferWaits: ss.BufferWaits,
		RefusedByCap: ss.Refused, TLSRefused: ss.TLSRefused, FailedHandshakes: ss.FailedHandshakes,
	}
}
