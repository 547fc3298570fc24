package metrics

import (
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/netraid/netraid/internal/lat"
	"github.com/netraid/netraid/internal/version"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/node"
)

// primaryStatus is a primary in the middle of a resync, with every part
// of a status filled in.
func primaryStatus() node.Status {
	return node.Status{
		Volume: "vol", Size: 1 << 30, Region: 1 << 20, Role: "primary", DiskState: "up-to-date",
		Members: []node.MemberStatus{{Index: 0, Path: "/dev/sdb", State: "active"}, {Index: 1, Path: "/dev/sdc", State: "failed"}},
		Export: &node.ExportStatus{
			Clients: 2, Connections: 3, TotalConnections: 9, RefusedByCap: 1, TLSRefused: 2, FailedHandshakes: 3,
			Commands:     map[string]nbd.CommandStats{"read": {Requests: 10, Bytes: 40960}, "write": {Requests: 5, Bytes: 20480}, "flush": {Requests: 1}},
			ErrorReplies: map[string]int64{"EIO": 4, "EINVAL": 0},
			InFlight:     6, InFlightBytes: 1 << 20, BufferBytes: 2 << 20, BufferWaits: 7,
			Readahead: &node.ReadaheadStatus{Hits: 11, Misses: 12, ReadAhead: 13},
		},
		Bitmap:    node.BitmapStatus{Writes: 21, WriteErrors: 1, Marks: 22, FastMarks: 23},
		Peer:      &node.PeerStatus{State: "connected", Role: "secondary", DiskState: "inconsistent", Version: "v1.2.3"},
		Legs:      []node.LegStatus{{Name: "local", State: "up-to-date", Reads: 1, ReadBytes: 2, Writes: 3, WriteBytes: 4, Flushes: 5}, {Name: "peer", State: "resyncing", Errors: 1, Resynced: 99}},
		OutOfSync: 48 << 20,
		Resync:    &node.ResyncStatus{Kind: "bitmap", Done: 8 << 20, Total: 56 << 20, Rate: 1e8},
		Verify:    &node.VerifyStatus{Mismatched: []int64{3, 4}, LastFull: "2026-01-02T03:04:05Z"},
		Failover: &node.FailoverStatus{Mode: "etcd", Node: "a", PeerName: "b", Holder: "a", HolderToken: 42, Token: 42, LeaseTTL: 5,
			Outdated: []node.OutdatedRecord{{Node: "b"}}, LastFailover: "2026-01-02T03:04:05Z", FailoverSeconds: 2.5},
		Suspended: "held: the witness does not answer",
		Problems:  []string{"one", "two"},
	}
}

