package node

import (
	"time"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/mirror"
	"github.com/netraid/netraid/nbd"
)

// Status is what `netraid status` shows: the volume, this node's role and
// disks, the NBD export, the peer link, each mirror leg, and any resync or
// verify under way. It is the control API's answer to GET /v1/status.
type Status struct {
	Volume    string         `json:"volume"`
	Version   string         `json:"version"` // of the daemon's binary
	SetUUID   string         `json:"set_uuid"`
	Size      int64          `json:"size"`
	Chunk     int64          `json:"chunk"`
	Region    int64          `json:"region"`
	Role      string         `json:"role"`       // primary, secondary
	DiskState string         `json:"disk_state"` // up-to-date, inconsistent, outdated, just-created
	Gens      Gens           `json:"generations"`
	Members   []MemberStatus `json:"members"`
	Export    *ExportStatus  `json:"export,omitempty"`
	// Replication is, on a secondary, what its replication port took:
	// the primary's writes and flushes, connections and refusals.
	Replication *ExportStatus `json:"replication,omitempty"`
	Bitmap      BitmapStatus  `json:"bitmap"`
	Peer        *PeerStatus   `json:"peer,omitempty"`
	Legs        []LegStatus   `json:"legs,omitempty"`
	OutOfSync   int64         `json:"out_of_sync_bytes"`
	Resync      *ResyncStatus `json:"resync,omitempty"`
	Verify      *VerifyStatus `json:"verify,omitempty"`
	Rebuild     *ResyncStatus `json:"rebuild,omitempty"`
	// RebuildPoint is the rebuild of one replaced member recorded in this
	// node's superblock: what a restart resumes from instead of a full
	// sync.
	RebuildPoint *RebuildPoint `json:"rebuild_point,omitempty"`
	// Failover is how this node fails over: manual, or automatic through
	// a witness (etcd), with what the witness says.
	Failover *FailoverStatus `json:"failover,omitempty"`
	// Suspended, when not empty, says why the node holds I/O on purpose
	// (neither answers nor fails it) and what ends that.
	Suspended string `json:"suspended,omitempty"`
	// Stale: the node was busy, and this is the last status it made.
	Stale bool `json:"stale,omitempty"`
	// Problems are conditions an operator must act on, each with what to do.
	Problems []string  `json:"problems,omitempty"`
	Uptime   float64   `json:"uptime_seconds"`
	Time     time.Time `json:"time"`
}

// MemberStatus is one local disk.
type MemberStatus struct {
	Index int    `json:"index"`
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	State string `json:"state"` // active, failed, rebuilding
}

// ExportStatus describes the NBD export while this node is primary.
type ExportStatus struct {
	Address      string `json:"address"`
	Name         string `json:"name"`
	ReadOnly     bool   `json:"read_only,omitempty"`
	Clients      int    `json:"clients"`
	Requests     int64  `json:"requests"`
	BytesRead    int64  `json:"bytes_read"`
	BytesWritten int64  `json:"bytes_written"`
	Errors       int64  `json:"errors"`
	// Commands counts the requests and their bytes by NBD command (read,
	// write, flush, trim, write-zeroes, cache, block-status,
	// netraid-control, other); ErrorReplies the error replies by error
	// value (EIO, EINVAL, ENOSPC, EPERM, ENOTSUP, ESHUTDOWN, …, other).
	Commands     map[string]nbd.CommandStats `json:"commands,omitempty"`
	ErrorReplies map[string]int64            `json:"error_replies,omitempty"`
	// InFlight is how many requests the export holds now, not yet
	// answered, and InFlightBytes the bytes they hold.
	InFlight      int64 `json:"in_flight"`
	InFlightBytes int64 `json:"in_flight_bytes"`
	// Connections are open now, in handshake or attached;
	// TotalConnections were accepted since the export started.
	Connections      int64 `json:"connections"`
	TotalConnections int64 `json:"total_connections"`
	// BufferBytes is what the requests' buffers hold of --memory-budget
	// now; BufferWaits counts requests that waited for it.
	BufferBytes int64 `json:"buffer_bytes"`
	BufferWaits int64 `json:"buffer_waits"`
	// TLS: off, offered (STARTTLS for clients that ask) or required.
	TLS string `json:"tls"`
	// Connections closed before they reached the export: by the
	// connection cap, in a TLS handshake (or for not starting TLS when it
	// is required), or by another failed handshake.
	RefusedByCap     int64 `json:"refused_by_cap"`
	TLSRefused       int64 `json:"tls_refused"`
	FailedHandshakes int64 `json:"failed_handshakes"`
	// Readahead is there when the export reads ahead of sequential readers.
	Readahead *ReadaheadStatus `json:"readahead,omitempty"`
}

