package node

import (
	"fmt"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/netraid/netraid/mirror"
)

// Status reports the node's state for the control API.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	sb := n.sb
	st := Status{
		Volume: sb.Name, Version: n.cfg.Version, SetUUID: sb.SetUUID.String(), Size: n.size,
		Chunk: int64(sb.Chunk), Region: int64(sb.RegionSize),
		Role: "secondary", DiskState: sb.DiskState.String(), Gens: n.gens(),
		OutOfSync: n.bm.DirtyBytes(),
		Uptime:    time.Since(n.started).Seconds(), Time: time.Now().UTC(),
	}
	for _, m := range n.vol.Members() {
		state := "active"
		if m.Failed {
			state = "failed"
		}
		st.Members = append(st.Members, MemberStatus{Index: m.Index, Path: m.Path, Size: m.Size, State: state})
	}
	if !n.cfg.standalone() {
		ps := &PeerStatus{Address: n.cfg.Peer, Listen: n.cfg.ListenPeer, TLS: n.cfg.TLSDir != "", State: n.peer.state, LastError: n.peer.lastErr}
		if n.prim == nil && ps.State == "connected" && !n.primaryConnected() {
			// The primary's link ended since it met this node.
			ps.State = "waiting"
		}
		if !n.peer.since.IsZero() {
			ps.Since = n.peer.since.UTC().Format(time.RFC3339)
		}
		if n.peer.met {
			ps.Verdict = n.peer.verdict.String()
		}
		if h := n.peer.hello; h != nil {
			ps.Role, ps.DiskState = h.Role, h.DiskState
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
		ss := p.srv.Stats()
		st.Export = &ExportStatus{
			Address: p.addr, Name: p.export, ReadOnly: n.cfg.ReadOnly, Clients: p.srv.Clients(p.export),
			Requests: ss.Requests, BytesRead: ss.BytesRead, BytesWritten: ss.BytesWritten, Errors: ss.Errors,
			TLS: n.exportTLSMode(), RefusedByCap: ss.Refused, TLSRefused: ss.TLSRefused, FailedHandshakes: ss.FailedHandshakes,
		}
		if p.ra != nil {
			rs := p.ra.Stats()
			st.Export.Readahead = &ReadaheadStatus{Window: n.cfg.Readahead, Hits: rs.Hits, Misses: rs.Misses, ReadAhead: rs.ReadAhead}
		}
		for _, l := range p.mir.Legs() {
			ls := l.Stats()
			st.Legs = append(st.Legs, LegStatus{Name: l.Name(), State: legState(l.State()), Error: errText(l.Err()), Reads: ls.Reads, Writes: ls.Writes, Resynced: ls.SyncBytes})
		}
		p.mu.Lock()
		if p.sync != nil {
			st.Resync = p.sync.status()
		}
		p.mu.Unlock()
		if p.local.State() == mirror.Failed {
			st.Problems = append(st.Problems, "the local disks failed; the volume is served through the peer: replace the failed disk with 'netraid disk replace OLD NEW'")
		}
	} else if n.sec.syncTotal > 0 {
		st.Resync = &ResyncStatus{Kind: "incoming", Total: n.sec.syncTotal}
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
	if sb.FailedMembers != 0 {
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
