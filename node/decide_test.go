package node

import (
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/repl"
)

func TestDecidePromote(t *testing.T) {
	g := Gens{Current: 0x11}
	rb := &RebuildPoint{Member: 1, Cursor: 4 << 20}
	tests := []struct {
		name string
		in   promoteIn
		// refuse is a word the refusal must hold, "" to accept.
		refuse     string
		rebuilding bool
		diverge    bool
		setAllUsed bool
		dirtyAll   bool
		disk       meta.DiskState
		clear      bool
	}{
		{name: "up to date", in: promoteIn{Disk: meta.UpToDate, Gens: g}, diverge: true, disk: meta.UpToDate},
		{name: "just created", in: promoteIn{Disk: meta.JustCreated}, diverge: true, disk: meta.UpToDate},
		{name: "a primary's link is open", in: promoteIn{Disk: meta.UpToDate, Gens: g, Link: inboundLink{Live: true, Heard: time.Second}},
			refuse: "demote it there first"},
		{name: "a primary's link is open, forced", in: promoteIn{Force: true, Disk: meta.UpToDate, Gens: g, Link: inboundLink{Live: true}},
			refuse: "connected"},
		{name: "inconsistent", in: promoteIn{Disk: meta.Inconsistent, Gens: g}, refuse: "inconsistent"},
		{name: "outdated", in: promoteIn{Disk: meta.Outdated, Gens: g}, refuse: "outdated"},
		{name: "failed", in: promoteIn{Disk: meta.Failed, Gens: g}, refuse: "failed"},
		{name: "inconsistent, forced", in: promoteIn{Force: true, Disk: meta.Inconsistent, Gens: g, Rebuild: rb},
			diverge: true, dirtyAll: true, disk: meta.UpToDate, clear: true},
		{name: "failed, forced", in: promoteIn{Force: true, Disk: meta.Failed, Gens: g},
			diverge: true, dirtyAll: true, disk: meta.UpToDate, clear: true},
		{name: "up to date, forced", in: promoteIn{Force: true, Disk: meta.UpToDate, Gens: g}, diverge: true, disk: meta.UpToDate},
		{name: "rebuilding", in: promoteIn{Disk: meta.Inconsistent, Gens: g, Rebuild: rb}, rebuilding: true, disk: meta.Inconsistent},
		{name: "rebuilding, standalone", in: promoteIn{Standalone: true, Disk: meta.Inconsistent, Gens: g, Rebuild: rb}, refuse: "inconsistent"},
		{name: "failed members", in: promoteIn{Disk: meta.UpToDate, Gens: g, Failed: 2}, refuse: "0x2"},
		{name: "was a secondary", in: promoteIn{Disk: meta.UpToDate, Gens: g, Flags: meta.FlagUsedIncomplete},
			diverge: true, setAllUsed: true, disk: meta.UpToDate},
		{name: "the peer holds newer data", in: promoteIn{Disk: meta.UpToDate, Gens: g, Peer: &repl.Hello{Gens: Gens{Current: 0x22, History: [4]uint64{0x11}}}},
			refuse: "the peer holds newer data"},
		{name: "the peer holds newer data, forced", in: promoteIn{Force: true, Disk: meta.UpToDate, Gens: g, Peer: &repl.Hello{Gens: Gens{Current: 0x22, History: [4]uint64{0x11}}}},
			diverge: true, disk: meta.UpToDate},
		{name: "the peer diverged from this copy", in: promoteIn{Disk: meta.UpToDate, Gens: g, Peer: &repl.Hello{Gens: Gens{Current: 0x22, Bitmap: 0x11}}},
			refuse: "the peer holds newer data"},
		{name: "the peer is primary", in: promoteIn{Disk: meta.UpToDate, Gens: g, Peer: &repl.Hello{Role: meta.Primary, Gens: Gens{Current: 0x22, Bitmap: 0x11}}},
			refuse: "demote it there first"},
		{name: "rebuilding, the peer holds newer data", in: promoteIn{Disk: meta.Inconsistent, Gens: g, Rebuild: rb, Peer: &repl.Hello{Gens: Gens{Current: 0x22, Bitmap: 0x11}}},
			rebuilding: true, disk: meta.Inconsistent},
		{name: "the peer holds the same data", in: promoteIn{Disk: meta.UpToDate, Gens: g, Peer: &repl.Hello{Gens: g}}, diverge: true, disk: meta.UpToDate},
		{name: "the peer is older", in: promoteIn{Disk: meta.UpToDate, Gens: Gens{Current: 0x22, History: [4]uint64{0x11}}, Peer: &repl.Hello{Gens: g}},
			diverge: true, disk: meta.UpToDate},
		{name: "the peer split off", in: promoteIn{Disk: meta.UpToDate, Gens: Gens{Current: 0x33, Bitmap: 0x11}, Peer: &repl.Hello{Gens: Gens{Current: 0x22, Bitmap: 0x11}}},
			diverge: true, disk: meta.UpToDate},
		{name: "standalone keeps its generation", in: promoteIn{Standalone: true, Disk: meta.UpToDate, Gens: g}, disk: meta.UpToDate},
		{name: "standalone, new volume", in: promoteIn{Standalone: true, Disk: meta.JustCreated}, diverge: true, disk: meta.UpToDate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decidePromote(tt.in)
			if tt.refuse != "" {
				if p.Refuse == nil || !strings.Contains(p.Refuse.Error(), tt.refuse) {
					t.Fatalf("refusal %v, want one saying %q", p.Refuse, tt.refuse)
				}
				return
			}
			if p.Refuse != nil {
				t.Fatalf("refused: %v", p.Refuse)
			}
			if p.Rebuilding != tt.rebuilding || p.Diverge != tt.diverge || p.SetAllUsed != tt.setAllUsed || p.DirtyAll != tt.dirtyAll || p.Disk != tt.disk || p.ClearRebuild != tt.clear {
				t.Fatalf("plan %+v; want rebuilding %v diverge %v setAllUsed %v dirtyAll %v disk %v clear %v",
					p, tt.rebuilding, tt.diverge, tt.setAllUsed, tt.dirtyAll, tt.disk, tt.clear)
			}
		})
	}
}