// ReadaheadStatus counts how the export's reads were served.
type ReadaheadStatus struct {
	Window    int64 `json:"window"`
	Hits      int64 `json:"hits"`       // reads served from data read ahead
	Misses    int64 `json:"misses"`     // reads that went to the disks
	ReadAhead int64 `json:"read_ahead"` // bytes read ahead
}

// PeerStatus describes the replication link.
type PeerStatus struct {
	Address string `json:"address,omitempty"` // where the primary dials
	Listen  string `json:"listen,omitempty"`  // where this node accepts its primary
	TLS     bool   `json:"tls"`               // the link is mutual TLS
	// Auth is how the link is authenticated: tls, secret, or none.
	Auth string `json:"auth"`
	// Name is the peer's name, the only one this node takes.
	Name string `json:"name,omitempty"`
	// State: connected, connecting, disconnected (by the operator),
	// standalone (refused: split brain or another volume).
	State     string `json:"state"`
	Role      string `json:"role,omitempty"`
	DiskState string `json:"disk_state,omitempty"`
	Gens      *Gens  `json:"generations,omitempty"`
	Verdict   string `json:"verdict,omitempty"`
	LastError string `json:"last_error,omitempty"`
	Since     string `json:"since,omitempty"`
	// LastHeard is, on a secondary with a primary's link open, how long
	// ago the primary was last heard from, in seconds (0: no link open).
	LastHeard float64 `json:"last_heard_seconds,omitempty"`
	// Version is the peer's software version, as its hello said.
	Version string `json:"version,omitempty"`
}

// LegStatus is one leg of the mirror on the primary.
type LegStatus struct {
	Name   string `json:"name"`
	State  string `json:"state"` // up-to-date, resyncing, failed
	Error  string `json:"error,omitempty"`
	Reads  int64  `json:"reads"`
	Writes int64  `json:"writes"`
	// ReadBytes and WriteBytes are what the leg read and was written
	// (writes, FUA writes, zeroes and trims); Flushes its flushes; Errors
	// the I/O errors it returned.
	ReadBytes  int64 `json:"read_bytes"`
	WriteBytes int64 `json:"write_bytes"`
	Flushes    int64 `json:"flushes"`
	Errors     int64 `json:"errors"`
	// Resynced is what resyncs and rebuilds wrote to the leg.
	Resynced int64 `json:"resynced_bytes"`
}

// BitmapStatus counts the write-intent bitmap's metadata writes.
type BitmapStatus struct {
	// Writes are metadata writes (changed blocks written, then flushed);
	// WriteErrors the ones that failed.
	Writes      int64 `json:"writes"`
	WriteErrors int64 `json:"write_errors"`
	// Marks are writes that waited for a metadata write before going
	// out; FastMarks those whose regions were already marked on disk.
	Marks     int64 `json:"marks"`
	FastMarks int64 `json:"fast_marks"`
}

// ResyncStatus is the progress of a resync, rebuild or verify.
type ResyncStatus struct {
	Kind       string  `json:"kind,omitempty"` // bitmap, full, verify-repair, rebuild, rebuild (resumed at X)
	Done       int64   `json:"done_bytes"`
	Total      int64   `json:"total_bytes"`
	Rate       float64 `json:"rate_bytes_per_second"`
	RateLimit  int64   `json:"rate_limit_bytes_per_second"`
	ETASeconds float64 `json:"eta_seconds"`
	Paused     bool    `json:"paused"`
}

