package nbd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/netraid/netraid/blockdev"
)

// seenConns records the ConnInfo each hook call found in its context,
// keyed by what the caller said (hello bytes or control request).
type seenConns struct {
	mu   sync.Mutex
	seen map[string]ConnInfo
}

func (s *seenConns) record(ctx context.Context, key string) error {
	ci, ok := ConnFromContext(ctx)
	if !ok {
		return errors.New("no connection in the context")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]ConnInfo{}
	}
	s.seen[key] = ci
	return nil
}

func (s *seenConns) get(t *testing.T, key string) ConnInfo {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	ci, ok := s.seen[key]
	if !ok {
		t.Fatalf("no hook call for %q", key)
	}
	return ci
}

// TestConnFromContext: the Hello and Control hooks learn which connection
// called them, with its TLS state after STARTTLS and its export once
// attached; Conns lists the same; CloseWhere on one ID closes that
// client's connection and no other.
func TestConnFromContext(t *testing.T) {
	p := newTestPKI(t)
	peer := func(node string) *tls.Config { return p.peer(t, node) }
	var seen seenConns
	hello := func(ctx context.Context, _ string, req []byte) ([]byte, error) {
		return nil, seen.record(ctx, "hello "+string(req))
	}
	control := func(ctx context.Context, _ string, req []byte) ([]byte, error) {
		return nil, seen.record(ctx, "control "+string(req))
	}
	ts := startServer(t, "tcp", ServerOptions{TLS: peer("b"), Hello: hello, Control: control},
		Export{Name: "vol", Dev: blockdev.NewMem(expSize)})
	a := ts.dial(t, ClientOptions{Export: "vol", Hello: []byte("a"), TLS: peer("a")})
	b := ts.dial(t, ClientOptions{Export: "vol", Hello: []byte("b")})
	for _, x := range []struct {
		c    *Client
		name string
	}{{a, "a"}, {b, "b"}} {
		if _, err := x.c.Control([]byte(x.name)); err != nil {
			t.Fatalf("control from %s: %v", x.name, err)
		}
	}
	ha, ca := seen.get(t, "hello a"), seen.get(t, "control a")
	hb, cb := seen.get(t, "hello b"), seen.get(t, "control b")
	if ha.ID != ca.ID || hb.ID != cb.ID || ha.ID == hb.ID {
		t.Fatalf("IDs: hello a %d control a %d, hello b %d control b %d", ha.ID, ca.ID, hb.ID, cb.ID)
	}
	if ha.Export != "" || ca.Export != "vol" || cb.Export != "vol" {
		t.Fatalf("exports: in the hello %q, in control %q and %q", ha.Export, ca.Export, cb.Export)
	}
	if ha.TLS == nil || len(ha.TLS.PeerCertificates) == 0 || ha.TLS.PeerCertificates[0].Subject.CommonName != "a" {
		t.Fatalf("the hello of a did not see a's certificate: %+v", ha.TLS)
	}
	if hb.TLS != nil || cb.TLS != nil {
		t.Fatal("a plaintext connection has a TLS state")
	}
	if ca.Remote.String() == cb.Remote.String() || ca.Local.String() != ts.addr {
		t.Fatalf("addresses: a %v→%v, b %v", ca.Remote, ca.Local, cb.Remote)
	}
	conns := ts.Conns()
	if len(conns) != 2 || conns[0].ID != ca.ID || conns[1].ID != cb.ID || conns[0].Remote.String() != ca.Remote.String() {
		t.Fatalf("Conns = %+v, want a (%d) then b (%d)", conns, ca.ID, cb.ID)
	}

	if n := ts.CloseWhere(func(ci ConnInfo) bool { return ci.ID == ca.ID }); n != 1 {
		t.Fatalf("CloseWhere closed %d connections, want 1", n)
	}
	if _, err := a.Control([]byte("after")); !errors.Is(err, ErrBroken) {
		t.Fatalf("a's connection after CloseWhere: %v", err)
	}
	if _, err := b.Control([]byte("after")); err != nil {
		t.Fatalf("b's connection after a's was closed: %v", err)
	}
	if conns := ts.Conns(); len(conns) != 1 || conns[0].ID != cb.ID {
		t.Fatalf("Conns after CloseWhere = %+v", conns)
	}
	if _, ok := ConnFromContext(context.Background()); ok {
		t.Fatal("ConnFromContext found a connection in a bare context")
	}
}

