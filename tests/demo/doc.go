// Command demo runs netraid's whole story on one machine (`make demo`):
// two "machines" as network namespaces with two loop-device disks each,
// netraid on both, ext4 on the volume mounted through nbdfuse on machine
// a, and an unmodified ActiveMQ keeping its KahaDB store there. It sends
// persistent messages (each acknowledged by the broker), fails a disk of
// a while they flow, kills machine a outright (netraid with kill -9, the
// broker, nbdfuse, its link), promotes b, mounts the volume there,
// starts ActiveMQ on b over the same store, consumes every message and
// prints an account: each step with the netraid commands as they ran and
// their timing, then the counts — acknowledged, received, lost.
//
// Invariants: everything it makes (namespaces, loop devices, mounts,
// processes, files under one temporary directory) is torn down at the
// end, also on SIGINT or SIGTERM, so it can run again at once. Every wait
// is bounded. It exits 0 only if every step ran and no acknowledged
// message was lost.
package main
