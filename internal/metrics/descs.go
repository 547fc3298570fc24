package metrics

import "github.com/prometheus/client_golang/prometheus"

// desc makes a metric's description; every name gets the netraid_
// prefix.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("netraid_"+name, help, labels, nil)
}

// vol is the label of every per-volume metric.
const vol = "volume"

// The metrics. State metrics (role, diskState, …) have one series per
// value, the value in a label named as the metric.
var (
	buildInfo = desc("build_info", "The daemon's build: version, VCS revision and Go toolchain. Always 1.",
		"version", "revision", "goversion")
	requestSeconds = desc("nbd_request_duration_seconds",
		"Time the daemon's NBD server took over a request, from its header read to its reply sent, by command (write-fua: a write with FUA). "+
			"The export's clients on a primary; the replication link's requests on a secondary.", "command")
	stageSeconds = desc("stage_duration_seconds",
		"Time spent in each stage of the data path (only while every stage is measured: NETRAID_LATENCY).", "stage")

	volumeSize = desc("volume_size_bytes", "Size of the volume.", vol)
	regionSize = desc("region_size_bytes", "What one bit of the write-intent bitmap covers.", vol)
	role       = desc("role", "This node's role: 1 for the current one.", vol, "netraid_role")
	diskState  = desc("disk_state", "What this node knows of its copy: 1 for the current state.", vol, "netraid_disk_state")
	member     = desc("member_state", "Each local member disk's state: 1 for the current one.", vol, "member", "path", "netraid_member_state")
	outOfSync  = desc("out_of_sync_bytes", "Bytes the write-intent bitmap marks as not on every copy: what a resync would copy.", vol)
	suspended  = desc("io_suspended", "1 while the node holds I/O on purpose (neither answers nor fails it), waiting for the witness.", vol)
	stale      = desc("status_stale", "1 when the node was busy and this is the last status it made.", vol)
	problems   = desc("problems", "Conditions an operator must act on ('netraid status' says which and what to do).", vol)

	peerState     = desc("peer_state", "The replication link's state: 1 for the current one.", vol, "netraid_peer_state")
	peerRole      = desc("peer_role", "The peer's role, as its last hello said: 1 for the current one.", vol, "netraid_peer_role")
	peerDiskState = desc("peer_disk_state", "The peer's disk state, as its last hello said: 1 for the current one.", vol, "netraid_peer_disk_state")
	peerInfo      = desc("peer_info", "The peer's software version, as its last hello said. Always 1.", vol, "version")

	legState    = desc("leg_state", "Each mirror leg's state on the primary: 1 for the current one.", vol, "leg", "netraid_leg_state")
	legReads    = desc("leg_reads_total", "Reads served by each mirror leg.", vol, "leg")
	legReadB    = desc("leg_read_bytes_total", "Bytes read from each mirror leg.", vol, "leg")
	legWrites   = desc("leg_writes_total", "Writes (with FUA writes, zeroes and trims) sent to each mirror leg.", vol, "leg")
	legWrittenB = desc("leg_written_bytes_total", "Bytes written to each mirror leg (the peer's leg: what was sent to the peer).", vol, "leg")
	legFlushes  = desc("leg_flushes_total", "Flushes sent to each mirror leg.", vol, "leg")
	legErrors   = desc("leg_errors_total", "I/O errors each mirror leg returned.", vol, "leg")
	legResynced = desc("leg_resynced_bytes_total", "Bytes resyncs, rebuilds and verify repairs wrote to each mirror leg.", vol, "leg")

	syncRunning = desc("sync_in_progress", "1 while a resync, rebuild or verify runs (resync on a secondary: one coming in).", vol, "op")
	syncDone    = desc("sync_done_bytes", "What the running resync, rebuild or verify has done.", vol, "op")
	syncTotal   = desc("sync_total_bytes", "What the running resync, rebuild or verify has to do in all.", vol, "op")
	syncRate    = desc("sync_rate_bytes_per_second", "The running resync's or rebuild's recent rate.", vol, "op")
	syncPaused  = desc("sync_paused", "1 while the running resync or rebuild is paused by the operator.", vol, "op")
	verifyMis   = desc("verify_mismatched_regions", "Regions the last online verify found different on the two copies.", vol)
	verifyFull  = desc("verify_last_full_timestamp_seconds", "When the last full verify without error finished (Unix time).", vol)

	bmWrites     = desc("bitmap_writes_total", "Metadata writes of the write-intent bitmap (changed blocks written, then flushed).", vol)
	bmErrors     = desc("bitmap_write_errors_total", "Metadata writes of the write-intent bitmap that failed.", vol)
	bmMarks      = desc("bitmap_marks_total", "Writes that waited for a bitmap metadata write before going out.", vol)
	bmFastMarks  = desc("bitmap_fast_marks_total", "Writes whose regions were already marked on disk.", vol)
	exClients    = desc("export_clients", "NBD clients attached to the export.", vol)
	exConns      = desc("export_connections", "Connections to the export open now, in handshake or attached.", vol)
	exConnsTotal = desc("export_connections_total", "Connections the export accepted.", vol)
	exRefused    = desc("export_refused_connections_total",
		"Connections closed before they reached the export, by reason: limit (--max-connections), tls (refused in or for TLS), handshake (other failed handshakes).",
		vol, "reason")
	exRequests   = desc("export_requests_total", "Requests the export received, by NBD command.", vol, "command")
	exBytes      = desc("export_bytes_total", "Bytes the export's requests that succeeded moved (read, written, trimmed, zeroed), by NBD command.", vol, "command")
	exErrors     = desc("export_errors_total", "Error replies the export sent, by error value (EIO: the volume failed the request; EINVAL, ENOSPC: bad requests; ESHUTDOWN: stopping).", vol, "error")
	lnLinks      = desc("link_open", "On a secondary: replication links from its primary open now (1 while linked).", vol)
	lnConnsTotal = desc("link_connections_total", "On a secondary: connections its replication port accepted.", vol)
	lnRefused    = desc("link_refused_connections_total",
		"On a secondary: connections to its replication port closed before they became the link, by reason: tls (refused in TLS), handshake (not authenticated, or a hello refused).",
		vol, "reason")
	lnRequests   = desc("link_received_requests_total", "On a secondary: requests its primary sent over the link, by NBD command.", vol, "command")
	lnBytes      = desc("link_received_bytes_total", "On a secondary: bytes its primary's requests that succeeded moved (written, read for checksums), by NBD command.", vol, "command")
	lnErrors     = desc("link_errors_total", "On a secondary: error replies sent to its primary, by error value.", vol, "error")
	exInFlight   = desc("export_in_flight_requests", "Requests the export holds now, not yet answered.", vol)
	exInFlightB  = desc("export_in_flight_bytes", "Bytes the export's requests in flight hold.", vol)
	exBuffer     = desc("export_buffer_bytes", "What request and reply buffers hold of --memory-budget now.", vol)
	exBufWaits   = desc("export_buffer_waits_total", "Requests that waited for --memory-budget.", vol)
	raHits       = desc("export_readahead_hits_total", "Reads served from data read ahead.", vol)
	raMisses     = desc("export_readahead_misses_total", "Reads that went to the disks.", vol)
	raBytes      = desc("export_readahead_bytes_total", "Bytes read ahead.", vol)
	foMode       = desc("failover_mode", "How this node fails over: manual, or etcd (automatic, through the witness). 1 for the current one.", vol, "netraid_failover_mode")
	foLeader     = desc("failover_leader", "1 while this node holds the volume's election in the witness.", vol)
	foHolder     = desc("failover_holder_info", "Who holds the volume's election in the witness. Always 1.", vol, "holder")
	foToken      = desc("failover_fencing_token", "The election holder's fencing token.", vol)
	foWitnessUp  = desc("failover_witness_up", "1 when the witness (etcd) answered at its last check.", vol)
	foOutdated   = desc("failover_outdated", "1 for each copy (node) the witness records outdated.", vol, "node")
	foOutdatedN  = desc("failover_outdated_records", "Copies the witness records outdated, this node's and its peer's.", vol)
	foLeaseTTL   = desc("failover_lease_ttl_seconds", "The lease of this node's session in the witness.", vol)
	foLeaseLeft  = desc("failover_lease_left_seconds", "What is left of this node's lease while it holds the election, as the witness last said (0 otherwise).", vol)
	foFenced     = desc("failover_fenced", "1 while this node, having demoted itself for fencing, has not yet been resynced by the new primary.", vol)
	foLastTime   = desc("failover_last_timestamp_seconds", "When this node last promoted itself (Unix time; 0: never since it started).", vol)
	foLastLength = desc("failover_last_duration_seconds", "How long this node's last promotion took after it found its primary gone (0: none since it started).", vol)
)

// allDescs are every description, for Describe.
var allDescs = []*prometheus.Desc{
	buildInfo, requestSeconds, stageSeconds,
	volumeSize, regionSize, role, diskState, member, outOfSync, suspended, stale, problems,
	peerState, peerRole, peerDiskState, peerInfo,
	legState, legReads, legReadB, legWrites, legWrittenB, legFlushes, legErrors, legResynced,
	syncRunning, syncDone, syncTotal, syncRate, syncPaused, verifyMis, verifyFull,
	bmWrites, bmErrors, bmMarks, bmFastMarks,
	exClients, exConns, exConnsTotal, exRefused, exRequests, exBytes, exErrors, exInFlight, exInFlightB,
	exBuffer, exBufWaits, raHits, raMisses, raBytes,
	lnLinks, lnConnsTotal, lnRefused, lnRequests, lnBytes, lnErrors,
	foMode, foLeader, foHolder, foToken, foWitnessUp, foOutdated, foOutdatedN, foLeaseTTL, foLeaseLeft, foFenced, foLastTime, foLastLength,
}
