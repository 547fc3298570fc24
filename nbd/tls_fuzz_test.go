package nbd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// FuzzNegotiateTLS drives the server as a client that may start TLS. The
// plaintext part of the input goes to the server option by option; after
// a NBD_OPT_STARTTLS the server acknowledged, the driver does a real TLS
// handshake and sends the protected part inside TLS. The server, which
// requires TLS or not, must neither panic nor hang, and must let go of
// the connection.
func FuzzNegotiateTLS(f *testing.F) {
	p := newTestPKI(f)
	srv, cli := p.server(f, "a"), p.client(f, "alice")
	for _, s := range tlsSeeds() {
		f.Add(s.required, s.plain, s.protected)
	}
	hello := func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil }
	f.Fuzz(func(t *testing.T, required bool, plain, protected []byte) {
		s := NewServer(ServerOptions{
			NegotiationTimeout: 5 * time.Second, ReplyTimeout: 5 * time.Second, MaxRequest: 4096,
			Hello: hello, Control: hello, TLS: srv, TLSRequired: required,
		})
		s.AddExport(Export{Name: "a", Dev: blockdev.NewMem(256 << 10)})
		s.AddExport(Export{Name: "b", Dev: newSparse(256 << 10), ReadOnly: true, RequireHello: true})
		cend, send := net.Pipe()
		cend.SetDeadline(time.Now().Add(testWait))
		c := s.register(context.Background(), send, nil)
		go c.serve()
		d := newTLSDriver(cend, cli)
		d.run(plain, protected)
		cend.Close()
		d.wait()
		select {
		case <-c.done:
		case <-time.After(testWait):
			t.Fatalf("server still busy after %d+%d bytes", len(plain), len(protected))
		}
		if st := s.Stats(); st.Connections != 0 {
			t.Fatalf("connection not released: %+v", st)
		}
	})
}

// tlsDriver is the fuzzing client: it writes options, watches the
// server's option replies for the answers to STARTTLS, and moves onto TLS
// after an ACK.
type tlsDriver struct {
	nc  net.Conn
	cfg *tls.Config
	// starttls hands the server's answer to a STARTTLS to run; after an
	// ACK taken from it, the TLS client owns the stream. blind is closed
	// once the reader only drains what the server sends (transmission,
	// or a stream it does not follow); stop once run is done.
	starttls    chan Reply
	blind, stop chan struct{}
	wg          sync.WaitGroup
}

func newTLSDriver(nc net.Conn, cfg *tls.Config) *tlsDriver {
	d := &tlsDriver{nc: nc, cfg: cfg, starttls: make(chan Reply), blind: make(chan struct{}), stop: make(chan struct{})}
	d.wg.Go(func() {
		if !d.follow() {
			close(d.blind)
			io.Copy(io.Discard, d.nc)
		}
	})
	return d
}

func (d *tlsDriver) wait() { d.wg.Wait() }

// follow parses the greeting and option replies until it hands an ACK
// to STARTTLS over to run (true), or can follow no more (false): the
// stream broke, or transmission began, where a STARTTLS is no option.
func (d *tlsDriver) follow() bool {
	if _, err := io.ReadFull(d.nc, make([]byte, 18)); err != nil {
		return false
	}
	var h [optReplyHeaderSize]byte
	for {
		if _, err := io.ReadFull(d.nc, h[:]); err != nil || binary.BigEndian.Uint64(h[:]) != magicOptReply {
			return false
		}
		n := binary.BigEndian.Uint32(h[16:])
		if _, err := io.CopyN(io.Discard, d.nc, int64(n)); err != nil {
			return false
		}
		opt, typ := Option(binary.BigEndian.Uint32(h[8:])), Reply(binary.BigEndian.Uint32(h[12:]))
		if opt == OptGo && typ == RepAck {
			return false // transmission: no more option replies
		}
		if opt != OptStartTLS {
			continue
		}
		select {
		case d.starttls <- typ:
			if typ == RepAck {
				return true
			}
		case <-d.stop:
			// run did not wait for this answer: keep draining.
		}
	}
}

