package repl

import (
	"encoding/json"
	"fmt"

	"github.com/netraid/netraid/meta"
)

// Proto is the version of the replication protocol this build speaks. A
// hello of another version is refused: both nodes of a pair run builds
// that speak the same one (status says which each runs).
const Proto = 2

// Hello introduces one node to the other when the primary connects: the
// primary's in its request, the secondary's in its answer (and in the
// answer to every control message, as its state now).
type Hello struct {
	// Proto is the sender's protocol version; Software its build.
	Proto    int    `json:"proto"`
	Software string `json:"software,omitempty"`
	// Node names the sender (the node name of its certificate, or the
	// name bound to the shared secret); Peer, the node it means to meet.
	Node string `json:"node,omitempty"`
	Peer string `json:"peer,omitempty"`
	// Token is the sender's fencing token: the revision at which it won
	// its volume's election, 0 without one. A node that has seen a
	// newer token refuses a primary with an older one.
	Token int64 `json:"token,omitempty"`
	// Boot is drawn at random at each start of the sender's daemon: a
	// peer back on the link with the same Boot did not restart, so it
	// lost nothing it had written, even what it had not yet flushed.
	Boot string `json:"boot,omitempty"`

	// The volume as the sender holds it.
	Name      string         `json:"name"`
	SetUUID   string         `json:"set_uuid"`
	Size      int64          `json:"size"`
	Region    int64          `json:"region"`
	Role      meta.Role      `json:"role"`
	DiskState meta.DiskState `json:"disk_state"`
	Gens      Gens           `json:"generations"`
	// OutOfSync is the sender's dirty bytes (the primary's: what it may
	// have to copy).
	OutOfSync int64 `json:"out_of_sync,omitempty"`

	// In the secondary's answer:
	//
	// Verdict is its reading of the meeting.
	Verdict Verdict `json:"verdict,omitempty"`
	// Discard: its operator said to discard its changes.
	Discard bool `json:"discard,omitempty"`
	// NeedFull: its copy must be synced in full (a member was
	// replaced), whatever the generations say; Rebuild, with it, that the
	// full sync is owed to one replaced member, rebuilt from its cursor
	// on: the primary may copy that share and the dirty regions instead.
	NeedFull bool          `json:"need_full,omitempty"`
	Rebuild  *RebuildPoint `json:"rebuild,omitempty"`
	// Dirty is its dirty bitmap: regions it may have written that the
	// primary must copy to it again.
	Dirty []byte `json:"dirty,omitempty"`
}

// RebuildPoint is where a one-member rebuild stands: the member being
// rebuilt and the volume offset of the first region whose share of it
// may still be missing.
type RebuildPoint struct {
	Member int   `json:"member"`
	Cursor int64 `json:"cursor"`
}

// MaxHello bounds an encoded hello (the NBD option that carries it is
// limited too).
const MaxHello = 60 << 10

// MarshalHello encodes a hello for the wire.
func MarshalHello(h Hello) []byte { return mustJSON(h) }

// UnmarshalHello decodes a hello and checks its protocol version.
func UnmarshalHello(b []byte) (Hello, error) {
	var h Hello
	if len(b) > MaxHello {
		return h, fmt.Errorf("%w: hello of %d bytes, at most %d", ErrProtocol, len(b), MaxHello)
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%w: bad hello: %v", ErrProtocol, err)
	}
	if h.Proto != Proto {
		return h, fmt.Errorf("%w: the peer speaks replication protocol %d, this node %d: run the same netraid version on both nodes (this peer runs %q)",
			ErrVersion, h.Proto, Proto, h.Software)
	}
	return h, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("repl: encode %T: %v", v, err))
	}
	return b
}
