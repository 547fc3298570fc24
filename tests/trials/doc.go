// Command trials is netraid's randomized fault harness (`make trials`).
//
// Each trial builds a fresh pair of machines (network namespaces, two
// loop-device disks each), promotes one, mounts ext4 on the volume and
// runs a diskchecker workload on it: records overwritten and fdatasync'ed,
// every acknowledgement remembered in this process, outside the fault
// domain. At a random moment (a random number of acknowledged writes) it
// injects one fault — kill -9 of the primary or the secondary, a link cut
// and restore, a local disk failing (by the operator or with real I/O
// errors), a slow link, a daemon killed while it rebuilds a replaced
// disk — recovers the way that fault demands (restart, resync, failover,
// disk replace, a resumed rebuild), and then checks that
//
//   - every acknowledged write is present, read through a fresh mount of
//     the copy that serves after recovery;
//   - e2fsck finds the filesystem clean;
//   - the two nodes' data areas are byte-identical.
//
// The faults of fenced.go run on a pair fenced through a witness: three
// etcd members in namespaces of their own, both nodes started with
// --etcd, and no 'netraid promote' ever typed. They are a partition of
// the link while both nodes reach etcd (the primary records its peer
// outdated and goes on; the peer stays secondary), the primary's or the
// secondary's path to etcd cut (nothing changes for the connected pair),
// the primary isolated from both (it acknowledges nothing more and
// demotes itself when its lease ends, its secondary promotes itself;
// healed, it rejoins), and the primary stopped with SIGSTOP past its
// lease (continued, it acknowledges nothing it held, demotes itself and
// rejoins). When the primary changes, the workload on the old primary's
// mount must stop by itself on the errors of the writes it held, with no
// more acknowledgements after the fault than writes were in flight; the
// workload then moves to the new primary, as a promoter would move a
// service, and the check verifies both workloads' files there.
// --witness runs only these faults.
//
// It prints a table of trials, faults, outcome, failover and recovery
// time, and
// exits non-zero if any acknowledged write was lost or a trial failed.
// The fault schedule and every random choice derive from --seed, which
// the output shows.
//
// Invariants: trials are independent (each has its own machines, disks
// and processes, all torn down at its end, also on SIGINT/SIGTERM); every
// wait is bounded; every workload is bounded in count and time.
package main
