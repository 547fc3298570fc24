package nbd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/pki"
)

// testPKI is a volume's CA with nodes a and b and clients alice and bob, and
// certificates that must be refused: eve's (another CA) and mallory's
// (another volume, same CA).
type testPKI struct{ dir string }

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	ca, otherCA := p.path("ca"), p.path("other-ca")
	steps := []error{}
	_, err := pki.InitCA(ca, pki.CAOptions{Volume: "vol"})
	steps = append(steps, err)
	_, err = pki.InitCA(otherCA, pki.CAOptions{Volume: "vol"})
	steps = append(steps, err)
	for _, n := range []string{"a", "b"} {
		_, err = pki.IssueNode(ca, p.path(n), n, pki.IssueOptions{})
		steps = append(steps, err)
	}
	for _, n := range []string{"alice", "bob"} {
		_, err = pki.IssueClient(ca, p.path(n), n, pki.IssueOptions{})
		steps = append(steps, err)
	}
	_, err = pki.IssueClient(otherCA, p.path("eve"), "eve", pki.IssueOptions{})
	steps = append(steps, err)
	_, err = pki.IssueClient(ca, p.path("mallory"), "mallory", pki.IssueOptions{Volume: "other"})
	steps = append(steps, err)
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) path(name string) string { return filepath.Join(p.dir, name) }

