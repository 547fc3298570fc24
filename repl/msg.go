package repl

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Errors of the protocol. Callers test with errors.Is.
var (
	// ErrProtocol: a message that does not parse, or is not allowed
	// where it came.
	ErrProtocol = errors.New("repl: protocol error")
	// ErrVersion: the peer speaks another version of the protocol.
	ErrVersion = errors.New("repl: protocol version mismatch")
)

// MsgKind names a control message. The primary sends them to its
// secondary over the established link; the secondary answers each with
// its Hello as it stands after the message.
type MsgKind string

// Message kinds.
const (
	// MsgSyncStart: the primary is about to attach the secondary as a
	// leg and copy it what it lacks (Total bytes, from the generations
	// Gens). Before it answers, the secondary records durably that its
	// copy is inconsistent (unless Total is 0 and the generations are the
	// same); it takes no write of the link before this message.
	MsgSyncStart MsgKind = "sync-start"
	// MsgSyncDone: the secondary now holds what the primary holds (Gens).
	MsgSyncDone MsgKind = "sync-done"
	// MsgPing checks the link.
	MsgPing MsgKind = "ping"
	// MsgRebuildCursor: the rebuild of the secondary's member has been
	// copied and flushed up to Rebuild.Cursor.
	MsgRebuildCursor MsgKind = "rebuild-cursor"
	// MsgDiskless: the primary's disks failed and it could record that
	// on none of them; from now on the secondary holds the only copy of
	// what the primary writes. The secondary records Gens (a new current
	// generation, the old one in history) before it answers, so that the
	// primary's old disks, should they come back, meet it as an older
	// copy rather than as its equal.
	MsgDiskless MsgKind = "diskless"
)

func (k MsgKind) valid() bool {
	switch k {
	case MsgSyncStart, MsgSyncDone, MsgPing, MsgRebuildCursor, MsgDiskless:
		return true
	}
	return false
}

// Message is a control message on the replication link.
type Message struct {
	Kind MsgKind `json:"kind"`
	// Gens are the primary's generations.
	Gens Gens `json:"generations"`
	// Total is the size of the resync that starts.
	Total int64 `json:"total,omitempty"`
	// Verdict is the meeting's verdict, with MsgSyncStart.
	Verdict Verdict `json:"verdict,omitempty"`
	// Rebuild is where a rebuild of the secondary's member stands.
	Rebuild *RebuildPoint `json:"rebuild,omitempty"`
}

// Control payloads start with a byte that says what they carry.
const (
	opMessage  byte = '{' // a JSON Message
	opChecksum byte = 'C' // a checksum request: 64-bit offset and length
)

// MarshalMessage encodes a control message.
func MarshalMessage(m Message) []byte { return mustJSON(m) }

// UnmarshalMessage decodes a control message and checks its kind.
func UnmarshalMessage(b []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: bad control message: %v", ErrProtocol, err)
	}
	if !m.Kind.valid() {
		return m, fmt.Errorf("%w: unknown control message %q", ErrProtocol, m.Kind)
	}
	if m.Kind == MsgRebuildCursor && m.Rebuild == nil {
		return m, fmt.Errorf("%w: rebuild cursor message without a cursor", ErrProtocol)
	}
	return m, nil
}

const checksumRequestSize = 17

func marshalChecksum(off, n int64) []byte {
	b := make([]byte, checksumRequestSize)
	b[0] = opChecksum
	binary.BigEndian.PutUint64(b[1:], uint64(off))
	binary.BigEndian.PutUint64(b[9:], uint64(n))
	return b
}

func unmarshalChecksum(b []byte) (off, n int64, err error) {
	if len(b) != checksumRequestSize || b[0] != opChecksum {
		return 0, 0, fmt.Errorf("%w: checksum request of %d bytes", ErrProtocol, len(b))
	}
	off = int64(binary.BigEndian.Uint64(b[1:]))
	n = int64(binary.BigEndian.Uint64(b[9:]))
	if off < 0 || n < 0 {
		return 0, 0, fmt.Errorf("%w: checksum request for a negative range", ErrProtocol)
	}
	return off, n, nil
}
