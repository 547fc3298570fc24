package tests

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/tests/harness"
)

func requireWitness(t *testing.T) {
	t.Helper()
	harness.RequireRoot(t, "ip", "etcd", "etcdctl", "bash", "timeout")
}

// machine is a machine of the test with its short name, for messages.
type machine struct {
	*harness.Machine
	name string
}

// put writes key=val through m's endpoints and fails the test if it
// cannot.
func put(t *testing.T, w *harness.Witness, m machine, key, val string) {
	t.Helper()
	if _, err := w.Etcdctl(m.Machine, "put", key, val); err != nil {
		t.Fatalf("put from %s: %v", m.name, err)
	}
}

// get reads key through m's endpoints (a linearizable read, which needs
// a quorum) and fails the test unless it holds val.
func get(t *testing.T, w *harness.Witness, m machine, key, val string) {
	t.Helper()
	out, err := w.Etcdctl(m.Machine, "get", "--print-value-only", key)
	if err != nil {
		t.Fatalf("get from %s: %v", m.name, err)
	}
	if got := strings.TrimSpace(out); got != val {
		t.Fatalf("get %s from %s: %q, want %q", key, m.name, got, val)
	}
}

// putFails asserts that a put from m fails: etcdctl's own time-outs
// (1s to dial, 1s for the request) bound how long that takes.
func putFails(t *testing.T, w *harness.Witness, m machine, why string) {
	t.Helper()
	start := time.Now()
	if _, err := w.Etcdctl(m.Machine, "--command-timeout=1s", "put", "refused", "x"); err == nil {
		t.Fatalf("a put from %s succeeded with %s", m.name, why)
	} else {
		t.Logf("with %s a put from %s fails after %v: %s", why, m.name, time.Since(start).Round(time.Millisecond), firstLine(err))
	}
}

// waitPut waits until a put from m succeeds: after a heal or a new
// election the client needs a moment to find a member that serves.
func waitPut(t *testing.T, w *harness.Witness, m machine, key, val, what string) {
	t.Helper()
	start := time.Now()
	harness.WaitFor(t, time.Minute, "a put from "+m.name+" "+what, func() bool {
		_, err := w.Etcdctl(m.Machine, "--command-timeout=2s", "put", key, val)
		return err == nil
	})
	t.Logf("a put from %s succeeds %s, after %v", m.name, what, time.Since(start).Round(time.Millisecond))
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.LastIndex(strings.TrimSpace(s), "\n"); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}

