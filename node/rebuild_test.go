package node

import (
	"testing"

	"github.com/netraid/netraid/meta"
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
		h    Hello
		want bool
	}{
		{"same generation", NoSync, Hello{NeedFull: true, Rebuild: at(1, 8<<20)}, true},
		{"bitmap resync", BitmapSync, Hello{NeedFull: true, Rebuild: at(0, 0)}, true},
		{"cursor at the end", NoSync, Hello{NeedFull: true, Rebuild: at(1, size)}, true},
		{"full sync by generations", FullSync, Hello{NeedFull: true, Rebuild: at(1, 8<<20)}, false},
		{"discard", BitmapSync, Hello{NeedFull: true, Discard: true, Rebuild: at(1, 0)}, false},
		{"no point", NoSync, Hello{NeedFull: true}, false},
		{"point without need", NoSync, Hello{Rebuild: at(1, 0)}, false},
		{"member out of range", NoSync, Hello{NeedFull: true, Rebuild: at(2, 0)}, false},
		{"negative member", NoSync, Hello{NeedFull: true, Rebuild: at(-1, 0)}, false},
		{"cursor off a region", NoSync, Hello{NeedFull: true, Rebuild: at(1, region+512)}, false},
		{"cursor past the end", NoSync, Hello{NeedFull: true, Rebuild: at(1, size+region)}, false},
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
	up := meta.UpToDate.String()
	tests := []struct {
		name string
		v    Verdict
		h    Hello
		ok   bool
	}{
		{"same generation, up to date", NoSync, Hello{DiskState: up}, true},
		{"bitmap resync owed to the peer", BitmapSync, Hello{DiskState: up}, false},
		{"full sync", FullSync, Hello{DiskState: up}, false},
		{"peer inconsistent", NoSync, Hello{DiskState: meta.Inconsistent.String()}, false},
		{"peer outdated", NoSync, Hello{DiskState: meta.Outdated.String()}, false},
		{"peer waits for a full sync", NoSync, Hello{DiskState: up, NeedFull: true}, false},
		{"peer discards", NoSync, Hello{DiskState: up, Discard: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRebuildSource(rp, tt.v, tt.h)
			if (err == nil) != tt.ok {
				t.Fatalf("checkRebuildSource(%v, %+v) = %v, want accepted: %v", tt.v, tt.h, err, tt.ok)
			}
		})
	}
}
