package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Ports every member listens on, at its own address.
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// EtcdMember is one etcd process of a witness, in a namespace of its own.
type EtcdMember struct {
	Name      string // etcd member name, m0, m1, ...
	Netns     string
	Addr      string
	ClientURL string
	PeerURL   string
	DataDir   string
	Log       string
	port      string // its port on the witness bridge
	cut       bool   // CutMember took its port down
	args      []string
	cmd       *exec.Cmd
	done      chan struct{}
}

// member plugs member i into the witness network and describes its
// process.
func (w *Witness) member(i int) *EtcdMember {
	w.t.Helper()
	addr := w.memberAddrs()[i]
	scheme := "http"
	if w.tls != nil {
		scheme = "https"
	}
	m := &EtcdMember{
		Name:      fmt.Sprintf("m%d", i),
		Netns:     fmt.Sprintf("nrw%s%d", w.id, i),
		Addr:      addr,
		ClientURL: fmt.Sprintf("%s://%s:%d", scheme, addr, EtcdClientPort),
		PeerURL:   fmt.Sprintf("http://%s:%d", addr, EtcdPeerPort),
		DataDir:   filepath.Join(w.Dir, fmt.Sprintf("m%d.etcd", i)),
		Log:       filepath.Join(w.Dir, fmt.Sprintf("m%d.log", i)),
		port:      fmt.Sprintf("se%d%s", i, w.id),
	}
	w.addNetns(m.Netns)
	w.plug(m.Netns, fmt.Sprintf("we%d%s", i, w.id), m.port, addr, false)
	var cluster []string
	for j, a := range w.memberAddrs() {
		cluster = append(cluster, fmt.Sprintf("m%d=http://%s:%d", j, a, EtcdPeerPort))
	}
	m.args = []string{
		"--name", m.Name, "--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", strings.Join(cluster, ","),
		"--initial-cluster-token", "netraid-" + w.id, "--initial-cluster-state", "new",
		"--heartbeat-interval", fmt.Sprint(w.o.Heartbeat.Milliseconds()),
		"--election-timeout", fmt.Sprint(w.o.Election.Milliseconds()),
		// A partitioned member that comes back does not depose a
		// working leader (etcd 3.6's default).
		"--pre-vote=true",
		"--enable-v2=false", "--logger", "zap", "--log-outputs", "stderr",
	}
	if tl := w.tls; tl != nil {
		m.args = append(m.args, "--cert-file", tl.ServerCert, "--key-file", tl.ServerKey,
			"--client-cert-auth", "--trusted-ca-file", tl.CA)
	}
	return m
}

// cleanEnv is the environment without ETCD_ and ETCDCTL_ variables,
// which etcd and etcdctl would take as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") && !strings.HasPrefix(kv, "ETCDCTL_") {
			env = append(env, kv)
		}
	}
	return env
}

