package nbd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netraid/netraid/blockdev"
)

// hooks records what the server's netraid hooks saw.
type hooks struct {
	mu      sync.Mutex
	hellos  []string
	control []string
}

func (h *hooks) hello(_ context.Context, export string, req []byte) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hellos = append(h.hellos, export+":"+string(req))
	switch string(req) {
	case "wrong volume":
		return nil, errors.New("volume 1234 is not volume 5678")
	case "split brain":
		return nil, &HelloRefusal{Err: errors.New("both nodes took writes"), Data: []byte(`{"verdict":"split-brain"}`)}
	case "huge refusal":
		return nil, &HelloRefusal{Err: errors.New("too much to say"), Data: make([]byte, maxOptionLen)}
	}
	return []byte("welcome " + string(req)), nil
}

func (h *hooks) ctl(_ context.Context, export string, req []byte) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.control = append(h.control, export+":"+string(req))
	if string(req) == "fail" {
		return nil, errors.New("promotion refused: peer is primary")
	}
	r := []byte(string(req))
	slices.Reverse(r)
	return r, nil
}

func TestHelloAndControl(t *testing.T) {
	h := &hooks{}
	mem := blockdev.NewMem(expSize)
	ts := startServer(t, "unix", ServerOptions{Hello: h.hello, Control: h.ctl},
		Export{Name: "vol", Dev: mem}, Export{Name: "other", Dev: blockdev.NewMem(expSize)})

	c := ts.dial(t, ClientOptions{Hello: []byte("node-b gen 7")}) // the default export
	if got := string(c.HelloReply()); got != "welcome node-b gen 7" {
		t.Fatalf("HelloReply = %q", got)
	}
	resp, err := c.Control([]byte("status"))
	if err != nil || string(resp) != "sutats" {
		t.Fatalf("Control = %q, %v", resp, err)
	}
	big := bytes.Repeat([]byte("x"), 200<<10)
	if resp, err := c.Control(big); err != nil || !bytes.Equal(resp, big) {
		t.Fatalf("Control of %d bytes: %d bytes, %v", len(big), len(resp), err)
	}
	_, err = c.Control([]byte("fail"))
	var e *Error
	if !errors.Is(err, ErrRemoteIO) || !errors.As(err, &e) || e.Errno != EIO || !strings.Contains(e.Msg, "peer is primary") {
		t.Fatalf("failing Control: %v", err)
	}
	if _, err := c.Control([]byte("Cxxx")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Control with the reserved op: %v", err)
	}

	data := pattern(3, 300<<10)
	if _, err := c.WriteAt(data, 4096); err != nil {
		t.Fatal(err)
	}
	reads := ts.Stats().BytesRead
	sum, err := c.Checksum(4096+1, int64(len(data))-2)
	if err != nil || sum != blockdev.Sum(sha256.Sum256(data[1:len(data)-1])) {
		t.Fatalf("Checksum = %x, %v", sum, err)
	}
	if ts.Stats().BytesRead != reads {
		t.Fatalf("Checksum sent the data over the wire")
	}
	if _, err := c.Checksum(expSize-10, 11); !errors.Is(err, blockdev.ErrOutOfRange) {
		t.Fatalf("Checksum past the end: %v", err)
	}
	// The hook never sees checksum requests, and sees the canonical name.
	if fmt.Sprint(h.hellos) != "[vol:node-b gen 7]" || fmt.Sprint(h.control) != fmt.Sprintf("[vol:status vol:%s vol:fail]", big) {
		t.Fatalf("hooks saw %q %.40q", h.hellos, h.control)
	}

	// Without the hello: no control, and Checksum reads the data.
	plain := ts.dial(t, ClientOptions{Export: "vol"})
	if _, err := plain.Control([]byte("status")); !errors.Is(err, ErrNoHello) {
		t.Fatalf("Control without hello: %v", err)
	}
	if sum2, err := plain.Checksum(4096+1, int64(len(data))-2); err != nil || sum2 != sum {
		t.Fatalf("Checksum by reading = %x, %v; want %x", sum2, err, sum)
	}
}

func TestHelloRefused(t *testing.T) {
	h := &hooks{}
	ts := startServer(t, "unix", ServerOptions{Hello: h.hello}, Export{Name: "vol", Dev: blockdev.NewMem(expSize)})
	_, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "vol", Hello: []byte("wrong volume")})
	var he *HelloError
	if !errors.As(err, &he) || he.Reply != RepErrPolicy || he.Export != "vol" || !strings.Contains(he.Msg, "is not volume 5678") {
		t.Fatalf("refused hello: %v", err)
	}
	if ts.Clients("vol") != 0 {
		t.Fatalf("refused client got in")
	}

	bare := startServer(t, "unix", ServerOptions{}, Export{Name: "vol", Dev: blockdev.NewMem(expSize)})
	_, err = Dial(context.Background(), bare.network, bare.addr, ClientOptions{Hello: []byte("hi")})
	if !errors.As(err, &he) || he.Reply != RepErrUnsup {
		t.Fatalf("hello to a server without the hook: %v", err)
	}
	_, err = Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "nope", Hello: []byte("hi")})
	if !errors.Is(err, ErrUnknownExport) {
		t.Fatalf("hello for an unknown export: %v", err)
	}
}