// TestCloseWhere: it closes exactly the connections that match, in
// transmission or in handshake, and a closed client's acknowledged
// writes are flushed.
func TestCloseWhere(t *testing.T) {
	dev := &countingFlush{Device: blockdev.NewMem(expSize)}
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "x", Dev: dev}, Export{Name: "y", Dev: blockdev.NewMem(expSize)})
	var onX, onY []*Client
	for range 3 {
		onX = append(onX, ts.dial(t, ClientOptions{Export: "x"}))
		onY = append(onY, ts.dial(t, ClientOptions{Export: "y"}))
	}
	pending := ts.raw(t)
	pending.read(18) // in its handshake
	waitFor(t, "7 connections", func() bool { return len(ts.Conns()) == 7 })
	if _, err := onX[0].WriteAt(pattern(1, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if n := ts.CloseWhere(func(ci ConnInfo) bool { return ci.Export == "x" }); n != 3 {
		t.Fatalf("closed %d, want the 3 on x", n)
	}
	if dev.flushes() == 0 {
		t.Fatal("a closed connection's write was not flushed")
	}
	for i := range 3 {
		if err := onX[i].Flush(); !errors.Is(err, ErrBroken) {
			t.Fatalf("client %d on x after CloseWhere: %v", i, err)
		}
		if err := onY[i].Flush(); err != nil {
			t.Fatalf("client %d on y: %v", i, err)
		}
	}
	if n := ts.CloseWhere(func(ci ConnInfo) bool { return ci.Export == "" }); n != 1 {
		t.Fatalf("closed %d in handshake, want 1", n)
	}
	pending.expectClosed()
	if n := ts.CloseWhere(func(ConnInfo) bool { return false }); n != 0 || len(ts.Conns()) != 3 {
		t.Fatalf("closed %d matching none; %d left, want 3", n, len(ts.Conns()))
	}
}

// countingFlush counts flushes.
type countingFlush struct {
	blockdev.Device
	mu sync.Mutex
	n  int
}

func (d *countingFlush) Flush() error {
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
	return d.Device.Flush()
}

func (d *countingFlush) flushes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// TestAttach: a connection is served by the device Attach returned for
// it, Attach sees the connection in its context, and an error or a
// device of the wrong size refuses the open.
func TestAttach(t *testing.T) {
	export := blockdev.NewMem(expSize)
	perConn := blockdev.NewMem(expSize)
	var (
		mu     sync.Mutex
		seen   []ConnInfo
		refuse error
		dev    blockdev.Device = perConn
	)
	attach := func(ctx context.Context) (blockdev.Device, error) {
		ci, ok := ConnFromContext(ctx)
		if !ok {
			return nil, errors.New("no connection in the context")
		}
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ci)
		return dev, refuse
	}
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "x", Dev: export, Attach: attach})
	c := ts.dial(t, ClientOptions{Export: "x"})
	data := pattern(5, 8192)
	if _, err := c.WriteAt(data, 4096); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	perConn.ReadAt(got, 4096)
	if !bytes.Equal(got, data) {
		t.Fatal("the write did not reach the attached device")
	}
	export.ReadAt(got, 4096)
	if !bytes.Equal(got, make([]byte, len(data))) {
		t.Fatal("the write reached the export's device")
	}
	if len(seen) != 1 || seen[0].Export != "" || seen[0].ID == 0 {
		t.Fatalf("Attach saw %+v", seen)
	}

	for _, tc := range []struct {
		name string
		dev  blockdev.Device
		err  error
		want string
	}{
		{"error", perConn, errors.New("link superseded"), "link superseded"},
		{"size", blockdev.NewMem(expSize / 2), nil, "bytes for an export of"},
	} {
		mu.Lock()
		dev, refuse = tc.dev, tc.err
		mu.Unlock()
		_, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "x"})
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Reply != RepErrPolicy || !strings.Contains(oe.Msg, tc.want) {
			t.Fatalf("%s: GO refused with %v, want NBD_REP_ERR_POLICY saying %q", tc.name, err, tc.want)
		}
		// NBD_OPT_EXPORT_NAME cannot be refused: the connection ends.
		r := ts.raw(t)
		r.greet(clientFixedNewstyle | clientNoZeroes)
		r.option(OptExportName, []byte("x"))
		r.expectClosed()
	}
	if n := ts.Clients("x"); n != 1 {
		t.Fatalf("%d clients on x, want the first only", n)
	}
}