func TestDecideHello(t *testing.T) {
	const g1, g2, g3 = 0x11, 0x22, 0x33
	own := helloIn{Name: "vol", Size: 1 << 30, Gens: Gens{Current: g1}}
	peer := func(gens Gens) repl.Hello {
		return repl.Hello{Name: "vol", Size: 1 << 30, Role: meta.Primary, Gens: gens}
	}
	tests := []struct {
		name    string
		in      func(helloIn) helloIn
		verdict Verdict
		refuse  string
	}{
		{"same generation", func(in helloIn) helloIn { in.Peer = peer(Gens{Current: g1}); return in }, repl.NoSync, ""},
		{"primary went on alone", func(in helloIn) helloIn { in.Peer = peer(Gens{Current: g2, Bitmap: g1}); return in }, repl.BitmapSync, ""},
		{"this node is primary", func(in helloIn) helloIn {
			in.Primary, in.Peer = true, peer(Gens{Current: g1})
			return in
		}, repl.SplitBrain, "both nodes are primary"},
		{"disconnected", func(in helloIn) helloIn { in.Disconnected, in.Peer = true, peer(Gens{Current: g1}); return in }, repl.NoVerdict, "netraid connect"},
		{"failed members", func(in helloIn) helloIn { in.Failed, in.Peer = 1, peer(Gens{Current: g1}); return in }, repl.NoVerdict, "disk replace"},
		{"another volume", func(in helloIn) helloIn {
			in.Peer = peer(Gens{Current: g1})
			in.Peer.Name = "other"
			return in
		}, repl.Unrelated, "another volume"},
		{"smaller", func(in helloIn) helloIn { in.Peer = peer(Gens{Current: g1}); in.Peer.Size = 2 << 30; return in }, repl.NoVerdict, "smaller"},
		{"split brain", func(in helloIn) helloIn {
			in.Gens = Gens{Current: g3, Bitmap: g1}
			in.Peer = peer(Gens{Current: g2, Bitmap: g1})
			return in
		}, repl.SplitBrain, "discard-local"},
		{"split brain, discard", func(in helloIn) helloIn {
			in.Gens, in.Discard = Gens{Current: g3, Bitmap: g1}, true
			in.Peer = peer(Gens{Current: g2, Bitmap: g1})
			return in
		}, repl.BitmapSync, ""},
		{"target newer", func(in helloIn) helloIn {
			in.Gens = Gens{Current: g2, Bitmap: g1}
			in.Peer = peer(Gens{Current: g1})
			return in
		}, repl.TargetNewer, "newer"},
		{"unrelated", func(in helloIn) helloIn { in.Peer = peer(Gens{Current: g2}); return in }, repl.Unrelated, "no history"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := decideHello(tt.in(own))
			if out.Verdict != tt.verdict {
				t.Errorf("verdict %v, want %v", out.Verdict, tt.verdict)
			}
			switch {
			case tt.refuse == "" && out.Refuse != nil:
				t.Errorf("refused: %v", out.Refuse)
			case tt.refuse != "" && (out.Refuse == nil || !strings.Contains(out.Refuse.Error(), tt.refuse)):
				t.Errorf("refusal %v, want one saying %q", out.Refuse, tt.refuse)
			}
		})
	}
}

