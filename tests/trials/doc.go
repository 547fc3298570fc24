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
// It prints a table of trials, faults, outcome and recovery time, and
// exits non-zero if any acknowledged write was lost or a trial failed.
// The fault schedule and every random choice derive from --seed, which
// the output shows.
//
// Invariants: trials are independent (each has its own machines, disks
// and processes, all torn down at its end, also on SIGINT/SIGTERM); every
// wait is bounded; every workload is bounded in count and time.
package main