// run sends the client flags and the plaintext options one by one, then,
// if TLS started, the protected bytes inside it; anything that does not
// parse as options is sent as it is.
func (d *tlsDriver) run(plain, protected []byte) {
	defer close(d.stop)
	if len(plain) < 4 {
		d.nc.Write(plain)
		return
	}
	if _, err := d.nc.Write(plain[:4]); err != nil {
		return
	}
	rest := plain[4:]
	for len(rest) > 0 {
		if len(rest) < optHeaderSize || binary.BigEndian.Uint64(rest) != magicOpt ||
			uint64(binary.BigEndian.Uint32(rest[12:])) > uint64(len(rest)-optHeaderSize) {
			d.nc.Write(rest)
			return
		}
		n := optHeaderSize + int(binary.BigEndian.Uint32(rest[12:]))
		opt := Option(binary.BigEndian.Uint32(rest[8:]))
		if _, err := d.nc.Write(rest[:n]); err != nil {
			return
		}
		rest = rest[n:]
		if opt == OptExportName {
			// Transmission, if the server took it (else it closes): no
			// option reply will follow, and the rest is requests.
			d.nc.Write(rest)
			return
		}
		if opt != OptStartTLS {
			continue
		}
		select {
		case typ := <-d.starttls:
			if typ == RepAck {
				d.protected(protected)
				return
			}
		case <-d.blind:
		}
	}
}

// protected does the TLS handshake and sends data inside TLS, draining
// what the server sends back.
func (d *tlsDriver) protected(data []byte) {
	tc := tls.Client(d.nc, d.cfg)
	if err := tc.Handshake(); err != nil {
		return
	}
	d.wg.Go(func() { io.Copy(io.Discard, tc) })
	tc.Write(data)
}

type tlsSeed struct {
	required         bool
	plain, protected []byte
}

func tlsSeeds() []tlsSeed {
	opt := func(o Option, data []byte) []byte {
		h := make([]byte, optHeaderSize)
		putOptHeader(h, o, uint32(len(data)))
		return append(h, data...)
	}
	req := func(typ Command, off uint64, n uint32, payload []byte) []byte {
		b := make([]byte, requestSize)
		(&Request{Type: typ, Handle: off + 1, Offset: off, Length: n}).encode(b)
		return append(b, payload...)
	}
	flags := func(f uint32) []byte { return binary.BigEndian.AppendUint32(nil, f) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	goTo := func(name string) []byte {
		return opt(OptGo, (&infoRequest{name: name, infos: []InfoType{InfoBlockSize}}).encode())
	}
	meta := (&metaRequest{name: "a", queries: []string{metaBaseAllocation}}).encode()
	start := opt(OptStartTLS, nil)
	disc := req(CmdDisc, 0, 0, nil)
	return []tlsSeed{
		{true, cat(flags(3), start), cat(opt(OptStructuredReply, nil), opt(OptSetMetaContext, meta), goTo("a"),
			req(CmdWrite, 512, 4, []byte("abcd")), req(CmdRead, 0, 1024, nil), req(CmdBlockStatus, 0, 4096, nil), disc)},
		{true, cat(flags(3), opt(OptList, nil), goTo("a"), opt(OptStartTLS, []byte("x")), start),
			cat(opt(OptList, nil), start, goTo("b"), goTo("a"), req(CmdRead, 0, 512, nil), disc)},
		{false, cat(flags(3), opt(OptStructuredReply, nil), start),
			cat(opt(OptNetraidHello, encodeHello("b", []byte("hi"))), goTo("b"),
				req(CmdNetraidControl, 0, 3, []byte("ctl")), req(CmdWrite, 0, 3, []byte("xyz")), disc)},
		{true, cat(flags(3), opt(OptExportName, []byte("a"))), nil},
		{false, cat(flags(3), goTo("a"), req(CmdWrite, 0, 4, []byte("abcd")), disc), nil},
		{true, cat(flags(1), start), cat(opt(OptExportName, []byte("a")), make([]byte, 124), req(CmdFlush, 0, 0, nil), disc)},
		{true, cat(flags(0), start), nil},
		{true, cat(flags(3), start), []byte("\x16\x03\x01 not quite a TLS record")},
		{false, cat(flags(3), opt(OptAbort, nil)), nil},
	}
}
