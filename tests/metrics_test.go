package tests

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// metricsPort is where each node of the test serves --metrics, on its
// link address.
const metricsPort = 9942

// TestMetricsPrometheus: Debian's Prometheus, started in machine A's
// namespace, scrapes a fenced pair every second. Each node's live
// scrape passes promtool; while the secondary is down a PromQL query
// sees the primary's out-of-sync bytes rise to what was written, and
// after the resync fall to 0; every panel of the Grafana dashboard
// (dist/grafana/netraid.json) returns data over the test's span.
func TestMetricsPrometheus(t *testing.T) {
	requirePair(t)
	requireWitness(t)
	harness.RequireRoot(t, "prometheus", "promtool")
	start := time.Now()
	p := harness.NewPair(t, harness.PairOptions{DiskSize: 256 << 20, NoStart: true})
	w := harness.NewWitness(t, harness.WitnessOptions{Members: 1}, p.MA, p.MB)
	addr := map[*harness.Node]string{}
	for _, n := range []struct {
		n    *harness.Node
		m    *harness.Machine
		peer string
	}{{p.A, p.MA, "b"}, {p.B, p.MB, "a"}} {
		addr[n.n] = fmt.Sprintf("%s:%d", n.m.Addr, metricsPort)
		// The resync's rate limit makes it last a few scrapes.
		n.n.Args = append(n.n.Args, "--name", n.n.Name, "--peer-name", n.peer, "--etcd", w.Endpoints(n.m),
			"--metrics", addr[n.n], "--resync-rate", "16MiB")
	}
	p.Start()
	fp := &fencedPair{Pair: p, W: w}
	prim := fp.waitInSync(t, 2*time.Minute)
	sec := fp.other(prim)
	prom := harness.StartPrometheus(t, p.MA, time.Second,
		harness.PromTarget{Node: "a", Addr: addr[p.A]}, harness.PromTarget{Node: "b", Addr: addr[p.B]})
	prom.WaitQuery(time.Minute, "both nodes scraped", `up{job="netraid"} == 1`, func(s []harness.PromSample) bool { return len(s) == 2 })
	for _, n := range []*harness.Node{p.A, p.B} {
		checkLiveScrape(t, prom, n.Name, addr[n])
	}

	// Reads, writes and flushes, with a verify.
	harness.StartFio(t, prim.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=8", "--size=32M", "--number_ios=4000",
		"--fsync=64", "--verify=crc32c", "--do_verify=1").Wait(t, 5*time.Minute)
	// The secondary took every one of those writes, and their flushes,
	// over the link.
	for _, c := range []struct {
		command string
		least   float64
	}{{"write", 4000 * 4096}, {"flush", 4000 / 64}} {
		q := fmt.Sprintf(`netraid_link_received_requests_total{node=%q,command=%q}`, sec.Name, c.command)
		if c.command == "write" {
			q = fmt.Sprintf(`netraid_link_received_bytes_total{node=%q,command="write"}`, sec.Name)
		}
		s := prom.WaitQuery(30*time.Second, "the secondary's link counters to reach the workload's", q,
			func(s []harness.PromSample) bool { return len(s) == 1 && s[0].Values[0] >= c.least })
		t.Logf("Prometheus: %s = %.0f", q, s[0].Values[0])
	}

	// The secondary dies; the primary writes 48 MiB alone.
	sec.Kill()
	prim.WaitStatus(30*time.Second, "the peer gone", func(s node.Status) bool { return s.Peer != nil && s.Peer.State != "connected" })
	outage := time.Now()
	const written = 48 << 20
	harness.StartFio(t, prim.URI("vol"), "--rw=write", "--bs=256k", "--iodepth=8", "--offset=64M", "--size=48M").Wait(t, 5*time.Minute)
	oos := fmt.Sprintf(`netraid_out_of_sync_bytes{job="netraid",node=%q,volume="vol"}`, prim.Name)
	s := prom.WaitQuery(30*time.Second, "out-of-sync bytes to rise to what was written", oos,
		func(s []harness.PromSample) bool { return len(s) == 1 && s[0].Values[0] >= written })
	t.Logf("Prometheus: %s out of sync on %s during the outage", humanize.IBytes(uint64(s[0].Values[0])), prim.Name)

	// It returns: the resync runs, and the query falls to 0.
	sec.Start()
	harness.WaitInSync(t, prim, 2*time.Minute)
	prom.WaitQuery(30*time.Second, "out-of-sync bytes to fall to 0 after the resync", oos,
		func(s []harness.PromSample) bool { return len(s) == 1 && s[0].Values[0] == 0 })
	// The same series over the outage and the resync, as a graph shows
	// it: up to what was written, then down.
	r, err := prom.QueryRange(oos, outage, time.Second)
	if err != nil || len(r) != 1 {
		t.Fatalf("range query %s: %v %+v", oos, err, r)
	}
	peak, down := 0.0, false
	for _, v := range r[0].Values {
		down = down || v < peak
		peak = math.Max(peak, v)
	}
	if peak < written || !down {
		t.Fatalf("out-of-sync bytes since the outage %v: want a rise to at least %d, then a fall", r[0].Values, written)
	}
	prom.WaitQuery(10*time.Second, "the resync seen running", fmt.Sprintf(`max_over_time(netraid_sync_in_progress{node=%q,op="resync"}[5m]) == 1`, prim.Name),
		func(s []harness.PromSample) bool { return len(s) == 1 })
	prom.WaitQuery(10*time.Second, "both nodes scraped again", `up{job="netraid"} == 1`, func(s []harness.PromSample) bool { return len(s) == 2 })
	checkLiveScrape(t, prom, sec.Name, addr[sec])

	checkDashboard(t, prom, start)
}

