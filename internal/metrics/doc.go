// Package metrics exports a netraid daemon to Prometheus: `netraid serve
// --metrics ADDR` serves /metrics on HOST:PORT or a unix socket.
//
// What it shows follows drbd-reactor's exporter, in netraid's terms:
// role, disk state, peer link, each mirror leg and member disk, out-of-
// sync bytes, resync/rebuild/verify progress and rate, suspended I/O, the
// export's requests, bytes, errors, in-flight requests and connections by
// kind, request latency, bitmap metadata writes, failover through the
// witness, the build, and the process (memory, CPU, file descriptors).
// README.md has the table of the main metrics.
//
// Invariants:
//   - A scrape reads the node once, through the status function it was
//     given (node.Status, which answers within a quarter of a second
//     even while the node is busy): the exporter keeps no state of its
//     own, and what a scrape shows is one status, the same as `netraid
//     status --json`. A stale status says so (netraid_status_stale 1).
//   - Names follow Prometheus conventions: the netraid_ prefix, base
//     units (bytes, seconds), counters end in _total, and a state is one
//     gauge per possible value, named after the metric and set to 1 for
//     the current value and 0 for the others (drbd-reactor's enums, the
//     OpenMetrics StateSet), so every series exists from the start. A
//     unit test lints them with promlint and `promtool check metrics`.
//   - Per-volume metrics carry a volume label; a daemon that hosts many
//     volumes gives the collector one status each. The latency
//     histograms and the process's are the daemon's, without it.
//   - Latency comes from internal/lat, the one latency instrumentation:
//     New raises it to lat.Requests (two clock reads per NBD request),
//     and the per-stage histograms are exported only when something
//     switched every stage on (NETRAID_LATENCY).
//   - Counters restart from zero when the export does (a promotion):
//     Prometheus's rate() takes such resets in its stride.
package metrics
