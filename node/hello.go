package node

import (
	"encoding/json"
	"fmt"
)

// The replication link is NBD with two netraid extensions (package nbd):
// a hello option that carries a Hello each way before the export is
// opened, and a control command that carries a Message from the primary
// to the secondary while the link is up.

// Hello introduces one node to the other when the primary connects.
type Hello struct {
	Name      string `json:"name"`
	SetUUID   string `json:"set_uuid"`
	Size      int64  `json:"size"`
	Region    int64  `json:"region"`
	Role      string `json:"role"`
	DiskState string `json:"disk_state"`
	Gens      Gens   `json:"generations"`
	// Verdict is the secondary's reading of the meeting, in its answer.
	Verdict string `json:"verdict,omitempty"`
	// Discard: the secondary's operator said to discard its changes.
	Discard bool `json:"discard,omitempty"`
	// NeedFull: the secondary's copy must be synced in full (a member
	// was replaced), whatever the generations say.
	NeedFull bool `json:"need_full,omitempty"`
	// Rebuild, with NeedFull, says that the full sync is owed to one
	// replaced member, rebuilt from its cursor on: the primary may copy
	// that share and the dirty regions instead.
	Rebuild *RebuildPoint `json:"rebuild,omitempty"`
	// Dirty is the secondary's dirty bitmap, in its answer: regions it
	// may have written that the primary must copy to it again.
	Dirty []byte `json:"dirty,omitempty"`
}

// Message kinds the primary sends the secondary over the control command.
const (
	// MsgSyncStart: a resync towards the secondary begins; its copy is
	// inconsistent until MsgSyncDone.
	MsgSyncStart = "sync-start"
	// MsgSyncDone: the secondary now holds what the primary holds.
	MsgSyncDone = "sync-done"
	// MsgPing checks the link and carries the primary's state.
	MsgPing = "ping"
	// MsgRebuildCursor: the rebuild of the secondary's member has been
	// copied and flushed up to Rebuild.Cursor.
	MsgRebuildCursor = "rebuild-cursor"
)

// Message is a control message on the replication link.
type Message struct {
	Kind string `json:"kind"`
	Gens Gens   `json:"generations"`
	// Total is the size of the resync that starts, for the secondary's
	// status.
	Total int64 `json:"total,omitempty"`
	// Rebuild is where a rebuild of the secondary's member stands.
	Rebuild *RebuildPoint `json:"rebuild,omitempty"`
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("node: encode %T: %v", v, err))
	}
	return b
}

func decodeHello(b []byte) (Hello, error) {
	var h Hello
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("node: bad hello from peer: %w", err)
	}
	return h, nil
}

// peerExport is the export name of the replication link on a secondary;
// which volume it holds is checked in the hello.
const peerExport = "netraid-peer"
