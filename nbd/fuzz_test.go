package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// FuzzRequestDecode feeds arbitrary bytes to the server's request decoder
// and checks: no panic, headers re-encode to the same bytes, a payload is
// read or skipped exactly, and checkRequest's verdict is consistent.
func FuzzRequestDecode(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add(s)
	}
	const maxReq = 4096
	f.Fuzz(func(t *testing.T, in []byte) {
		rr := requestReader{r: bytes.NewReader(in)}
		sess := session{size: 1 << 20, structured: len(in)%2 == 0, metaAlloc: true, hello: len(in)%3 == 0, maxRequest: maxReq}
		for range 64 {
			req, err := rr.next()
			if err != nil {
				return
			}
			var enc [requestSize]byte
			req.encode(enc[:])
			if enc != rr.hdr {
				t.Fatalf("header % x re-encodes as % x", rr.hdr, enc)
			}
			cerr := checkRequest(&req, &sess)
			if cerr == nil {
				end, ok := req.end()
				switch {
				case req.Type == CmdFlush && (req.Offset != 0 || req.Length != 0):
					t.Fatalf("accepted %+v", req)
				case req.Type != CmdFlush && req.Type != CmdNetraidControl && (!ok || end > sess.size):
					t.Fatalf("accepted out-of-range %+v", req)
				case (req.Type == CmdRead || req.hasPayload()) && req.Length > maxReq:
					t.Fatalf("accepted oversized %+v", req)
				}
			} else if errnoOf(cerr) == 0 {
				t.Fatalf("error %v maps to no error value", cerr)
			}
			if !req.hasPayload() {
				continue
			}
			if cerr == nil {
				if err := rr.payload(make([]byte, req.Length)); err != nil {
					return
				}
			} else if err := rr.discard(int64(req.Length)); err != nil {
				return
			}
		}
	})
}

// FuzzNegotiate feeds arbitrary bytes to the server as a client's stream,
// from the handshake on, over net.Pipe; the server must neither panic nor
// hang, and must end the connection when the stream ends.
func FuzzNegotiate(f *testing.F) {
	for _, s := range negotiateSeeds() {
		f.Add(s)
	}
	hello := func(_ context.Context, _ string, req []byte) ([]byte, error) { return req, nil }
	f.Fuzz(func(t *testing.T, in []byte) {
		s := NewServer(ServerOptions{
			NegotiationTimeout: 5 * time.Second, ReplyTimeout: 5 * time.Second, MaxRequest: 4096,
			Hello: hello, Control: hello,
		})
		s.AddExport(Export{Name: "a", Dev: blockdev.NewMem(256 << 10)})
		s.AddExport(Export{Name: "b", Dev: newSparse(256 << 10), ReadOnly: true})
		cend, send := net.Pipe()
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, cend); close(drained) }()
		c := s.register(context.Background(), &streamConn{Conn: send, r: bytes.NewReader(in)}, nil)
		go c.serve()
		select {
		case <-c.done:
		case <-time.After(testWait):
			t.Fatalf("server still busy with a %d-byte stream", len(in))
		}
		cend.Close()
		<-drained
		if st := s.Stats(); st.Connections != 0 {
			t.Fatalf("connection not released: %+v", st)
		}
	})
}

// streamConn is a net.Conn whose reads come from r, then io.EOF; writes,
// deadlines and Close go to the embedded connection.
type streamConn struct {
	net.Conn
	r io.Reader
}

func (s *streamConn) Read(p []byte) (int, error) { return s.r.Read(p) }