// TestHelloRefusalWithData: a hook's *HelloRefusal reaches the client as
// a HelloError with the text and the data; data too large for an option
// reply is dropped, and the refusal still carries the text.
func TestHelloRefusalWithData(t *testing.T) {
	h := &hooks{}
	ts := startServer(t, "unix", ServerOptions{Hello: h.hello}, Export{Name: "vol", Dev: blockdev.NewMem(expSize)})
	_, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "vol", Hello: []byte("split brain")})
	var he *HelloError
	if !errors.As(err, &he) || he.Reply != RepErrNetraidRefused || he.Msg != "both nodes took writes" ||
		string(he.Data) != `{"verdict":"split-brain"}` {
		t.Fatalf("refusal with data: %v (data %q)", err, he.Data)
	}
	_, err = Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "vol", Hello: []byte("huge refusal")})
	if !errors.As(err, &he) || he.Reply != RepErrPolicy || he.Msg != "too much to say" || he.Data != nil {
		t.Fatalf("refusal with oversized data: %v", err)
	}
	if ts.Clients("vol") != 0 {
		t.Fatalf("refused client got in")
	}
}

func TestControlRaw(t *testing.T) {
	h := &hooks{}
	ts := startServer(t, "unix", ServerOptions{Hello: h.hello, MaxRequest: 4096},
		Export{Name: "vol", Dev: blockdev.NewMem(expSize)}, Export{Name: "other", Dev: blockdev.NewMem(expSize)})

	// The hello binds the connection to its export.
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	r.option(OptNetraidHello, encodeHello("vol", []byte("x")))
	r.expectReply(OptNetraidHello, RepNetraidHello)
	r.option(OptGo, (&infoRequest{name: "other"}).encode())
	r.expectReply(OptGo, RepErrPolicy)
	r.option(OptGo, (&infoRequest{name: "vol"}).encode())
	r.expectReply(OptGo, RepInfo)
	r.expectReply(OptGo, RepAck)

	for _, c := range []struct {
		name string
		req  []byte
		n    uint32
		want Errno
	}{
		{"checksum past the end", encodeChecksumRequest(expSize-1, 2), 17, EINVAL},
		{"checksum negative offset", encodeChecksumRequest(-1, 2), 17, EINVAL},
		{"checksum short", encodeChecksumRequest(0, 1)[:16], 16, EINVAL},
		{"no control hook", []byte("status"), 6, EINVAL},
		{"too large", make([]byte, 4097), 4097, EINVAL},
	} {
		r.request(CmdNetraidControl, 0, 1, 0, c.n, c.req)
		if got := r.simple(1); got != c.want {
			t.Fatalf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	r.request(CmdNetraidControl, 0, 2, 0, 17, encodeChecksumRequest(0, 0))
	if got := r.simple(2); got != 0 {
		t.Fatalf("checksum of nothing: %v", got)
	}
	resp := r.read(4 + 32)
	if want := sha256.Sum256(nil); !bytes.Equal(resp[4:], want[:]) || resp[3] != 32 {
		t.Fatalf("checksum reply % x", resp)
	}
}

// TestRequireHello: an export marked RequireHello (the replication link)
// cannot be opened by a client that did not say the netraid hello, by
// OPT_GO or by the old OPT_EXPORT_NAME; one that did can.
func TestRequireHello(t *testing.T) {
	h := &hooks{}
	mem := blockdev.NewMem(expSize)
	ts := startServer(t, "unix", ServerOptions{Hello: h.hello, Control: h.ctl},
		Export{Name: "peer", Dev: mem, RequireHello: true})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	_, err := Dial(ctx, ts.network, ts.addr, ClientOptions{Export: "peer"})
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Reply != RepErrPolicy {
		t.Fatalf("plain client on a hello-only export: %v, want a policy refusal", err)
	}
	r := ts.raw(t)
	r.greet(clientFixedNewstyle | clientNoZeroes)
	r.option(OptExportName, []byte("peer"))
	r.expectClosed()
	c := ts.dial(t, ClientOptions{Export: "peer", Hello: []byte("node-a")})
	if _, err := c.WriteAt(pattern(1, 4096), 0); err != nil {
		t.Fatalf("write after hello: %v", err)
	}
	if got := mem.Bytes()[:4096]; !bytes.Equal(got, pattern(1, 4096)) {
		t.Fatal("the write after hello did not land")
	}
}
