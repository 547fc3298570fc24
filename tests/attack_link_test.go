package tests

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/pki"
	"github.com/netraid/netraid/repl"
	"github.com/netraid/netraid/tests/harness"
)

// attempt is what the link attacker (TestHelperLinkAttacker) tried and
// got: each error's text, "" where the step succeeded.
type attempt struct {
	Hello string `json:"hello"` // a hello as the primary (repl.Connect)
	Plain string `json:"plain"` // a plain NBD open of the replication export
	List  string `json:"list"`  // nbdinfo --list of the replication port
}

// attack runs the attacker in machine ns (a namespace name) against
// target, with the credentials env gives it, and returns what it got.
func attack(t *testing.T, ns, target string, env ...string) attempt {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^TestHelperLinkAttacker$", "-test.count=1")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=link-attacker", "NETRAID_ATTACK_TARGET=" + target}, env...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the attacker: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "ATTEMPT "); ok {
			var a attempt
			if err := json.Unmarshal([]byte(rest), &a); err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	t.Fatalf("the attacker said nothing:\n%s", out)
	return attempt{}
}

// TestHelperLinkAttacker is the intruder the link attack tests run in a
// machine's namespace: it connects to a secondary's replication port and
// tries a hello as a primary (with whatever secret or certificate it is
// given), a plain open of the replication export, and the export list;
// it prints what it got.
func TestHelperLinkAttacker(t *testing.T) {
	if os.Getenv(helperEnv) != "link-attacker" {
		t.Skip("the intruder of the link attack tests, run in a test machine's namespace")
	}
	target := os.Getenv("NETRAID_ATTACK_TARGET")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o := repl.DialOptions{Timeout: 5 * time.Second, Hello: repl.Hello{Proto: repl.Proto, Name: "vol", Role: meta.Primary,
		Node: os.Getenv("NETRAID_ATTACK_NAME"), Size: 1 << 20, SetUUID: "00000000-0000-0000-0000-000000000000"}}
	if path := os.Getenv("NETRAID_ATTACK_SECRET"); path != "" {
		s, err := repl.ReadSecret(path, os.Getenv("NETRAID_ATTACK_NAME"), os.Getenv("NETRAID_ATTACK_PEER"))
		if err != nil {
			t.Fatal(err)
		}
		o.Secret = &s
	}
	var tc *tls.Config
	if dir := os.Getenv("NETRAID_ATTACK_TLS"); dir != "" {
		var err error
		if os.Getenv("NETRAID_ATTACK_TLS_CLIENT") != "" {
			tc, err = pki.ClientTLS(dir)
		} else {
			tc, err = pki.PeerTLS(dir, os.Getenv("NETRAID_ATTACK_TLS_VOLUME"))
		}
		if err != nil {
			t.Fatal(err)
		}
		// An intruder takes any server: what it is refused for is the
		// server's doing, not its own check.
		tc.InsecureSkipVerify, tc.VerifyConnection, tc.VerifyPeerCertificate = true, nil, nil
		o.TLS = tc
	}
	var a attempt
	var d net.Dialer
	if c, err := d.DialContext(ctx, "tcp", target); err != nil {
		a.Hello = err.Error()
	} else if l, err := repl.Connect(ctx, c, o); err != nil {
		a.Hello = err.Error()
	} else {
		l.Close()
	}
	if c, err := d.DialContext(ctx, "tcp", target); err != nil {
		a.Plain = err.Error()
	} else if cl, err := nbd.NewClient(ctx, c, nbd.ClientOptions{Export: repl.Export, TLS: tc, Timeout: 5 * time.Second}); err != nil {
		a.Plain = err.Error()
	} else {
		cl.Close()
	}
	out, err := exec.CommandContext(ctx, "nbdinfo", "--list", "nbd://"+target).CombinedOutput()
	a.List = strings.TrimSpace(string(out))
	if err == nil {
		a.List = "listed: " + a.List
	}
	b, _ := json.Marshal(a)
	fmt.Printf("ATTEMPT %s\n", b)
}

// secrets says whether any of the attacker's answers gives the volume
// away: its name, set, size or generations.
func secrets(t *testing.T, a attempt, st node.Status) {
	t.Helper()
	for _, what := range []string{a.Hello, a.Plain, a.List} {
		for _, secret := range []string{`"vol"`, "vol,", st.SetUUID, strconv.FormatInt(st.Size, 10),
			strconv.FormatUint(st.Gens.Current, 10), fmt.Sprintf("%016X", st.Gens.Current)} {
			if secret != "" && strings.Contains(what, secret) {
				t.Fatalf("an unauthenticated caller was told %q: %s", secret, what)
			}
		}
	}
}