// TestHelloFirst: before the netraid hello, a HelloFirst server answers
// no option but STARTTLS, ABORT and the hello, and its refusals name
// nothing; after it, everything works.
func TestHelloFirst(t *testing.T) {
	h := &hooks{}
	ts := startServer(t, "unix", ServerOptions{Hello: h.hello, HelloFirst: true},
		Export{Name: "secret-volume", Description: "secret description", Dev: blockdev.NewMem(expSize)})
	r := ts.raw(t)
	r.greet(clientFixedNewstyle | clientNoZeroes)
	info := infoRequest{name: "secret-volume", infos: []InfoType{InfoBlockSize, InfoDescription}}
	meta := metaRequest{name: "secret-volume", queries: []string{metaBaseAllocation}}
	for _, o := range []struct {
		opt  Option
		data []byte
	}{
		{OptList, nil},
		{OptInfo, info.encode()},
		{OptGo, info.encode()},
		{OptStructuredReply, nil},
		{OptListMetaContext, meta.encode()},
		{Option(99), nil},
	} {
		r.option(o.opt, o.data)
		msg := r.expectReply(o.opt, RepErrPolicy)
		if s := string(msg); strings.Contains(s, "secret") || strings.Contains(s, fmt.Sprint(expSize)) {
			t.Fatalf("refusal of %v before the hello tells %q", o.opt, msg)
		}
	}
	// A refused hello does not open the door.
	r.option(OptNetraidHello, encodeHello("secret-volume", []byte("wrong volume")))
	r.expectReply(OptNetraidHello, RepErrPolicy)
	r.option(OptList, nil)
	r.expectReply(OptList, RepErrPolicy)
	// An accepted one does.
	r.option(OptNetraidHello, encodeHello("secret-volume", []byte("a")))
	r.expectReply(OptNetraidHello, RepNetraidHello)
	r.option(OptList, nil)
	if data := r.expectReply(OptList, RepServer); !bytes.Contains(data, []byte("secret-volume")) {
		t.Fatalf("LIST after the hello: %q", data)
	}
	r.expectReply(OptList, RepAck)
	r.option(OptInfo, info.encode())
	r.expectReply(OptInfo, RepInfo)
	// NBD_OPT_EXPORT_NAME before the hello ends the connection.
	e := ts.raw(t)
	e.greet(clientFixedNewstyle | clientNoZeroes)
	e.option(OptExportName, []byte("secret-volume"))
	e.expectClosed()
	// The client says its hello first, so it gets structured replies.
	c := ts.dial(t, ClientOptions{Export: "secret-volume", Hello: []byte("b")})
	if !c.structured || !c.hasMeta {
		t.Fatalf("a client with a hello: structured %v, base:allocation %v", c.structured, c.hasMeta)
	}
	if _, err := c.WriteAt(pattern(2, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "secret-volume"}); err == nil {
		t.Fatal("a client without a hello got in")
	}
}
