package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netraid/netraid/internal/lat"
)

// requestStages are the NBD server's whole-request stages, by the
// command label they are exported under.
var requestStages = []struct {
	command string
	stage   lat.Stage
}{
	{"read", lat.NBDTotalRead},
	{"write", lat.NBDTotalWrite},
	{"write-fua", lat.NBDTotalFUA},
	{"flush", lat.NBDTotalFlush},
}

// collectLatency sends the request histograms, and every stage's when
// every stage is measured.
func collectLatency(ch chan<- prometheus.Metric) {
	snap := lat.Snapshot()
	for _, r := range requestStages {
		ch <- histogram(requestSeconds, snap[r.stage], r.command)
	}
	if !lat.Enabled() {
		return
	}
	for s, h := range snap {
		switch lat.Stage(s) {
		case lat.NBDTotalRead, lat.NBDTotalWrite, lat.NBDTotalFUA, lat.NBDTotalFlush:
			continue // exported as requests
		}
		ch <- histogram(stageSeconds, h, h.Stage)
	}
}

func histogram(d *prometheus.Desc, h lat.Histogram, label string) prometheus.Metric {
	m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum.Seconds(), h.PromBuckets(), label)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
