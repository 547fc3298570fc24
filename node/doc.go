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
//   - The decisions on roles, generations and syncs are pure functions in
//     decide.go (decidePromote, decideHello, decidePeerLost,
//     decideSyncStart, decideSyncDone), table-tested; the rest of the
//     package carries them out. internal/sim runs whole nodes on a
//     simulated network and crashable disks, and TestExplore checks the
//     rules above after every step of random, replayable schedules.
//   - The secondary takes writes only from the link whose hello it
//     accepted, and only once the sync that link starts has been
//     recorded (session.go); a newer link, a promotion or the link's end
//     revokes the older one, waiting for its I/O in flight. A refused
//     hello changes nothing the node records of its live link.
//   - Nothing is said to a caller of the replication port before it has
//     proved it is the configured peer (TLS with the peer's certificate
//     name, or the shared secret bound to both names), from the --peer
//     address, and, once met, of the same peer set.
//   - With a witness (fence.go): a primary answers a write its peer lacks
//     only once the peer is recorded outdated under its live election
//     key, holding (or failing, --on-no-quorum io-error) the answers
//     until then; a secondary promotes itself only up to date and not
//     recorded outdated, after winning the election; a node that has seen
//     a newer fencing token refuses an older primary's link; a primary
//     whose lease ended with no in-sync peer fails what it held and
//     demotes, recording FlagFenced, and discards its changes at the next
//     meeting.
//   - Role changes (promote with its on-promote commands, demote with its
//     on-demote commands, the stop at shutdown) are serialized by roleMu;
//     n.mu is never held across one.
package node
