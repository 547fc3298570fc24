package node

import (
	"testing"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/repl"
)

// TestPeerRebuildDecision: a primary rebuilds a secondary's member from
// its cursor instead of a full sync only when the secondary asks for it
// with a point that fits the volume, discards nothing, and the
// generations call for no more than a bitmap resync in that direction.
func TestPeerRebuildDecision(t *testing.T) {
	const region, size = 4 << 20, 64 << 20
	n := &Node{sb: meta.Superblock{Members: 2, RegionSize: region, VolumeSize: size}}
	at := func(m int, c int64) *RebuildPoint { return &RebuildPoint{Member: m, Cursor: c} }
	tests := []struct {
		name string
		v    Verdict
		h    repl.Hello
		want bool
	}{
		{"same generation", repl.NoSync, repl.Hello{NeedFull: true, Rebuild: at(1, 8<<20)}, true},
		{"bitmap resync", repl.BitmapSync, repl.Hello{NeedFull: true, Rebuild: at(0, 0)}, true},
		{"cursor at the end", repl.NoSync, repl.Hello{NeedFull: true, Rebuild: at(1, size)}, true},
		{"full sync by generations", repl.FullSync, repl.Hello{NeedFull: true, Rebuild: at(1, 8<<20)}, false},
		{"discard", repl.BitmapSync, repl.Hello{NeedFull: true, Discard: true, Rebuild: at(1, 0)}, false},
		{"no point", repl.NoSync, repl.Hello{NeedFull: true}, false},
		{"point without need", repl.NoSync, repl.Hello{Rebuild: at(1, 0)}, false},
		{"member out of range", repl.NoSync, repl.Hello{NeedFull: true, Rebuild: at(2, 0)}, false},
		{"negative member", repl.NoSync, repl.Hello{NeedFull: true, Rebuild: at(-1, 0)}, false},
		{"cursor off a region", repl.NoSync, repl.Hello{NeedFull: true, Rebuild: at(1, region+512)}, false},
		{"cursor past the end", repl.NoSync, repl.Hello{NeedFull: true, Rebuild: at(1, size+region)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := n.peerRebuild(tt.v, tt.h)
			if (got != nil) != tt.want {
				t.Fatalf("peerRebuild(%v, %+v) = %+v, want a rebuild: %v", tt.v, tt.h, got, tt.want)
			}
			if got != nil && *got != *tt.h.Rebuild {
				t.Fatalf("peerRebuild gave %+v, want the secondary's point %+v", *got, *tt.h.Rebuild)
			}
		})
	}
}

// TestRebuildSourceCheck: a primary whose own copy is being rebuilt takes
// the peer as its source only if they are the same generation and the
// peer is up to date with nothing owed to it or discarded.
func TestRebuildSourceCheck(t *testing.T) {
	rp := &RebuildPoint{Member: 1, Cursor: 8 << 20}
	up := meta.UpToDate
	tests := []struct {
		name    string
		v       Verdict
		h       repl.Hello
		mayLack bool
		ok      bool
	}{
		{"same generation, up to date", repl.NoSync, repl.Hello{DiskState: up}, false, true},
		{"the peer, restarted, may lack unflushed writes it held alone", repl.NoSync, repl.Hello{DiskState: up}, true, false},
		{"bitmap resync owed to the peer", repl.BitmapSync, repl.Hello{DiskState: up}, false, false},
		{"full sync", repl.FullSync, repl.Hello{DiskState: up}, false, false},
		{"peer inconsistent", repl.NoSync, repl.Hello{DiskState: meta.Inconsistent}, false, false},
		{"peer outdated", repl.NoSync, repl.Hello{DiskState: meta.Outdated}, false, false},
		{"peer waits for a full sync", repl.NoSync, repl.Hello{DiskState: up, NeedFull: true}, false, false},
		{"peer discards", repl.NoSync, repl.Hello{DiskState: up, Discard: true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRebuildSource(rp, tt.v, tt.h, tt.mayLack)
			if (err == nil) != tt.ok {
				t.Fatalf("checkRebuildSource(%v, %+v, %v) = %v, want accepted: %v", tt.v, tt.h, tt.mayLack, err, tt.ok)
			}
		})
	}
}

// TestPeerMayLack: a peer that held, alone, writes answered since the
// last flush when its link was lost may lack them when it is back,
// unless it is the same daemon (the same boot): it did not restart.
func TestPeerMayLack(t *testing.T) {
	boot := func(s string) *string { return &s }
	tests := []struct {
		name     string
		lostFrom *string
		peerBoot string
		want     bool
	}{
		{"held nothing alone", nil, "x", false},
		{"the same daemon is back", boot("x"), "x", false},
		{"the daemon restarted", boot("x"), "y", true},
		{"a peer that does not say its boot", boot("x"), "", true},
		{"a peer that did not say it then", boot(""), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := peerMayLack(tt.lostFrom, repl.Hello{Boot: tt.peerBoot}); got != tt.want {
				t.Fatalf("peerMayLack = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDisklessSourceCheck: a primary whose disks failed takes its peer
// back as the copy it serves through only if the peer holds everything
// it answered: the same generation, up to date, nothing owed, and no
// write answered since the last flush held by the peer alone when its
// link ended.
func TestDisklessSourceCheck(t *testing.T) {
	up := meta.UpToDate
	tests := []struct {
		name    string
		v       Verdict
		h       repl.Hello
		mayLack bool
		ok      bool
	}{
		{"same generation, up to date", repl.NoSync, repl.Hello{DiskState: up}, false, true},
		{"the peer held unflushed writes alone when its link ended", repl.NoSync, repl.Hello{DiskState: up}, true, false},
		{"bitmap resync owed to the peer", repl.BitmapSync, repl.Hello{DiskState: up}, false, false},
		{"full sync", repl.FullSync, repl.Hello{DiskState: up}, false, false},
		{"peer inconsistent", repl.NoSync, repl.Hello{DiskState: meta.Inconsistent}, false, false},
		{"peer waits for a full sync", repl.NoSync, repl.Hello{DiskState: up, NeedFull: true}, false, false},
		{"peer discards", repl.NoSync, repl.Hello{DiskState: up, Discard: true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkDisklessSource(tt.v, tt.h, tt.mayLack)
			if (err == nil) != tt.ok {
				t.Fatalf("checkDisklessSource(%v, %+v, %v) = %v, want accepted: %v", tt.v, tt.h, tt.mayLack, err, tt.ok)
			}
		})
	}
}
