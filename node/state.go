package node

import (
	"fmt"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/repl"
)

// The node's states are types: the role and the disk state are the
// superblock's (meta.Role, meta.DiskState), the generations and the
// meeting's verdict the replication protocol's (repl), and the link's
// PeerState is here.
type (
	Gens         = repl.Gens
	Verdict      = repl.Verdict
	RebuildPoint = repl.RebuildPoint
)

// PeerState is what a node knows of its replication link.
type PeerState uint8

const (
	// PeerStandalone: the node has no peer, or the last meeting was
	// refused (split brain, another volume…): no link until an operator
	// acts.
	PeerStandalone PeerState = iota
	// PeerWaiting: a secondary waiting for its primary to connect.
	PeerWaiting
	// PeerConnecting: a primary dialing its secondary.
	PeerConnecting
	// PeerConnected: the link is established.
	PeerConnected
	// PeerDisconnected: the operator took the link down.
	PeerDisconnected
)

var peerStateNames = [...]string{"standalone", "waiting", "connecting", "connected", "disconnected"}

func (s PeerState) String() string {
	if int(s) < len(peerStateNames) {
		return peerStateNames[s]
	}
	return fmt.Sprintf("peer-state(%d)", uint8(s))
}

// MarshalText formats s as String does.
func (s PeerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses what MarshalText produces.
func (s *PeerState) UnmarshalText(b []byte) error {
	for i, n := range peerStateNames {
		if n == string(b) {
			*s = PeerState(i)
			return nil
		}
	}
	return fmt.Errorf("node: unknown peer state %q", b)
}

// role names a meta.Role for messages.
func role(primary bool) meta.Role {
	if primary {
		return meta.Primary
	}
	return meta.Secondary
}