func requestSeeds() [][]byte {
	req := func(typ Command, flags CommandFlags, off uint64, n uint32, payload []byte) []byte {
		b := make([]byte, requestSize)
		(&Request{Type: typ, Flags: flags, Handle: uint64(typ) + 1, Offset: off, Length: n}).encode(b)
		return append(b, payload...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	bad := req(CmdRead, 0, 0, 512, nil)
	bad[0] = 0
	return [][]byte{
		cat(req(CmdWrite, CmdFlagFUA, 4096, 8, []byte("payload!")), req(CmdRead, CmdFlagDF, 0, 512, nil),
			req(CmdFlush, 0, 0, 0, nil), req(CmdDisc, 0, 0, 0, nil)),
		cat(req(CmdTrim, 0, 0, 1<<20, nil), req(CmdWriteZeroes, CmdFlagNoHole|CmdFlagFastZero, 512, 512, nil),
			req(CmdBlockStatus, CmdFlagReqOne, 0, 1<<20, nil), req(CmdCache, 0, 0, 4096, nil)),
		cat(req(CmdWrite, 0, 0, 5000, bytes.Repeat([]byte("x"), 5000)), req(CmdRead, 0, 1<<20-1, 2, nil)),
		cat(req(CmdNetraidControl, 0, 0, 17, encodeChecksumRequest(0, 4096)), req(0x99, 0xffff, ^uint64(0), ^uint32(0), nil)),
		req(CmdWrite, 0, 0, 100, []byte("cut short")),
		bad,
	}
}

func negotiateSeeds() [][]byte {
	opt := func(o Option, data []byte) []byte {
		h := make([]byte, optHeaderSize)
		putOptHeader(h, o, uint32(len(data)))
		return append(h, data...)
	}
	req := func(typ Command, flags CommandFlags, off uint64, n uint32, payload []byte) []byte {
		b := make([]byte, requestSize)
		(&Request{Type: typ, Flags: flags, Handle: off + 1, Offset: off, Length: n}).encode(b)
		return append(b, payload...)
	}
	flags := func(f uint32) []byte { return binary.BigEndian.AppendUint32(nil, f) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	goTo := func(name string, infos ...InfoType) []byte {
		return opt(OptGo, (&infoRequest{name: name, infos: infos}).encode())
	}
	meta := func(o Option, name string, q ...string) []byte {
		return opt(o, (&metaRequest{name: name, queries: q}).encode())
	}
	disc := req(CmdDisc, 0, 0, 0, nil)
	return [][]byte{
		cat(flags(3), goTo("a"), req(CmdWrite, 0, 512, 4, []byte("abcd")), req(CmdRead, 0, 0, 1024, nil),
			req(CmdFlush, 0, 0, 0, nil), disc),
		cat(flags(3), opt(OptStructuredReply, nil), meta(OptSetMetaContext, "a", metaBaseAllocation),
			goTo("a", InfoBlockSize, InfoName), req(CmdBlockStatus, 0, 0, 256<<10, nil),
			req(CmdRead, CmdFlagDF, 100, 300, nil), req(CmdRead, 0, 256<<10, 1, nil), disc),
		cat(flags(1), opt(OptList, nil), opt(OptInfo, (&infoRequest{infos: []InfoType{0, 1, 2, 3}}).encode()),
			meta(OptListMetaContext, "b"), opt(OptAbort, nil)),
		cat(flags(1), opt(OptExportName, []byte("b")), make([]byte, 0), req(CmdWrite, 0, 0, 3, []byte("xyz")),
			req(CmdTrim, CmdFlagFUA, 0, 4096, nil), req(CmdWriteZeroes, 0, 0, 1, nil), disc),
		cat(flags(3), opt(OptStructuredReply, nil), opt(OptNetraidHello, encodeHello("a", []byte("hi"))), goTo("a"),
			req(CmdNetraidControl, 0, 0, 17, encodeChecksumRequest(0, 4096)),
			req(CmdNetraidControl, 0, 1, 3, []byte("ctl")), req(CmdWriteZeroes, CmdFlagFastZero, 0, 512, nil), disc),
		cat(flags(3), opt(0x7777, []byte("x")), opt(OptStartTLS, nil), goTo("zz"), opt(OptGo, []byte{1}),
			meta(OptSetMetaContext, "a"), opt(OptStructuredReply, []byte{1}), opt(OptInfo, nil)[:optHeaderSize-4],
			binary.BigEndian.AppendUint32(nil, maxOptionLen+1)),
		cat(flags(3), goTo("a"), req(CmdWrite, 0, 0, 5000, bytes.Repeat([]byte("x"), 5000)), req(CmdRead, 0, 0, 1, nil)),
		[]byte("GET / HTTP/1.1\r\nHost: nbd\r\n\r\n"),
		flags(1 << 7),
	}
}
