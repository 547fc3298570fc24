package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// pkiDirs are the certificate directories of one volume's CA.
type pkiDirs struct {
	ca, a, b, alice string
}

// makePKI sets up a volume's certificates with the CLI, the way the
// documentation says: a CA, a certificate per node, one per client.
func makePKI(t *testing.T, dir, volume string) pkiDirs {
	t.Helper()
	ca := filepath.Join(dir, "ca")
	certs := func(args ...string) {
		harness.Run(t, harness.Binary(t), append([]string{"certs"}, append(args, "--ca", ca)...)...)
	}
	certs("init", "--volume", volume)
	certs("issue", "a")
	certs("issue", "b")
	certs("client", "alice")
	return pkiDirs{ca: ca, a: filepath.Join(ca, "nodes", "a"), b: filepath.Join(ca, "nodes", "b"), alice: filepath.Join(ca, "clients", "alice")}
}

// serveNode creates a volume over two sparse files and serves it on TCP
// loopback with args; it returns the node and the export's address.
func serveNode(t *testing.T, name string, args ...string) (*harness.Node, string) {
	t.Helper()
	dir := t.TempDir()
	var disks []string
	for i := range 2 {
		p := filepath.Join(dir, fmt.Sprintf("disk%d", i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 64<<20); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, p)
	}
	n := harness.NewNode(t, name, dir, nil, disks, args...)
	n.CLI(append([]string{"create", "--name", name}, disks...)...)
	n.Socket = "127.0.0.1:0"
	n.Start()
	st, err := n.Status()
	if err != nil || st.Export == nil {
		t.Fatalf("status: %v %+v", err, st)
	}
	return n, st.Export.Address
}

// qemuIO runs qemu-io on an NBD export over TCP, with the client
// certificates in certs if not empty.
func qemuIO(addr, export, certs string, cmds ...string) (string, error) {
	host, port, _ := strings.Cut(addr, ":")
	opts := fmt.Sprintf("driver=nbd,server.type=inet,server.host=%s,server.port=%s,export=%s", host, port, export)
	var args []string
	if certs != "" {
		args = append(args, "--object", "tls-creds-x509,id=tls0,dir="+certs+",endpoint=client")
		opts += ",tls-creds=tls0"
	}
	args = append(args, "--image-opts", opts)
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	return harness.Try("qemu-io", args...)
}

