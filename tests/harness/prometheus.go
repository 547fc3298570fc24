package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Prometheus is Debian's Prometheus server, run by a test inside a
// machine's network namespace, scraping targets it reaches from there.
type Prometheus struct {
	t      T
	m      *Machine
	Addr   string // its web address, inside m
	Dir    string
	client *http.Client
	cmd    *exec.Cmd
	done   chan struct{}
	log    string
}

// PromTarget is one scrape target: its address and the node label
// Prometheus gives its series.
type PromTarget struct {
	Node string
	Addr string // HOST:PORT, reached from the Prometheus's machine
}

// StartPrometheus starts Prometheus in m scraping each target's
// /metrics every interval (job "netraid"), and waits until it answers.
// It is killed at cleanup, its log printed if the test failed.
func StartPrometheus(t T, m *Machine, interval time.Duration, targets ...PromTarget) *Prometheus {
	t.Helper()
	RequireRoot(t, "prometheus")
	dir, err := os.MkdirTemp("", "netraid-prom-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", interval, interval, interval)
	fmt.Fprintf(&cfg, "scrape_configs:\n  - job_name: netraid\n    static_configs:\n")
	for _, tg := range targets {
		fmt.Fprintf(&cfg, "      - targets: [%q]\n        labels: {node: %q}\n", tg.Addr, tg.Node)
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{t: t, m: m, Addr: "127.0.0.1:9090", Dir: dir, client: HTTPClient(m),
		done: make(chan struct{}), log: filepath.Join(dir, "prometheus.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"prometheus", "--config.file=" + conf, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + p.Addr, "--log.level=warn"}
	if m != nil {
		args = NetnsArgv(m.Name, args...)
	}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	go func() { p.cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("--- prometheus log:\n%s", b)
		}
	})
	WaitFor(t, time.Minute, "prometheus to answer", func() bool {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("prometheus exited at start:\n%s", b)
		default:
		}
		resp, err := p.client.Get("http://" + p.Addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// PromSample is one series of a query's answer: its labels and its
// values in time order (one for an instant query).
type PromSample struct {
	Labels map[string]string
	Values []float64
}

// Query runs an instant query.
func (p *Prometheus) Query(expr string) ([]PromSample, error) {
	return p.api("query", url.Values{"query": {expr}})
}

// QueryRange runs a range query from start to now, a point every step,
// as a dashboard panel does.
func (p *Prometheus) QueryRange(expr string, start time.Time, step time.Duration) ([]PromSample, error) {
	return p.api("query_range", url.Values{"query": {expr},
		"start": {unixTime(start)}, "end": {unixTime(time.Now())},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}})
}

// unixTime is t as the API takes it, to the millisecond.
func unixTime(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1e3, 'f', 3, 64) }

// api calls the HTTP API and decodes a vector or matrix answer.
func (p *Prometheus) api(endpoint string, q url.Values) ([]PromSample, error) {
	resp, err := p.client.PostForm("http://"+p.Addr+"/api/v1/"+endpoint, q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
				Values [][]any           `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("prometheus %s %q: %v: %s", endpoint, q.Get("query"), err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("prometheus %s %q: %s", endpoint, q.Get("query"), r.Error)
	}
	var out []PromSample
	for _, s := range r.Data.Result {
		ps := PromSample{Labels: s.Metric}
		points := s.Values
		if s.Value != nil {
			points = [][]any{s.Value}
		}
		for _, pt := range points {
			if len(pt) != 2 {
				continue
			}
			str, _ := pt[1].(string)
			v, err := strconv.ParseFloat(str, 64)
			if err != nil {
				return nil, fmt.Errorf("prometheus %s: value %v: %v", endpoint, pt[1], err)
			}
			ps.Values = append(ps.Values, v)
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i].Labels) < fmt.Sprint(out[j].Labels) })
	return out, nil
}

// WaitQuery runs an instant query until cond holds for its answer,
// failing the test after timeout with the last answer.
func (p *Prometheus) WaitQuery(timeout time.Duration, what, expr string, cond func([]PromSample) bool) []PromSample {
	p.t.Helper()
	var last []PromSample
	var lastErr error
	deadline := time.Now().Add(timeout)
	for {
		s, err := p.Query(expr)
		if err == nil && cond(s) {
			return s
		}
		last, lastErr = s, err
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out after %v waiting for %s: %s gave %+v (error %v)", timeout, what, expr, last, lastErr)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Get fetches a URL from inside the Prometheus's machine (a target's
// /metrics, say).
func (p *Prometheus) Get(u string) (string, error) {
	resp, err := p.client.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return string(b), nil
}
