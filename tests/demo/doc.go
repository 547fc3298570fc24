// Command demo runs netraid's whole story on one machine (`make demo`):
// two "machines" as network namespaces with two loop-device disks each,
// a witness (one etcd member in a namespace of its own), and netraid on
// both machines with automatic, fenced failover through it and a
// promoter: the node that becomes primary mounts ext4 on the volume
// (nbdfuse, a loop device: dist/promoter/netraid-mount) and starts an
// unmodified ActiveMQ keeping its KahaDB store there. It sends
// persistent messages (each acknowledged by the broker), fails a disk of
// a while they flow, kills machine a outright (netraid with kill -9, the
// broker, nbdfuse, its links); nobody types `netraid promote`: b
// promotes itself, its promoter mounts the volume and starts ActiveMQ
// over the same store, and a producer's first message acknowledged
// there gives the failover time. It consumes every message and prints an
// account: each step with the netraid commands as they ran and their
// timing, b's log of its failover, then the counts — acknowledged,
// received, lost — and the failover time.
//
// Invariants: everything it makes (namespaces, loop devices, mounts,
// processes, files under one temporary directory) is torn down at the
// end, also on SIGINT or SIGTERM, so it can run again at once. Every wait
// is bounded. It exits 0 only if every step ran and no acknowledged
// message was lost.
package main
