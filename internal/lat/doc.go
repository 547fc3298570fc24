// Package lat measures where a request's time goes inside the daemon:
// one latency histogram per stage of the data path (reading an NBD
// request, handing it to a handler, the bitmap mark, each mirror leg, the
// disk, the replication link, the reply), switched on at run time.
//
// It is the one latency instrumentation of netraid: the Prometheus
// exporter (package metrics) exports these histograms. A Histogram
// snapshot carries what prometheus.MustNewConstHistogram takes (count,
// sum in seconds, cumulative counts by upper bound: PromBuckets).
//
// Recording has three levels (SetLevel, Raise): Off; Requests, where only
// the NBD server's whole requests record (the NBDTotal* stages: one
// clock read when a request's header is read, one when it is answered,
// two atomic adds), which is what the exporter switches on; and Stages,
// where every stage records (a dozen clock reads per request along the
// data path), for finding where the time goes.
//
// Invariants:
//   - Off by default. When off, Start and StartRequest return 0 and
//     Since and Record do nothing after one atomic load: the data path
//     pays nothing else. At Requests, Start still returns 0, so the
//     stages below the NBD server pay the same one load.
//   - A measurement started while on and ended after Enable(false) is
//     dropped, never recorded as a huge value: a start of 0 means "not
//     measured".
//   - Histograms only grow (counts, sums); Reset is for tests and
//     diagnostics. Recording is lock-free (atomic adds), safe from any
//     goroutine.
//   - Bucket bounds are fixed: four buckets per power of two from 256 ns
//     to 2^34 ns (about 17 s), and one above; every power of two is a
//     bound, which is what PromBuckets exports.
//
// Setting NETRAID_LATENCY=FILE in a process's environment switches every
// stage on at start and writes their snapshot (JSON, Snapshot's
// form) to FILE every second, replacing it atomically: make bench's
// latency tooling (scripts/bench/latency.py) reads it.
package lat