// undisturbed checks that the pair's link is as it was.
func undisturbed(t *testing.T, p *harness.Pair, before node.Status) {
	t.Helper()
	st, err := p.B.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Peer == nil || st.Peer.State != before.Peer.State || st.Peer.Verdict != before.Peer.Verdict || st.DiskState != before.DiskState ||
		st.Gens != before.Gens {
		t.Fatalf("the secondary's link changed: %+v (%s), was %+v (%s)", st.Peer, st.DiskState, before.Peer, before.DiskState)
	}
	if sa, err := p.A.Status(); err != nil || !harness.InSync(sa) {
		t.Fatalf("the primary is no longer in sync with its peer: %v %+v", err, sa.Peer)
	}
}

// TestAttackLinkSecret: against a pair authenticated by its shared secret
// (the default), an intruder on the primary's own machine (so that the
// address check lets it by) with no secret, or with another secret, is
// refused before anything is said: no export is listed, nothing opened,
// nothing of the volume told, and the real link is undisturbed.
func TestAttackLinkSecret(t *testing.T) {
	requireFS(t)
	p := harness.NewPair(t, harness.PairOptions{})
	before := inSyncSecondary(t, p)
	target := fmt.Sprintf("%s:%d", p.MB.Addr, harness.PeerPort)
	wrong := filepath.Join(p.Dir, "wrong.secret")
	if err := os.WriteFile(wrong, []byte("not the pair's secret, but long enough\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"no secret", nil},
		{"another secret", []string{"NETRAID_ATTACK_SECRET=" + wrong, "NETRAID_ATTACK_NAME=a", "NETRAID_ATTACK_PEER=b"}},
		{"the secret under another name", []string{"NETRAID_ATTACK_SECRET=" + harness.LinkSecret(t, p.Dir), "NETRAID_ATTACK_NAME=c", "NETRAID_ATTACK_PEER=b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := attack(t, p.MA.Name, target, tc.env...)
			t.Logf("hello: %s\nplain open: %s\nlist: %s", a.Hello, a.Plain, a.List)
			if a.Hello == "" || a.Plain == "" || strings.HasPrefix(a.List, "listed") {
				t.Fatalf("the intruder got in: %+v", a)
			}
			secrets(t, a, before)
			undisturbed(t, p, before)
		})
	}
}

// TestAttackPrimaryPort: a hello to the primary's own replication port
// (from its peer's machine, so that the address check lets it by), with
// the pair's secret and the peer's name, is refused (a primary takes no
// link) and changes nothing the primary knows of its own link.
func TestAttackPrimaryPort(t *testing.T) {
	requireFS(t)
	p := harness.NewPair(t, harness.PairOptions{})
	before := inSyncSecondary(t, p)
	a := attack(t, p.MB.Name, fmt.Sprintf("%s:%d", p.MA.Addr, harness.PeerPort),
		"NETRAID_ATTACK_SECRET="+harness.LinkSecret(t, p.Dir), "NETRAID_ATTACK_NAME=b", "NETRAID_ATTACK_PEER=a")
	t.Logf("hello to the primary's own port: %s", a.Hello)
	if a.Hello == "" {
		t.Fatal("the primary took a link")
	}
	undisturbed(t, p, before)
	if st, _ := p.A.Status(); st.Peer.State != "connected" || len(st.Problems) > 0 {
		t.Fatalf("the primary's view of its link changed: %+v, problems %q", st.Peer, st.Problems)
	}
}

// TestAttackLinkAddress: a caller holding the pair's secret and the
// primary's name, but from a third machine, is refused by the
// secondary's address check; the link is undisturbed.
func TestAttackLinkAddress(t *testing.T) {
	requireFS(t)
	p := harness.NewPair(t, harness.PairOptions{})
	before := inSyncSecondary(t, p)
	c := harness.ThirdMachine(t, p.MB)
	a := attack(t, c.Name, fmt.Sprintf("%s:%d", p.MB.Addr, harness.PeerPort),
		"NETRAID_ATTACK_SECRET="+harness.LinkSecret(t, p.Dir), "NETRAID_ATTACK_NAME=a", "NETRAID_ATTACK_PEER=b")
	t.Logf("hello from a third machine with the secret: %s", a.Hello)
	if a.Hello == "" {
		t.Fatal("a caller from another address was taken as the primary")
	}
	secrets(t, a, before)
	undisturbed(t, p, before)
}

// TestAttackLinkCertificates: against a pair on mutual TLS, a
// certificate of another volume, a client certificate, and a third
// node's certificate of the same volume are each refused on the link;
// the link is undisturbed.
func TestAttackLinkCertificates(t *testing.T) {
	requirePair(t)
	dir := t.TempDir()
	d := makePKI(t, dir, "vol")
	third := filepath.Join(dir, "third")
	harness.Run(t, harness.Binary(t), "certs", "issue", "c", "--ca", d.ca, "--out", third)
	otherVol := filepath.Join(dir, "other-volume")
	harness.Run(t, harness.Binary(t), "certs", "issue", "a", "--ca", d.ca, "--volume", "other", "--out", otherVol)
	p := tlsPair(t, "vol", []string{"--tls-dir", d.a, "--peer-name", "b"}, []string{"--tls-dir", d.b, "--peer-name", "a"})
	p.A.CLI("promote")
	harness.WaitInSync(t, p.A, 2*time.Minute)
	before, err := p.B.Status()
	if err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("%s:%d", p.MB.Addr, harness.PeerPort)
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"another volume's node", []string{"NETRAID_ATTACK_TLS=" + otherVol, "NETRAID_ATTACK_TLS_VOLUME=other", "NETRAID_ATTACK_NAME=a"}},
		{"a client's certificate", []string{"NETRAID_ATTACK_TLS=" + d.alice, "NETRAID_ATTACK_TLS_CLIENT=1", "NETRAID_ATTACK_NAME=a"}},
		{"a third node of the volume", []string{"NETRAID_ATTACK_TLS=" + third, "NETRAID_ATTACK_TLS_VOLUME=vol", "NETRAID_ATTACK_NAME=c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := attack(t, p.MA.Name, target, tc.env...)
			t.Logf("hello: %s", a.Hello)
			if a.Hello == "" || a.Plain == "" {
				t.Fatalf("the intruder got in: %+v", a)
			}
			secrets(t, a, before)
			undisturbed(t, p, before)
		})
	}
}

