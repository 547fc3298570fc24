package metrics

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netraid/netraid/internal/version"
	"github.com/netraid/netraid/node"
)

// Collector is a prometheus.Collector of the daemon: the build, the
// request latency, and each volume's status, read when scraped.
type Collector struct {
	statuses func() []node.Status
	values   node.StatusValues
	build    version.Info
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector that calls statuses at each scrape
// (one status per volume the daemon hosts).
func NewCollector(statuses func() []node.Status) *Collector {
	return &Collector{statuses: statuses, values: node.Values(), build: version.Get()}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads the statuses and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ch <- gauge(buildInfo, 1, c.build.Version, c.build.Commit, c.build.Go)
	collectLatency(ch)
	for _, st := range c.statuses() {
		e := emitter{ch: ch, vol: st.Volume}
		c.volume(e, &st)
	}
}

// emitter sends one volume's metrics, its volume label first.
type emitter struct {
	ch  chan<- prometheus.Metric
	vol string
}

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.ch <- gauge(d, v, append([]string{e.vol}, labels...)...)
}

func (e emitter) counter(d *prometheus.Desc, v int64, labels ...string) {
	e.ch <- metric(d, prometheus.CounterValue, float64(v), append([]string{e.vol}, labels...)...)
}

// state sends one series per value, 1 for cur and 0 for the others; a
// value not in values (a newer state this exporter does not know) is
// sent too, so that nothing is hidden.
func (e emitter) state(d *prometheus.Desc, values []string, cur string, labels ...string) {
	known := false
	for _, v := range values {
		known = known || v == cur
		e.gauge(d, b2f(v == cur), append(labels, v)...)
	}
	if !known && cur != "" {
		e.gauge(d, 1, append(labels, cur)...)
	}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return metric(d, prometheus.GaugeValue, v, labels...)
}

// metric makes one sample. Label values come from the node (paths,
// names, versions) and are made valid UTF-8, which Prometheus requires;
// a sample that still cannot be made is reported as an error of the
// scrape, never a panic of the daemon.
func metric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	for i, l := range labels {
		labels[i] = strings.ToValidUTF8(l, "\uFFFD")
	}
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// volume sends one volume's metrics.
func (c *Collector) volume(e emitter, st *node.Status) {
	v := c.values
	e.gauge(volumeSize, float64(st.Size))
	e.gauge(regionSize, float64(st.Region))
	e.state(role, v.Roles, st.Role)
	e.state(diskState, v.DiskStates, st.DiskState)
	for _, m := range st.Members {
		e.state(member, v.MemberStates, m.State, strconv.Itoa(m.Index), m.Path)
	}
	e.gauge(outOfSync, float64(st.OutOfSync))
	e.gauge(suspended, b2f(st.Suspended != ""))
	e.gauge(stale, b2f(st.Stale))
	e.gauge(problems, float64(len(st.Problems)))
	e.counter(bmWrites, st.Bitmap.Writes)
	e.counter(bmErrors, st.Bitmap.WriteErrors)
	e.counter(bmMarks, st.Bitmap.Marks)
	e.counter(bmFastMarks, st.Bitmap.FastMarks)
	if p := st.Peer; p != nil {
		e.state(peerState, v.PeerStates, p.State)
		if p.Role != "" {
			e.state(peerRole, v.Roles, p.Role)
		}
		if p.DiskState != "" {
			e.state(peerDiskState, v.DiskStates, p.DiskState)
		}
		if p.Version != "" {
			e.gauge(peerInfo, 1, p.Version)
		}
	}
	for _, l := range st.Legs {
		e.state(legState, v.LegStates, l.State, l.Name)
		e.counter(legReads, l.Reads, l.Name)
		e.counter(legReadB, l.ReadBytes, l.Name)
		e.counter(legWrites, l.Writes, l.Name)
		e.counter(legWrittenB, l.WriteBytes, l.Name)
		e.counter(legFlushes, l.Flushes, l.Name)
		e.counter(legErrors, l.Errors, l.Name)
		e.counter(legResynced, l.Resynced, l.Name)
	}
	syncs(e, st)
	if x := st.Export; x != nil {
		export(e, x)
	}
	if x := st.Replication; x != nil {
		replication(e, x)
	}
	c.failover(e, st.Failover)
}