func TestDecidePeerLost(t *testing.T) {
	for _, tt := range []struct {
		stopping, localUsable bool
		want                  peerLost
	}{
		{false, true, peerLostDiverge},
		{false, false, peerLostHold},
		{true, true, peerLostNothing},
		{true, false, peerLostNothing},
	} {
		if got := decidePeerLost(tt.stopping, tt.localUsable); got != tt.want {
			t.Errorf("decidePeerLost(stopping %v, local usable %v) = %v, want %v", tt.stopping, tt.localUsable, got, tt.want)
		}
	}
}

func TestDecideSyncStart(t *testing.T) {
	const g1, g2 = 0x11, 0x22
	same := Gens{Current: g1}
	tests := []struct {
		name   string
		in     syncStartIn
		refuse error
		record bool
		disk   meta.DiskState
		gens   Gens
	}{
		{"nothing to copy", syncStartIn{Established: true, Disk: meta.UpToDate, Gens: same,
			Msg: repl.Message{Gens: same, Verdict: repl.NoSync}}, nil, false, meta.UpToDate, same},
		{"dirty regions to copy", syncStartIn{Established: true, Disk: meta.UpToDate, Gens: same,
			Msg: repl.Message{Gens: same, Verdict: repl.NoSync, Total: 1 << 20}}, nil, true, meta.Inconsistent, same},
		{"bitmap resync", syncStartIn{Established: true, Disk: meta.UpToDate, Gens: same,
			Msg: repl.Message{Gens: Gens{Current: g2, Bitmap: g1}, Verdict: repl.BitmapSync, Total: 1 << 20}},
			nil, true, meta.Inconsistent, same},
		{"the secondary is not up to date", syncStartIn{Established: true, Disk: meta.Outdated, Gens: same,
			Msg: repl.Message{Gens: same, Verdict: repl.NoSync}}, nil, true, meta.Inconsistent, same},
		{"the bitmap generation becomes the target's", syncStartIn{Established: true, Disk: meta.UpToDate, Gens: Gens{Current: g2},
			Msg: repl.Message{Gens: Gens{Current: 0x33, Bitmap: g1}, Verdict: repl.FullSync, Total: 1 << 20}},
			nil, true, meta.Inconsistent, Gens{Current: g1, History: [4]uint64{g2}}},
		{"not the link", syncStartIn{Disk: meta.UpToDate, Gens: same, Msg: repl.Message{Gens: same, Verdict: repl.NoSync}},
			errNotLink, false, 0, Gens{}},
		{"this node is primary", syncStartIn{Primary: true, Established: true, Disk: meta.UpToDate, Gens: same,
			Msg: repl.Message{Gens: same, Verdict: repl.NoSync}}, errNotSecondary, false, 0, Gens{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := decideSyncStart(tt.in)
			if out.Refuse != tt.refuse {
				t.Fatalf("refusal %v, want %v", out.Refuse, tt.refuse)
			}
			if tt.refuse != nil {
				return
			}
			if out.Record != tt.record || out.Disk != tt.disk || out.Gens != tt.gens {
				t.Fatalf("got record %v disk %v gens %+v; want %v %v %+v", out.Record, out.Disk, out.Gens, tt.record, tt.disk, tt.gens)
			}
		})
	}
}

func TestDecideSyncDone(t *testing.T) {
	src := Gens{Current: 0x22, Bitmap: 0x11}
	if out := decideSyncDone(true, true, Gens{}, src); out.Refuse != errNotSecondary {
		t.Fatalf("on a primary: %v", out.Refuse)
	}
	if out := decideSyncDone(false, false, Gens{}, src); out.Refuse != errNotLink {
		t.Fatalf("off the link: %v", out.Refuse)
	}
	out := decideSyncDone(false, true, Gens{Current: 0x11}, src)
	if out.Refuse != nil || out.Gens.Current != src.Current || out.Gens.History[0] != src.Bitmap {
		t.Fatalf("done: %+v", out)
	}
}

func TestPeerStateText(t *testing.T) {
	for s := PeerStandalone; s <= PeerDisconnected; s++ {
		b, _ := s.MarshalText()
		var back PeerState
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%v: round trip gave %v, %v", s, back, err)
		}
	}
	var s PeerState
	if err := s.UnmarshalText([]byte("connecting-ish")); err == nil {
		t.Error("an unknown state parsed")
	}
}