// checkLiveScrape runs promtool check metrics on a node's /metrics.
func checkLiveScrape(t *testing.T, prom *harness.Prometheus, name, addr string) {
	t.Helper()
	text, err := prom.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", name, err)
	}
	for _, want := range []string{"netraid_role{", "netraid_build_info{", "process_resident_memory_bytes", "netraid_nbd_request_duration_seconds_bucket{"} {
		if !strings.Contains(text, want) {
			t.Errorf("%s's metrics have no %s", name, want)
		}
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics on %s's scrape: %v\n%s", name, err, out)
	}
	t.Logf("promtool check metrics: %s's scrape passes (%d lines)", name, strings.Count(text, "\n"))
}

// dashboardQueries returns each panel's title and its targets' PromQL,
// with Grafana's variables as the test's Prometheus takes them: every
// job and volume, a rate window of ten scrapes.
func dashboardQueries(t *testing.T, path string) (titles []string, exprs [][]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	vars := strings.NewReplacer("$job", ".+", "$volume", ".+", "$__rate_interval", "10s")
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				var inner []panel
				for _, raw := range p.Panels {
					var ip panel
					json.Unmarshal(raw, &ip)
					inner = append(inner, ip)
				}
				walk(inner)
				continue
			}
			var es []string
			for _, tg := range p.Targets {
				es = append(es, vars.Replace(tg.Expr))
			}
			if len(es) == 0 {
				t.Errorf("dashboard panel %q has no query", p.Title)
			}
			titles, exprs = append(titles, p.Title), append(exprs, es)
		}
	}
	walk(d.Panels)
	if len(titles) == 0 {
		t.Fatalf("%s has no panels", path)
	}
	return titles, exprs
}

// checkDashboard runs every query of every dashboard panel over the
// test's span, as Grafana would draw it, and fails for one that never
// returned a number.
func checkDashboard(t *testing.T, prom *harness.Prometheus, start time.Time) {
	t.Helper()
	titles, exprs := dashboardQueries(t, "../dist/grafana/netraid.json")
	for i, title := range titles {
		for _, e := range exprs[i] {
			r, err := prom.QueryRange(e, start, time.Second)
			if err != nil {
				t.Errorf("panel %q: %v", title, err)
				continue
			}
			points := 0
			for _, s := range r {
				for _, v := range s.Values {
					if !math.IsNaN(v) && !math.IsInf(v, 0) {
						points++
					}
				}
			}
			if points == 0 {
				t.Errorf("panel %q: %s returned no data over the test (%d series)", title, e, len(r))
			}
		}
	}
	t.Logf("dashboard: %d panels, each query returned data", len(titles))
}