// inSyncSecondary promotes A, waits for the pair to be in sync and returns
// what B says of itself then: what an attack must leave unchanged.
func inSyncSecondary(t *testing.T, p *harness.Pair) node.Status {
	t.Helper()
	promoteA(t, p)
	harness.WaitInSync(t, p.A, 2*time.Minute)
	before, err := p.B.Status()
	if err != nil {
		t.Fatal(err)
	}
	return before
}

// TestAttackRevokedPeer: a node certificate revoked with 'certs revoke'
// and the list copied into the other node's --tls-dir ends the link
// already open, without a restart, and the revoked node cannot link
// again. On the secondary the replication port's watcher closes the
// revoked primary's link; on the primary the keepalive drops the revoked
// secondary's.
func TestAttackRevokedPeer(t *testing.T) {
	requirePair(t)
	for _, tc := range []struct {
		name    string
		revoked string // the node whose certificate is revoked
	}{
		{"the primary's certificate, on the secondary", "a"},
		{"the secondary's certificate, on the primary", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := makePKI(t, dir, "vol")
			p := tlsPair(t, "vol", []string{"--tls-dir", d.a, "--peer-name", "b"}, []string{"--tls-dir", d.b, "--peer-name", "a"})
			inSyncSecondary(t, p)
			watcher, watcherDir := p.B, d.b
			if tc.revoked == "b" {
				watcher, watcherDir = p.A, d.a
			}
			harness.Run(t, harness.Binary(t), "certs", "revoke", tc.revoked, "--ca", d.ca)
			copyInto(t, watcherDir, filepath.Join(d.ca, pki.CRLFile))
			// The primary dials again at once: the revoked node's TLS
			// handshake is refused, and the link stays down.
			st := p.A.WaitStatus(time.Minute, "the link is cut and its reconnection refused", func(st node.Status) bool {
				return st.Peer != nil && st.Peer.State == "standalone" && strings.Contains(st.Peer.LastError, "TLS failed")
			})
			t.Logf("the primary's link: %s", st.Peer.LastError)
			log, _ := os.ReadFile(watcher.Log)
			if !strings.Contains(string(log), "revoked") {
				t.Fatalf("%s: the open link was not closed for the revocation:\n%s", tc.name, watcher.Tail())
			}
			if !p.A.Running() || !p.B.Running() {
				t.Fatal("a daemon stopped: a revocation ends links, not daemons")
			}
		})
	}
}