func (p *testPKI) server(t testing.TB, node string) *tls.Config {
	t.Helper()
	cfg, err := pki.ServerTLS(p.path(node), pki.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// peer is the replication link's TLS configuration of a node directory.
func (p *testPKI) peer(t testing.TB, node string) *tls.Config {
	t.Helper()
	cfg, err := pki.PeerTLS(p.path(node), "vol")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// client is the TLS configuration of a client directory, for a server
// reached as localhost.
func (p *testPKI) client(t testing.TB, name string) *tls.Config {
	t.Helper()
	cfg, err := pki.ClientTLS(p.path(name))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ServerName = "localhost"
	return cfg
}

// logBuffer collects a server's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// TestConformanceTLS runs the Device suite on a client that reaches its
// export through STARTTLS, on a server that requires TLS.
func TestConformanceTLS(t *testing.T) {
	p := newTestPKI(t)
	srv, cli := p.server(t, "a"), p.client(t, "alice")
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		ts := startServer(t, "tcp", ServerOptions{TLS: srv, TLSRequired: true}, Export{Name: "mem", Dev: blockdev.NewMem(size)})
		c := ts.dial(t, ClientOptions{Export: "mem", TLS: cli})
		if !c.TLS() {
			t.Fatal("the client is not on TLS")
		}
		return c
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}

// TestTLSRequiredOptions: before STARTTLS, a server that requires TLS
// answers every option but STARTTLS and ABORT with NBD_REP_ERR_TLS_REQD,
// lists nothing, and ends a connection that sends NBD_OPT_EXPORT_NAME.
func TestTLSRequiredOptions(t *testing.T) {
	p := newTestPKI(t)
	ts := startServer(t, "unix", ServerOptions{TLS: p.server(t, "a"), TLSRequired: true, Hello: (&hooks{}).hello},
		Export{Name: "secret-name", Dev: blockdev.NewMem(expSize)})

	r := ts.raw(t)
	r.greet(clientFixedNewstyle | clientNoZeroes)
	for _, o := range []struct {
		opt  Option
		data []byte
	}{
		{OptList, nil},
		{OptInfo, (&infoRequest{name: "secret-name"}).encode()},
		{OptGo, (&infoRequest{name: "secret-name"}).encode()},
		{OptStructuredReply, nil},
		{OptListMetaContext, (&metaRequest{name: "secret-name"}).encode()},
		{OptNetraidHello, encodeHello("secret-name", []byte("hi"))},
		{Option(0x4242), []byte("unknown")},
	} {
		r.option(o.opt, o.data)
		msg := r.expectReply(o.opt, RepErrTLSReqd)
		if bytes.Contains(msg, []byte("secret-name")) {
			t.Fatalf("option %v: the refusal names the export: %q", o.opt, msg)
		}
	}
	r.option(OptAbort, nil)
	r.expectReply(OptAbort, RepAck)
	r.expectClosed()

	r = ts.raw(t)
	r.greet(clientFixedNewstyle | clientNoZeroes)
	r.option(OptExportName, []byte("secret-name"))
	r.expectClosed()

	// A client without fixed newstyle cannot start TLS: it is cut at once.
	r = ts.raw(t)
	r.greet(0)
	r.expectClosed()
	if n := ts.Clients("secret-name"); n != 0 {
		t.Fatalf("%d clients reached the export without TLS", n)
	}
}

// startTLS sends NBD_OPT_STARTTLS on a raw connection and moves it onto
// TLS.
func (r *raw) startTLS(cfg *tls.Config) {
	r.t.Helper()
	r.option(OptStartTLS, nil)
	r.expectReply(OptStartTLS, RepAck)
	tc := tls.Client(r.nc, cfg)
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("TLS handshake: %v", err)
	}
	r.nc = tc
}

// TestStartTLS walks the option's rules: data is refused, the ACK starts
// TLS, a second STARTTLS is invalid, state from before TLS is dropped,
// and the export works over TLS.
func TestStartTLS(t *testing.T) {
	p := newTestPKI(t)
	mem := blockdev.NewMem(expSize)
	ts := startServer(t, "unix", ServerOptions{TLS: p.server(t, "a")}, Export{Name: "x", Dev: mem})
	r := ts.raw(t)
	r.greet(clientFixedNewstyle | clientNoZeroes)
	r.option(OptStructuredReply, nil)
	r.expectReply(OptStructuredReply, RepAck)
	r.option(OptStartTLS, []byte{0})
	r.expectReply(OptStartTLS, RepErrInvalid)
	r.startTLS(p.client(t, "alice"))
	r.option(OptStartTLS, nil)
	r.expectReply(OptStartTLS, RepErrInvalid)
	r.option(OptList, nil)
	r.expectReply(OptList, RepServer)
	r.expectReply(OptList, RepAck)
	// Structured replies were negotiated in plaintext: gone now.
	r.option(OptGo, (&infoRequest{name: "x"}).encode())
	info := r.expectReply(OptGo, RepInfo)
	if f := TransmissionFlags(binary.BigEndian.Uint16(info[10:])); f&FlagSendDF != 0 {
		t.Fatalf("flags %#x: structured replies survived STARTTLS", f)
	}
	r.expectReply(OptGo, RepAck)
	data := pattern(3, 4096)
	r.request(CmdWrite, 0, 1, 8192, 4096, data)
	if e := r.simple(1); e != 0 {
		t.Fatalf("write over TLS: %v", e)
	}
	got := make([]byte, 4096)
	mem.ReadAt(got, 8192)
	if !bytes.Equal(got, data) {
		t.Fatal("the write over TLS did not land")
	}
}

// TestStartTLSInjection: bytes sent after STARTTLS, before the handshake,
// end the connection without an ACK: they can never pass for protected
// data.
func TestStartTLSInjection(t *testing.T) {
	p := newTestPKI(t)
	ts := startServer(t, "unix", ServerOptions{TLS: p.server(t, "a")}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	r := ts.raw(t)
	r.greet(clientFixedNewstyle | clientNoZeroes)
	h := make([]byte, optHeaderSize)
	putOptHeader(h, OptStartTLS, 0)
	injected := make([]byte, optHeaderSize)
	putOptHeader(injected, OptGo, 0)
	r.write(append(h, injected...))
	r.expectClosed()
}

// TestStartTLSNotConfigured: a server without TLS refuses STARTTLS with
// NBD_REP_ERR_POLICY and goes on in plaintext; a client that asked for
// TLS gives up.
func TestStartTLSNotConfigured(t *testing.T) {
	p := newTestPKI(t)
	ts := startServer(t, "tcp", ServerOptions{}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	r.option(OptStartTLS, nil)
	r.expectReply(OptStartTLS, RepErrPolicy)
	r.option(OptList, nil)
	r.expectReply(OptList, RepServer)

	_, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "x", TLS: p.client(t, "alice")})
	if !errors.Is(err, ErrTLS) {
		t.Fatalf("Dial with TLS to a server without: %v, want ErrTLS", err)
	}
}

// TestTLSRefusals: clients without TLS, without a certificate, with one of
// another CA or another volume, or that do not trust the server, are
// refused before they reach the export; the server says why in its log.
func TestTLSRefusals(t *testing.T) {
	p := newTestPKI(t)
	var log logBuffer
	mem := blockdev.NewMem(expSize)
	ts := startServer(t, "tcp", ServerOptions{TLS: p.server(t, "a"), TLSRequired: true, Logger: log.logger()},
		Export{Name: "x", Dev: mem})
	// The server's own checks decide: these clients trust any server.
	presenting := func(name string) *tls.Config {
		cfg := p.client(t, "alice")
		var certs []tls.Certificate
		if name != "" {
			certs = p.client(t, name).Certificates
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if len(certs) == 0 {
				return &tls.Certificate{}, nil
			}
			return &certs[0], nil
		}
		cfg.Certificates, cfg.InsecureSkipVerify, cfg.VerifyConnection = nil, true, nil
		return cfg
	}
	for _, tc := range []struct {
		name   string
		tls    *tls.Config
		want   error
		logged string
	}{
		{"plaintext", nil, ErrTLSRequired, "left without starting TLS"},
		{"no certificate", presenting(""), ErrTLS, "certificate"},
		{"another CA", presenting("eve"), ErrTLS, "not trusted"},
		{"another volume", presenting("mallory"), ErrTLS, `volume \"other\"`},
		{"server not trusted", p.client(t, "eve"), ErrTLS, "the client refused this server's certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			c, err := Dial(ctx, ts.network, ts.addr, ClientOptions{Export: "x", TLS: tc.tls})
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Dial: %v, want %v", err, tc.want)
			}
			t.Logf("refused: %v", err)
			if tc.logged != "" {
				deadline := time.Now().Add(testWait)
				for !strings.Contains(log.String(), tc.logged) {
					if time.Now().After(deadline) {
						t.Fatalf("the server's log does not say %q:\n%s", tc.logged, log.String())
					}
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	if st := ts.Stats(); st.BytesRead+st.BytesWritten+st.Requests != 0 {
		t.Fatalf("refused clients moved data: %+v", st)
	}
	good := ts.dial(t, ClientOptions{Export: "x", TLS: p.client(t, "alice")})
	if _, err := good.WriteAt(pattern(1, 512), 0); err != nil {
		t.Fatalf("alice after the refusals: %v", err)
	}
	if !strings.Contains(log.String(), "tls_client=alice") {
		t.Fatalf("the log does not name alice's certificate:\n%s", log.String())
	}
}

// TestTLSHello: the replication link's shape — mutual TLS with node
// certificates, the netraid hello, a hello-only export — works over TLS.
func TestTLSHello(t *testing.T) {
	p := newTestPKI(t)
	peer := func(node string) *tls.Config { return p.peer(t, node) }
	h := &hooks{}
	ts := startServer(t, "tcp", ServerOptions{TLS: peer("b"), TLSRequired: true, Hello: h.hello, Control: h.ctl},
		Export{Name: "replication", Dev: blockdev.NewMem(expSize), RequireHello: true})
	c := ts.dial(t, ClientOptions{Export: "replication", Hello: []byte("a"), TLS: peer("a")})
	if string(c.HelloReply()) != "welcome a" || !c.TLS() {
		t.Fatalf("hello reply %q over TLS %v", c.HelloReply(), c.TLS())
	}
	if resp, err := c.Control([]byte("ping")); err != nil || string(resp) != "gnip" {
		t.Fatalf("control over TLS: %q, %v", resp, err)
	}
	// A node without TLS learns that TLS is required, not that its hello
	// was refused.
	_, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "replication", Hello: []byte("a")})
	var he *HelloError
	if !errors.Is(err, ErrTLSRequired) || errors.As(err, &he) {
		t.Fatalf("a hello without TLS: %v, want ErrTLSRequired and no HelloError", err)
	}
	// A client certificate is no node's: refused before the hello.
	alice := p.client(t, "alice")
	alice.InsecureSkipVerify, alice.VerifyConnection = true, nil
	_, err = Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "replication", Hello: []byte("alice"), TLS: alice})
	if !errors.Is(err, ErrTLS) {
		t.Fatalf("a client certificate on the replication link: %v, want ErrTLS", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.hellos) != 1 {
		t.Fatalf("hellos %q: the refused client reached the hello", h.hellos)
	}
}
