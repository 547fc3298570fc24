// Package node assembles a netraid node from its member disks and runs it:
// the local volume, the NBD export while primary, the replication link to
// the peer, the resync engine, and the control API the CLI talks to.
//
// Invariants:
//   - A node starts as secondary unless it is standalone (no peer) or told
//     --primary; an old primary that comes back never exports a stale copy
//     on its own.
//   - Only the primary dials; the secondary accepts one primary at a time
//     on its peer address and writes what it receives to its own disks.
//   - Before a write is answered it is on every leg that is not failed;
//     when the peer leg fails, the primary starts a new data generation
//     (persisted) before it answers any write the peer did not get.
//   - When two nodes meet, Decide on their generations says what to do;
//     split brain and unrelated data are refused and reported, never
//     merged. The target of a resync is marked inconsistent (persisted)
//     until the resync is done, and an inconsistent copy is not promoted
//     without --force — except one whose superblock records the rebuild of
//     one replaced member (rebuild.go): it may be primary again, but its
//     local leg serves no read, and no I/O succeeds, until a connected,
//     up-to-date peer of the same generation has rebuilt it. A rebuild's
//     cursor is recorded only after the copies below it are flushed; a
//     restart resumes from it, and any doubt about the meeting (other
//     verdicts, a discard, a peer not up to date) means a full sync.
package node