// TestTLSExportClients: nbdinfo and qemu-io reach a --tls-required export
// over TLS with a client certificate and read and write it; without TLS,
// without a certificate, or with one of another CA they are refused
// before any data moves, and no export is listed in plaintext.
func TestTLSExportClients(t *testing.T) {
	requireTools(t, "nbdinfo", "qemu-io")
	dir := t.TempDir()
	d := makePKI(t, dir, "sec")
	eve := makePKI(t, filepath.Join(dir, "elsewhere"), "sec") // another CA, same volume name
	n, addr := serveNode(t, "sec", "--tls-dir", d.a, "--tls-required")
	uri := func(export, certs string) string {
		return fmt.Sprintf("nbds://%s/%s?tls-certificates=%s", addr, export, certs)
	}

	out := harness.Run(t, "nbdinfo", "--json", uri("sec", d.alice))
	var info struct {
		TLS     bool `json:"TLS"`
		Exports []struct {
			Name string `json:"export-name"`
			Size int64  `json:"export-size"`
		} `json:"exports"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("nbdinfo --json: %v\n%s", err, out)
	}
	if !info.TLS || len(info.Exports) != 1 || info.Exports[0].Name != "sec" || info.Exports[0].Size <= 0 {
		t.Fatalf("nbdinfo over TLS: %+v", info)
	}
	if out, err := qemuIO(addr, "sec", d.alice, "write -P 0x5c 1M 2M", "write -P 0x17 100 5000", "aio_write -P 0x21 8M 64k", "aio_flush", "flush"); err != nil {
		t.Fatalf("qemu-io write over TLS: %v", err)
	} else if strings.Contains(out, "failed") {
		t.Fatalf("qemu-io write over TLS:\n%s", out)
	}
	out, err := qemuIO(addr, "sec", d.alice, "read -P 0x5c 1M 100", "read -P 0x17 100 5000", "read -P 0 5100 1043476", "read -P 0x21 8M 64k")
	if err != nil || strings.Contains(out, "failed") || strings.Count(out, "read ") != 4 {
		t.Fatalf("qemu-io read back over TLS: %v\n%s", err, out)
	}
	list := harness.Run(t, "nbdinfo", "--list", "--json", uri("", d.alice))
	if !strings.Contains(list, `"sec"`) {
		t.Fatalf("nbdinfo --list over TLS does not show the export:\n%s", list)
	}

	before, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	noCert := filepath.Join(dir, "no-cert")
	mixed := filepath.Join(dir, "mixed") // this CA, eve's certificate
	copyInto(t, noCert, filepath.Join(d.alice, "ca-cert.pem"))
	copyInto(t, mixed, filepath.Join(d.alice, "ca-cert.pem"), filepath.Join(eve.alice, "client-cert.pem"), filepath.Join(eve.alice, "client-key.pem"))
	plain := "nbd://" + addr
	for _, tc := range []struct {
		name string
		run  func() (string, error)
	}{
		{"nbdinfo without TLS", func() (string, error) { return harness.Try("nbdinfo", plain+"/sec") }},
		{"nbdinfo --list without TLS", func() (string, error) { return harness.Try("nbdinfo", "--list", "--json", plain+"/") }},
		{"nbdinfo without a client certificate", func() (string, error) { return harness.Try("nbdinfo", uri("sec", noCert)) }},
		{"nbdinfo with the certificates of another CA", func() (string, error) { return harness.Try("nbdinfo", uri("sec", eve.alice)) }},
		{"nbdinfo with a certificate of another CA", func() (string, error) { return harness.Try("nbdinfo", uri("sec", mixed)) }},
		{"nbdinfo for another export name", func() (string, error) { return harness.Try("nbdinfo", uri("other", d.alice)) }},
		{"qemu-io without TLS", func() (string, error) { return qemuIO(addr, "sec", "", "write -P 0xee 0 64k") }},
		{"qemu-io with the certificates of another CA", func() (string, error) { return qemuIO(addr, "sec", eve.alice, "write -P 0xee 0 64k") }},
	} {
		out, err := tc.run()
		if err == nil {
			t.Errorf("%s: not refused:\n%s", tc.name, out)
			continue
		}
		if strings.Contains(out, `"sec"`) || strings.Contains(out, "export-size") {
			t.Errorf("%s: refused, but told about the export:\n%s", tc.name, out)
		}
		t.Logf("%s: refused: %s", tc.name, lastLine(err.Error()))
	}
	after, err := n.Status()
	if err != nil {
		t.Fatal(err)
	}
	if after.Export.BytesWritten != before.Export.BytesWritten || after.Export.BytesRead != before.Export.BytesRead {
		t.Fatalf("refused clients moved data: %+v, then %+v", before.Export, after.Export)
	}
	n.WaitLog(t, 10*time.Second, "the node logged fewer than 3 refusals", func(log string) bool {
		return strings.Count(log, `msg="client refused"`) >= 3
	})
	log, _ := os.ReadFile(n.Log)
	c := strings.Count(string(log), `msg="client refused"`)
	// Status says the export requires TLS and counts what it refused.
	if x := after.Export; x.TLS != "required" || x.TLSRefused-before.Export.TLSRefused != int64(c) {
		t.Fatalf("status: tls %q, %d TLS refusals counted; want required and the %d the log shows", x.TLS, x.TLSRefused-before.Export.TLSRefused, c)
	}
	if !strings.Contains(string(log), "tls_client=alice") {
		t.Fatalf("the log does not name the client certificate:\n%s", n.Tail())
	}
}

// TestReadOnlyExport: --read-only is advertised, clients that ask to write
// are refused, and the server refuses a write from a client that sends
// one anyway; the data stays as it was.
func TestReadOnlyExport(t *testing.T) {
	requireTools(t, "nbdinfo", "qemu-io")
	n, addr := serveNode(t, "ro", "--read-only")
	uri := "nbd://" + addr + "/ro"
	if out := harness.Run(t, "nbdinfo", "--json", uri); !strings.Contains(out, `"is_read_only": true`) {
		t.Fatalf("nbdinfo does not show the export read-only:\n%s", out)
	}
	if out, err := harness.Try("qemu-io", "-f", "raw", uri, "-c", "write -P 1 0 4k"); err == nil && !strings.Contains(out, "failed") {
		t.Fatalf("qemu-io wrote to a read-only export:\n%s", out)
	}
	r := dialRaw(t, addr)
	r.open("ro")
	r.request(cmdWrite, 7, 0, 4096, make([]byte, 4096))
	if errno, _ := r.reply(); errno != 1 { // EPERM
		t.Fatalf("a write to the read-only export: errno %d, want EPERM", errno)
	}
	r.request(cmdRead, 8, 0, 4096, nil)
	if errno, _ := r.reply(); errno != 0 {
		t.Fatalf("a read after the refused write: errno %d", errno)
	}
	if out := harness.Run(t, "qemu-io", "-r", "-f", "raw", uri, "-c", "read -P 0 0 64k"); strings.Contains(out, "failed") {
		t.Fatalf("the read-only export changed:\n%s", out)
	}
	st, err := n.Status()
	if err != nil || !st.Export.ReadOnly || st.Export.BytesWritten != 0 {
		t.Fatalf("status %v: %+v", err, st.Export)
	}
}

// tlsPair is two machines whose nodes run with their own arguments.
func tlsPair(t *testing.T, nameB string, argsA, argsB []string) *harness.Pair {
	t.Helper()
	dir := t.TempDir()
	p := &harness.Pair{Dir: dir}
	p.MA, p.MB = harness.MachinePair(t)
	mk := func(m, other *harness.Machine, name, volume string, extra []string) *harness.Node {
		var disks []string
		for i := range 2 {
			d, _ := harness.LoopDevice(t, dir, fmt.Sprintf("%s-d%d", name, i), 128<<20)
			disks = append(disks, d)
		}
		args := append([]string{
			"--listen-peer", fmt.Sprintf("%s:%d", m.Addr, harness.PeerPort),
			"--peer", fmt.Sprintf("%s:%d", other.Addr, harness.PeerPort),
			"--peer-timeout", "2s",
			"--name", name,
		}, extra...)
		if len(extra) == 0 {
			// A node without TLS authenticates with the pair's secret.
			other := map[string]string{"a": "b", "b": "a"}[name]
			args = append(args, harness.LinkArgs(t, dir, name, other)...)
		}
		n := harness.NewNode(t, name, dir, m, disks, args...)
		n.CLI(append([]string{"create", "--name", volume}, disks...)...)
		return n
	}
	p.A = mk(p.MA, p.MB, "a", "vol", argsA)
	p.B = mk(p.MB, p.MA, "b", nameB, argsB)
	p.A.Start()
	p.B.Start()
	return p
}

// TestTLSMirror: with node certificates of the volume's CA the mirror
// runs over TLS: it syncs, mirrors a verifying workload, survives a link
// cut and resyncs, and both copies end identical. The export lets fio in
// without TLS (--tls-optional): its unix socket is the machine's own.
func TestTLSMirror(t *testing.T) {
	requirePair(t)
	d := makePKI(t, t.TempDir(), "vol")
	p := tlsPair(t, "vol", []string{"--tls-dir", d.a, "--tls-optional"}, []string{"--tls-dir", d.b, "--tls-optional"})
	promoteA(t, p)
	load := harness.StartFio(t, p.A.URI("vol"), "--rw=randwrite", "--bs=4k", "--iodepth=8",
		"--size=32M", "--number_ios=12000", "--verify=crc32c", "--do_verify=1", "--rate_iops=2000")
	st := p.A.WaitStatus(time.Minute, "writes under way", func(s node.Status) bool { return s.Export != nil && s.Export.BytesWritten > 1<<20 })
	if st.Peer == nil || !st.Peer.TLS || st.Export.TLS != "offered" {
		t.Fatalf("status does not show TLS on the link and offered on the export: peer %+v, export %+v", st.Peer, st.Export)
	}
	p.MA.LinkDown(t)
	p.A.WaitStatus(30*time.Second, "the peer leg failed", func(s node.Status) bool {
		return s.Peer != nil && s.Peer.State != "connected"
	})
	written := p.A.WaitStatus(10*time.Second, "status", func(node.Status) bool { return true }).Export.BytesWritten
	p.A.WaitStatus(time.Minute, "writes with the link down", func(s node.Status) bool {
		return s.Export.BytesWritten > written+1<<20
	})
	p.MA.LinkUp(t)
	load.Wait(t, 5*time.Minute)
	harness.WaitInSync(t, p.A, 2*time.Minute)
	p.A.CLI("demote")
	harness.SameData(t, p.A, p.B)
	logB, _ := os.ReadFile(p.B.Log)
	if c := strings.Count(string(logB), "tls_client=a"); c < 2 {
		t.Fatalf("b's log shows %d replication links from a's certificate, want one per connection:\n%s", c, p.B.Tail())
	}
}

// TestTLSMirrorRefusesWrongPeer: a peer with a certificate of another CA
// or of another volume, or one side without TLS, is refused before any
// data moves: the primary's status names the problem and its log says
// so, and the peer's disks are untouched.
func TestTLSMirrorRefusesWrongPeer(t *testing.T) {
	requirePair(t)
	dir := t.TempDir()
	d := makePKI(t, dir, "vol")
	other := makePKI(t, filepath.Join(dir, "other-ca"), "vol")
	otherVol := filepath.Join(dir, "other-volume")
	harness.Run(t, harness.Binary(t), "certs", "issue", "b", "--ca", d.ca, "--volume", "other", "--out", otherVol)
	tls := func(dir string) []string { return []string{"--tls-dir", dir} }
	for _, tc := range []struct {
		name         string
		nameB        string
		argsA, argsB []string
		want         string
	}{
		{"peer of another CA", "vol", tls(d.a), tls(other.b), "not trusted"},
		{"peer of another volume", "other", tls(d.a), tls(otherVol), `for volume "other"`},
		{"peer without TLS", "vol", tls(d.a), nil, "will not start TLS"},
		{"primary without TLS", "vol", nil, tls(d.b), "requires TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tlsPair(t, tc.nameB, tc.argsA, tc.argsB)
			before := harness.DiskHashes(t, p.B.Disks)
			p.A.CLI("promote")
			st := p.A.WaitStatus(time.Minute, "the peer refused", func(s node.Status) bool {
				return s.Peer != nil && s.Peer.State == "standalone" && strings.Contains(s.Peer.LastError, tc.want)
			})
			if len(st.Problems) == 0 {
				t.Fatalf("status shows no problem: %+v", st)
			}
			t.Logf("refused: %s", st.Peer.LastError)
			p.A.WaitLog(t, 10*time.Second, "a's log does not say the link was refused", func(log string) bool {
				return strings.Contains(log, "replication link refused by TLS")
			})
			if stB, err := p.B.Status(); err != nil || stB.Peer == nil || stB.Peer.State == "connected" {
				t.Fatalf("b's status: %v %+v", err, stB.Peer)
			}
			if tc.argsB != nil {
				p.B.WaitLog(t, 10*time.Second, "b's log does not say it refused a's link", func(log string) bool {
					return strings.Contains(log, `msg="client refused"`)
				})
			}
			p.A.CLI("demote")
			p.B.Stop()
			if after := harness.DiskHashes(t, p.B.Disks); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Fatal("the refused peer's disks were written to")
			}
		})
	}
}

// copyInto copies files into dir, made if need be.
func copyInto(t *testing.T, dir string, files ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// lastLine is what a tool said last: its error message.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