// VerifyStatus is the outcome of the last online verify.
type VerifyStatus struct {
	Running bool `json:"running"`
	// Full: the verify compares every region, not only the used ones.
	Full       bool    `json:"full"`
	Done       int64   `json:"done_bytes"`
	Total      int64   `json:"total_bytes"`
	Mismatched []int64 `json:"mismatched_regions"`
	Repaired   bool    `json:"repaired"`
	Error      string  `json:"error,omitempty"`
	Finished   string  `json:"finished,omitempty"`
	// LastFull is when the last full verify finished without error since
	// the node started (RFC 3339), this one or an earlier one.
	LastFull string `json:"last_full,omitempty"`
}

// FailoverStatus is the node's automatic failover through its witness.
type FailoverStatus struct {
	// Mode: manual (no witness: 'netraid promote' after the primary
	// dies), or etcd.
	Mode      string   `json:"mode"`
	Endpoints []string `json:"endpoints,omitempty"`
	Node      string   `json:"node,omitempty"`
	PeerName  string   `json:"peer_name,omitempty"`
	// Holder is who holds the volume's election, and HolderToken its
	// fencing token; Token is this node's while it holds it.
	Holder      string `json:"holder,omitempty"`
	HolderToken int64  `json:"holder_token,omitempty"`
	Token       int64  `json:"token,omitempty"`
	// LeaseTTL is the session's lease, in seconds, and LeaseLeft what
	// is left of it while this node holds the election, as the witness
	// last said (0 until the witness was asked since it was won).
	LeaseTTL  float64 `json:"lease_ttl_seconds,omitempty"`
	LeaseLeft float64 `json:"lease_left_seconds,omitempty"`
	// Fenced: this node demoted itself when its lease ended with no
	// in-sync peer; what it alone holds was never acknowledged, and it
	// goes when it meets the new primary.
	Fenced bool `json:"fenced,omitempty"`
	// Outdated are the witness's records of outdated copies, this node's
	// and its peer's.
	Outdated []OutdatedRecord `json:"outdated,omitempty"`
	// Waiting says why this secondary does not promote itself.
	Waiting string `json:"waiting,omitempty"`
	// Error is the witness's last error, if it did not answer.
	Error string `json:"error,omitempty"`
	// Checked is when the witness was last looked at.
	Checked string `json:"checked,omitempty"`
	// LastFailover is when this node last promoted itself, and
	// FailoverSeconds how long after it found its primary gone.
	LastFailover    string  `json:"last_failover,omitempty"`
	FailoverSeconds float64 `json:"failover_seconds,omitempty"`
}

// OutdatedRecord is a copy the witness records outdated.
type OutdatedRecord struct {
	Node       string `json:"node"`
	Generation string `json:"generation"`
	By         string `json:"by"`
	Token      int64  `json:"token"`
	Time       string `json:"time"`
}

// StatusValues lists the values each state of a Status can take, in
// order, for exporters that report every state (a metric per value, 1
// for the current one).
type StatusValues struct {
	Roles, DiskStates, PeerStates, LegStates, MemberStates, FailoverModes []string
}

// Values returns the values of Status's states.
func Values() StatusValues {
	v := StatusValues{
		Roles:         []string{meta.Primary.String(), meta.Secondary.String()},
		LegStates:     []string{legState(mirror.InSync), legState(mirror.Resyncing), legState(mirror.Failed)},
		MemberStates:  []string{"active", "failed", "rebuilding"},
		FailoverModes: []string{"manual", "etcd"},
	}
	for s := meta.JustCreated; s <= meta.Failed; s++ {
		v.DiskStates = append(v.DiskStates, s.String())
	}
	v.PeerStates = append(v.PeerStates, peerStateNames[:]...)
	return v
}