// syncs sends the resync's, the rebuild's and the verify's progress.
func syncs(e emitter, st *node.Status) {
	running := func(op string, r *node.ResyncStatus) {
		e.gauge(syncRunning, b2f(r != nil), op)
		if r == nil {
			return
		}
		e.gauge(syncDone, float64(r.Done), op)
		e.gauge(syncTotal, float64(r.Total), op)
		e.gauge(syncRate, r.Rate, op)
		e.gauge(syncPaused, b2f(r.Paused), op)
	}
	running("resync", st.Resync)
	running("rebuild", st.Rebuild)
	vf := st.Verify
	e.gauge(syncRunning, b2f(vf != nil && vf.Running), "verify")
	if vf == nil {
		return
	}
	if vf.Running {
		e.gauge(syncDone, float64(vf.Done), "verify")
		e.gauge(syncTotal, float64(vf.Total), "verify")
	}
	e.gauge(verifyMis, float64(len(vf.Mismatched)))
	if t, err := time.Parse(time.RFC3339, vf.LastFull); err == nil {
		e.gauge(verifyFull, float64(t.Unix()))
	}
}

// export sends the NBD export's counters.
func export(e emitter, x *node.ExportStatus) {
	e.gauge(exClients, float64(x.Clients))
	e.gauge(exConns, float64(x.Connections))
	e.counter(exConnsTotal, x.TotalConnections)
	e.counter(exRefused, x.RefusedByCap, "limit")
	e.counter(exRefused, x.TLSRefused, "tls")
	e.counter(exRefused, x.FailedHandshakes, "handshake")
	for cmd, n := range x.Commands {
		e.counter(exRequests, n.Requests, cmd)
		e.counter(exBytes, n.Bytes, cmd)
	}
	for errno, n := range x.ErrorReplies {
		e.counter(exErrors, n, errno)
	}
	e.gauge(exInFlight, float64(x.InFlight))
	e.gauge(exInFlightB, float64(x.InFlightBytes))
	e.gauge(exBuffer, float64(x.BufferBytes))
	e.counter(exBufWaits, x.BufferWaits)
	if ra := x.Readahead; ra != nil {
		e.counter(raHits, ra.Hits)
		e.counter(raMisses, ra.Misses)
		e.counter(raBytes, ra.ReadAhead)
	}
}

// failover sends how the node fails over and what the witness says.
func (c *Collector) failover(e emitter, f *node.FailoverStatus) {
	if f == nil {
		return
	}
	e.state(foMode, c.values.FailoverModes, f.Mode)
	if f.Mode == "manual" {
		return
	}
	e.gauge(foLeader, b2f(f.Token != 0))
	if f.Holder != "" {
		e.gauge(foHolder, 1, f.Holder)
	}
	e.gauge(foToken, float64(f.HolderToken))
	e.gauge(foWitnessUp, b2f(f.Error == ""))
	e.gauge(foLeaseTTL, f.LeaseTTL)
	e.gauge(foLeaseLeft, f.LeaseLeft)
	e.gauge(foFenced, b2f(f.Fenced))
	outdated := map[string]bool{}
	for _, r := range f.Outdated {
		outdated[r.Node] = true
	}
	seen := map[string]bool{}
	for _, name := range []string{f.Node, f.PeerName} {
		if name != "" && !seen[name] {
			e.gauge(foOutdated, b2f(outdated[name]), name)
			seen[name] = true
		}
	}
	for name := range outdated {
		if !seen[name] {
			e.gauge(foOutdated, 1, name)
			seen[name] = true
		}
	}
	e.gauge(foOutdatedN, float64(len(f.Outdated)))
	var last float64
	if t, err := time.Parse(time.RFC3339, f.LastFailover); err == nil {
		last = float64(t.Unix())
	}
	e.gauge(foLastTime, last)
	e.gauge(foLastLength, f.FailoverSeconds)
}

// replication sends what a secondary's replication port took from its
// primary.
func replication(e emitter, x *node.ExportStatus) {
	e.gauge(lnLinks, float64(x.Clients))
	e.counter(lnConnsTotal, x.TotalConnections)
	e.counter(lnRefused, x.TLSRefused, "tls")
	e.counter(lnRefused, x.FailedHandshakes+x.RefusedByCap, "handshake")
	for cmd, n := range x.Commands {
		e.counter(lnRequests, n.Requests, cmd)
		e.counter(lnBytes, n.Bytes, cmd)
	}
	for errno, n := range x.ErrorReplies {
		e.counter(lnErrors, n, errno)
	}
}