// start runs the member's etcd in its namespace; it does not wait.
func (m *EtcdMember) start() error {
	logf, err := os.OpenFile(m.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	full := NetnsArgv(m.Netns, append([]string{"etcd"}, m.args...)...)
	fmt.Fprintf(logf, "=== start %v\n", full)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (a terminal's ^C goes to the test), and
	// killed if the test process dies without its cleanups (a test
	// time-out): it would hold its tmpfs data otherwise.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd member %s: %w", m.Name, err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(m.done) }()
	return nil
}

// Running reports whether the member's process is alive.
func (m *EtcdMember) Running() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// kill ends the member with SIGKILL, as a dying machine would, and waits.
func (m *EtcdMember) kill() {
	if !m.Running() {
		return
	}
	m.cmd.Process.Kill()
	<-m.done
}

// Tail returns the end of the member's log, for failure messages.
func (m *EtcdMember) Tail() string {
	b, _ := os.ReadFile(m.Log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (w *Witness) cleanup() {
	for _, m := range w.Members {
		if m != nil {
			m.kill()
		}
	}
	if w.t.Failed() {
		for _, m := range w.Members {
			if m != nil {
				w.t.Logf("--- log of etcd member %s (%s):\n%s", m.Name, m.Addr, m.Tail())
			}
		}
	}
}

// StopMember kills member i (SIGKILL) and waits for it to exit.
func (w *Witness) StopMember(i int) { w.Members[i].kill() }

// StopAll kills every member.
func (w *Witness) StopAll() {
	for _, m := range w.Members {
		m.kill()
	}
}

// StartMember starts member i again on its data. When a quorum of
// members is then running it waits until member i answers a health
// check; otherwise there is nothing it could answer yet, and it returns
// at once.
func (w *Witness) StartMember(i int) {
	w.t.Helper()
	m := w.Members[i]
	if m.Running() {
		w.t.Fatalf("witness: member %s is already running", m.Name)
	}
	if err := m.start(); err != nil {
		w.t.Fatal(err)
	}
	if w.running() > len(w.Members)/2 {
		w.waitHealthy([]*EtcdMember{m}, time.Minute)
	}
}

// StartAll starts every stopped member, in parallel, and waits until
// all answer a health check.
func (w *Witness) StartAll() {
	w.t.Helper()
	for _, m := range w.Members {
		if !m.Running() {
			if err := m.start(); err != nil {
				w.t.Fatal(err)
			}
		}
	}
	w.waitHealthy(w.Members, time.Minute)
}

func (w *Witness) running() int {
	n := 0
	for _, m := range w.Members {
		if m.Running() {
			n++
		}
	}
	return n
}

// waitHealthy polls `etcdctl endpoint health` from the switch namespace
// until every member of ms answers, failing at once if one exits.
func (w *Witness) waitHealthy(ms []*EtcdMember, timeout time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range ms {
			if !m.Running() {
				w.t.Fatalf("witness: etcd member %s exited:\n%s", m.Name, m.Tail())
			}
		}
		out, err := w.etcdctl(w.Switch, w.endpoints(ms), "--dial-timeout=1s", "--command-timeout=2s", "endpoint", "health")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("witness: timed out after %v waiting for etcd members %s to be healthy: %v\n%s", timeout, w.endpoints(ms), err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Etcdctl runs etcdctl (API v3) in machine m's namespace against the
// witness's endpoints, with the client certificate when the members use
// TLS. A nil m runs it from the switch namespace, which CutNode never
// cuts. Flags in args come after the defaults and override them
// (--dial-timeout=1s, --command-timeout=3s); an --endpoints=URLS in args
// replaces the witness's endpoints (to ask one member).
func (w *Witness) Etcdctl(m *Machine, args ...string) (string, error) {
	ns := w.Switch
	if m != nil {
		w.t.Helper()
		w.port(m)
		ns = m.Name
	}
	endpoints := w.endpoints(w.Members)
	for _, a := range args {
		if strings.HasPrefix(a, "--endpoints=") {
			endpoints = ""
		}
	}
	args = append([]string{"--dial-timeout=1s", "--command-timeout=3s"}, args...)
	return w.etcdctl(ns, endpoints, args...)
}

// etcdctl runs etcdctl in namespace ns, against endpoints unless empty.
func (w *Witness) etcdctl(ns, endpoints string, args ...string) (string, error) {
	full := []string{"netns", "exec", ns, "etcdctl"}
	if endpoints != "" {
		full = append(full, "--endpoints="+endpoints)
	}
	if tl := w.tls; tl != nil {
		full = append(full, "--cacert="+tl.CA, "--cert="+tl.Cert, "--key="+tl.Key)
	}
	full = append(full, args...)
	// etcdctl bounds its own requests; this only catches a hang.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Env = append(cleanEnv(), "ETCDCTL_API=3")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("etcdctl %s (in %s): %v\n%s%s", strings.Join(args, " "), ns, err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Leader returns the index of the member that leads, as the running
// members that are not cut off report it, waiting up to a minute for
// them to agree on one.
func (w *Witness) Leader() int {
	w.t.Helper()
	var last string
	deadline := time.Now().Add(time.Minute)
	for {
		if i, why := w.leader(); i >= 0 {
			return i
		} else {
			last = why
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("witness: no leader after a minute: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leader asks each running member that is not cut off who leads; -1 and
// why when they do not all name the same one of them.
func (w *Witness) leader() (int, string) {
	var up []*EtcdMember
	for _, m := range w.Members {
		if m.Running() && !m.cut {
			up = append(up, m)
		}
	}
	if len(up) == 0 {
		return -1, "no member is running and reachable"
	}
	out, err := w.etcdctl(w.Switch, w.endpoints(up), "--dial-timeout=1s", "--command-timeout=2s", "endpoint", "status", "-w", "json")
	if err != nil {
		return -1, err.Error()
	}
	var sts []struct {
		Endpoint string
		Status   struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
			} `json:"header"`
			Leader uint64 `json:"leader"`
		}
	}
	if err := json.Unmarshal([]byte(out), &sts); err != nil {
		return -1, fmt.Sprintf("endpoint status: %v: %s", err, out)
	}
	ids := map[uint64]int{}
	for _, s := range sts {
		for i, m := range w.Members {
			if m.ClientURL == s.Endpoint {
				ids[s.Status.Header.MemberID] = i
			}
		}
	}
	leader := -1
	for _, s := range sts {
		i, ok := ids[s.Status.Leader]
		if !ok || leader >= 0 && i != leader {
			return -1, "the members do not agree on a running leader: " + out
		}
		leader = i
	}
	return leader, ""
}