// scrape gathers reg and returns each sample as `name{labels}` → value
// (a histogram's count as name_count), and the text exposition.
func scrape(t *testing.T, reg *prometheus.Registry) (map[string]float64, string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	var text bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
		for _, m := range mf.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			key := mf.GetName() + "{" + strings.Join(ls, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[key] = m.Gauge.GetValue()
			case dto.MetricType_COUNTER:
				out[key] = m.Counter.GetValue()
			case dto.MetricType_HISTOGRAM:
				out[strings.Replace(key, "{", "_count{", 1)] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out, text.String()
}

func TestCollectorPrimary(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(func() []node.Status { return []node.Status{primaryStatus()} }))
	got, _ := scrape(t, reg)
	want := map[string]float64{
		`netraid_role{netraid_role="primary",volume="vol"}`:                                           1,
		`netraid_role{netraid_role="secondary",volume="vol"}`:                                         0,
		`netraid_disk_state{netraid_disk_state="up-to-date",volume="vol"}`:                            1,
		`netraid_disk_state{netraid_disk_state="outdated",volume="vol"}`:                              0,
		`netraid_member_state{member="1",netraid_member_state="failed",path="/dev/sdc",volume="vol"}`: 1,
		`netraid_peer_state{netraid_peer_state="connected",volume="vol"}`:                             1,
		`netraid_peer_state{netraid_peer_state="standalone",volume="vol"}`:                            0,
		`netraid_peer_disk_state{netraid_peer_disk_state="inconsistent",volume="vol"}`:                1,
		`netraid_peer_info{version="v1.2.3",volume="vol"}`:                                            1,
		`netraid_leg_state{leg="peer",netraid_leg_state="resyncing",volume="vol"}`:                    1,
		`netraid_leg_state{leg="peer",netraid_leg_state="up-to-date",volume="vol"}`:                   0,
		`netraid_leg_written_bytes_total{leg="local",volume="vol"}`:                                   4,
		`netraid_leg_resynced_bytes_total{leg="peer",volume="vol"}`:                                   99,
		`netraid_leg_errors_total{leg="peer",volume="vol"}`:                                           1,
		`netraid_out_of_sync_bytes{volume="vol"}`:                                                     48 << 20,
		`netraid_sync_in_progress{op="resync",volume="vol"}`:                                          1,
		`netraid_sync_in_progress{op="rebuild",volume="vol"}`:                                         0,
		`netraid_sync_in_progress{op="verify",volume="vol"}`:                                          0,
		`netraid_sync_done_bytes{op="resync",volume="vol"}`:                                           8 << 20,
		`netraid_sync_total_bytes{op="resync",volume="vol"}`:                                          56 << 20,
		`netraid_sync_rate_bytes_per_second{op="resync",volume="vol"}`:                                1e8,
		`netraid_verify_mismatched_regions{volume="vol"}`:                                             2,
		`netraid_verify_last_full_timestamp_seconds{volume="vol"}`:                                    float64(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Unix()),
		`netraid_io_suspended{volume="vol"}`:                                                          1,
		`netraid_status_stale{volume="vol"}`:                                                          0,
		`netraid_problems{volume="vol"}`:                                                              2,
		`netraid_bitmap_writes_total{volume="vol"}`:                                                   21,
		`netraid_bitmap_write_errors_total{volume="vol"}`:                                             1,
		`netraid_export_requests_total{command="read",volume="vol"}`:                                  10,
		`netraid_export_bytes_total{command="write",volume="vol"}`:                                    20480,
		`netraid_export_errors_total{error="EIO",volume="vol"}`:                                       4,
		`netraid_export_errors_total{error="EINVAL",volume="vol"}`:                                    0,
		`netraid_export_in_flight_requests{volume="vol"}`:                                             6,
		`netraid_export_in_flight_bytes{volume="vol"}`:                                                1 << 20,
		`netraid_export_clients{volume="vol"}`:                                                        2,
		`netraid_export_connections_total{volume="vol"}`:                                              9,
		`netraid_export_refused_connections_total{reason="limit",volume="vol"}`:                       1,
		`netraid_export_refused_connections_total{reason="tls",volume="vol"}`:                         2,
		`netraid_export_refused_connections_total{reason="handshake",volume="vol"}`:                   3,
		`netraid_export_readahead_hits_total{volume="vol"}`:                                           11,
		`netraid_failover_mode{netraid_failover_mode="etcd",volume="vol"}`:                            1,
		`netraid_failover_leader{volume="vol"}`:                                                       1,
		`netraid_failover_holder_info{holder="a",volume="vol"}`:                                       1,
		`netraid_failover_fencing_token{volume="vol"}`:                                                42,
		`netraid_failover_outdated{node="b",volume="vol"}`:                                            1,
		`netraid_failover_outdated{node="a",volume="vol"}`:                                            0,
		`netraid_failover_outdated_records{volume="vol"}`:                                             1,
		`netraid_failover_last_duration_seconds{volume="vol"}`:                                        2.5,
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: missing", k)
			continue
		}
		if g != w {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	b := version.Get()
	if _, ok := got[`netraid_build_info{goversion="`+b.Go+`",revision="`+b.Commit+`",version="`+b.Version+`"}`]; !ok {
		t.Errorf("no build info for %+v", b)
	}
}

// TestCollectorSecondaryManual: a secondary without witness shows no
// export, no legs, no election; an unknown state value is shown, not
// dropped; a label value that is not UTF-8 is mended.
func TestCollectorSecondaryManual(t *testing.T) {
	st := node.Status{Volume: "v2", Role: "secondary", DiskState: "disk-state(9)",
		Members:  []node.MemberStatus{{Index: 0, Path: "/dev/disk/by-id/\xff\xfe", State: "active"}},
		Peer:     &node.PeerStatus{State: "waiting"},
		Resync:   &node.ResyncStatus{Kind: "incoming", Total: 5},
		Failover: &node.FailoverStatus{Mode: "manual"}, Stale: true}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(func() []node.Status { return []node.Status{st} }))
	got, _ := scrape(t, reg)
	for k, w := range map[string]float64{
		`netraid_disk_state{netraid_disk_state="disk-state(9)",volume="v2"}`: 1,
		`netraid_disk_state{netraid_disk_state="up-to-date",volume="v2"}`:    0,
		`netraid_peer_state{netraid_peer_state="waiting",volume="v2"}`:       1,
		`netraid_sync_total_bytes{op="resync",volume="v2"}`:                  5,
		`netraid_failover_mode{netraid_failover_mode="manual",volume="v2"}`:  1,
		`netraid_status_stale{volume="v2"}`:                                  1,
		// A path that is not UTF-8 is mended, not a failed scrape.
		`netraid_member_state{member="0",netraid_member_state="active",path="/dev/disk/by-id/` + "\uFFFD" + `",volume="v2"}`: 1,
	} {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	for k := range got {
		for _, absent := range []string{"netraid_export_", "netraid_leg_", "netraid_failover_leader", "netraid_peer_info"} {
			if strings.HasPrefix(k, absent) {
				t.Errorf("%s on a secondary in manual mode", k)
			}
		}
	}
}

// TestLint: the exposition passes promlint and, where it is installed,
// `promtool check metrics`, with every stage's histogram on too.
func TestLint(t *testing.T) {
	lat.Reset()
	lat.SetLevel(lat.Stages)
	t.Cleanup(func() { lat.SetLevel(lat.Off); lat.Reset() })
	lat.Record(lat.NBDTotalWrite, 300*time.Microsecond)
	lat.Record(lat.FileWrite, 100*time.Microsecond)
	reg := New(func() []node.Status { return []node.Status{primaryStatus()} })
	got, text := scrape(t, reg)
	if got[`netraid_nbd_request_duration_seconds_count{command="write"}`] != 1 ||
		got[`netraid_stage_duration_seconds_count{stage="file_write"}`] != 1 {
		t.Errorf("latency histograms not exported:\n%s", grep(text, "duration_seconds_count"))
	}
	if !strings.Contains(text, "process_resident_memory_bytes") || !strings.Contains(text, "go_goroutines") {
		t.Error("no process or Go runtime metrics")
	}
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool is not installed (scripts/deps.sh installs prometheus)")
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestRequestLevel: New switches the request histograms on, and the
// stage histograms stay out unless every stage is measured.
func TestRequestLevel(t *testing.T) {
	lat.Reset()
	lat.SetLevel(lat.Off)
	t.Cleanup(func() { lat.SetLevel(lat.Off); lat.Reset() })
	reg := New(func() []node.Status { return nil })
	if lat.CurrentLevel() != lat.Requests {
		t.Fatalf("latency level %v after New, want Requests", lat.CurrentLevel())
	}
	lat.Record(lat.NBDTotalRead, time.Millisecond)
	lat.Record(lat.FileRead, time.Millisecond)
	got, text := scrape(t, reg)
	if got[`netraid_nbd_request_duration_seconds_count{command="read"}`] != 1 {
		t.Errorf("the read was not counted:\n%s", grep(text, "netraid_nbd_request"))
	}
	if strings.Contains(text, "netraid_stage_duration_seconds") {
		t.Error("stage histograms exported while stages are not measured")
	}
}

func grep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