// TestWitness: a three-member etcd witness serves both machines; each
// path (a–etcd, b–etcd, a–b) is cut and healed alone; one member down
// leaves a quorum, two lose it, and the cluster comes back.
func TestWitness(t *testing.T) {
	requireWitness(t)
	ma, mb := harness.MachinePair(t)
	a, b := machine{ma, "a"}, machine{mb, "b"}
	// NewWitness logs how long the cluster took to come up.
	w := harness.NewWitness(t, harness.WitnessOptions{Members: 3}, ma, mb)
	if w.Endpoints(ma) == "" || strings.Count(w.Endpoints(mb), ",") != 2 {
		t.Fatalf("endpoints %q for a, %q for b: want three", w.Endpoints(ma), w.Endpoints(mb))
	}

	put(t, w, a, "from-a", "1")
	put(t, w, b, "from-b", "2")
	get(t, w, b, "from-a", "1")
	get(t, w, a, "from-b", "2")

	// The link is the machines' only path to each other.
	if !a.Reaches(b.Addr, 1) {
		t.Fatalf("a does not reach b (%s) over their link", b.Addr)
	}
	if a.Reaches(w.Addr(mb), 1) {
		t.Fatalf("a reaches b's witness address %s: the witness network joins the machines", w.Addr(mb))
	}

	// a cut from etcd: a's requests fail, b's work, the link stays.
	w.CutNode(ma)
	putFails(t, w, a, "a cut from etcd")
	put(t, w, b, "during-cut", "3")
	if !a.Reaches(b.Addr, 1) {
		t.Fatal("cutting a from etcd cut the link too")
	}
	w.HealNode(ma)
	waitPut(t, w, a, "after-heal", "4", "once healed")
	get(t, w, a, "during-cut", "3")

	// b cut from etcd, the same.
	w.CutNode(mb)
	putFails(t, w, b, "b cut from etcd")
	put(t, w, a, "during-cut-b", "5")
	w.HealNode(mb)
	waitPut(t, w, b, "after-heal-b", "6", "once healed")

	// The link cut: both still reach etcd.
	a.LinkDown(t)
	if a.Reaches(b.Addr, 1) {
		t.Fatal("a reaches b with the link down")
	}
	put(t, w, a, "link-cut-a", "7")
	put(t, w, b, "link-cut-b", "8")
	a.LinkUp(t)
	if !a.Reaches(b.Addr, 1) {
		t.Fatal("a does not reach b with the link back up")
	}

	// A partitioned member, the leader: the other two elect a new one.
	leader := w.Leader()
	w.CutMember(leader)
	if _, err := w.Etcdctl(nil, "--endpoints="+w.Members[leader].ClientURL, "--command-timeout=1s", "put", "cut", "x"); err == nil {
		t.Fatalf("a put through the partitioned member m%d succeeded", leader)
	}
	waitPut(t, w, a, "partitioned", "9", "with the leader m"+strconv.Itoa(leader)+" partitioned")
	w.HealMember(leader)

	// One member of three dead, the leader again: a quorum is left.
	first := w.Leader()
	w.StopMember(first)
	waitPut(t, w, a, "one-down", "10", "with the leader m"+strconv.Itoa(first)+" dead")
	put(t, w, b, "one-down-b", "11")
	second := (first + 1) % 3
	w.StopMember(second)
	putFails(t, w, a, "two members of three dead")
	putFails(t, w, b, "two members of three dead")

	w.StartMember(first)
	waitPut(t, w, a, "quorum-back", "12", "with two members back")
	get(t, w, b, "one-down-b", "11")
	w.StartMember(second)
	get(t, w, a, "quorum-back", "12")

	w.StopAll()
	putFails(t, w, a, "every member dead")
}

// TestWitnessTLS: members that require a client certificate serve one
// from their CA and refuse a client without one.
func TestWitnessTLS(t *testing.T) {
	requireWitness(t)
	ma, mb := harness.MachinePair(t)
	a, b := machine{ma, "a"}, machine{mb, "b"}
	w := harness.NewWitness(t, harness.WitnessOptions{Members: 1, TLS: true}, ma, mb)
	tl := w.TLS()
	if tl == nil || !strings.HasPrefix(w.Endpoints(ma), "https://") {
		t.Fatalf("TLS %+v, endpoints %s: want https", tl, w.Endpoints(ma))
	}
	put(t, w, a, "tls", "1")
	get(t, w, b, "tls", "1")
	// Without a client certificate: refused.
	_, err := harness.Try("ip", "netns", "exec", ma.Name, "etcdctl", "--endpoints="+w.Endpoints(ma),
		"--cacert="+tl.CA, "--dial-timeout=1s", "--command-timeout=3s", "put", "no-cert", "x")
	if err == nil {
		t.Fatal("a put without a client certificate succeeded")
	}
	t.Logf("without a client certificate: %s", firstLine(err))
	// ... at the handshake, as the member says, not for some other reason.
	if log := w.Members[0].Tail(); !strings.Contains(log, "client didn't provide a certificate") {
		t.Fatalf("the member's log does not say it refused a client without a certificate:\n%s", log)
	}
}

// TestWitnessPair: a pair made with NoStart gets a witness on its
// machines before its nodes start.
func TestWitnessPair(t *testing.T) {
	requireWitness(t)
	harness.RequireRoot(t, "losetup")
	p := harness.NewPair(t, harness.PairOptions{NoStart: true})
	if p.A.Running() || p.B.Running() {
		t.Fatal("NoStart started the nodes")
	}
	w := harness.NewWitness(t, harness.WitnessOptions{Members: 1}, p.MA, p.MB)
	p.Start()
	if !p.A.Running() || !p.B.Running() {
		t.Fatal("Start did not start the nodes")
	}
	put(t, w, machine{p.MA, "a"}, "pair", "1")
	get(t, w, machine{p.MB, "b"}, "pair", "1")
}
