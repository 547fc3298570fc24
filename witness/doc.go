// Package witness is a node's link to its volume's witness: etcd, the
// third party that says which of two copies may take writes alone. It
// holds the node's session (a lease kept alive), the volume's election
// under it, and the records of copies known outdated. netraid runs no
// consensus of its own: etcd is the engine.
//
// A Client talks to etcd at Options.Endpoints, or to Options.Backend: a
// Memory, the in-process witness of the tests and the simulation, with
// the same semantics (the behaviours in witness_test.go run against
// both) and controls to cut a node from it, stop it, or end a lease.
//
// Keys, under /netraid/v1/VOLUME/:
//
//	election/LEASE   the election (etcd's concurrency.Election): the key
//	                 created first holds it; its create revision is the
//	                 holder's fencing token
//	outdated/NODE    a Record: NODE's copy lacks writes from a generation
//	                 on, written by the primary that took them alone
//
// Invariants:
//   - A record is written or removed only in a transaction guarded by
//     the writer's election key (its create revision equal to the
//     writer's token): a node that lost the election (its lease expired,
//     another won) writes nothing, whatever it believes.
//   - A winner's token is larger than any earlier winner's: revisions
//     only grow.
//   - Every request is bounded by Options.Timeout; an etcd that does not
//     answer is ErrUnreachable, never a wait without end.
//   - The session outlives the calls that made it; its Done is closed
//     when its lease expired (no renewal for a TTL) or was revoked.
package witness
