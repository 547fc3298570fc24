package nbd

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// aligned4k is a device that states a 4 KiB logical block size.
type aligned4k struct{ *blockdev.Mem }

func (aligned4k) BlockSize() int { return 4096 }

func negotiationServer(t *testing.T, o ServerOptions) *testServer {
	return startServer(t, "unix", o,
		Export{Name: "first", Description: "the first one", Dev: blockdev.NewMem(expSize)},
		Export{Name: "second", Dev: blockdev.NewMem(2 * expSize), ReadOnly: true},
		Export{Name: "4k", Dev: aligned4k{blockdev.NewMem(expSize)}})
}

func TestNegotiation(t *testing.T) {
	ts := negotiationServer(t, ServerOptions{MaxRequest: 1 << 20})
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *testServer)
	}{
		{"list", testOptList},
		{"info then go on the default export", testOptInfoGo},
		{"errors keep the handshake going", testOptErrors},
		{"block sizes", testOptBlockSizes},
		{"export name", testOptExportName},
		{"abort", testOptAbort},
		{"option too big", testOptTooBig},
		{"bad option magic", testOptBadMagic},
		{"unknown client flags", testClientFlags},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, ts) })
	}
}

func testOptList(t *testing.T, ts *testServer) {
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	r.option(OptList, nil)
	var names []string
	for {
		typ, data := r.reply(OptList)
		if typ == RepAck {
			break
		}
		if typ != RepServer {
			t.Fatalf("list reply %v", typ)
		}
		n := binary.BigEndian.Uint32(data)
		names = append(names, string(data[4:4+n])+"|"+string(data[4+n:]))
	}
	if got := names; len(got) != 3 || got[0] != "first|the first one" || got[1] != "second|" {
		t.Fatalf("list = %q", got)
	}
	r.option(OptList, []byte{1})
	r.expectReply(OptList, RepErrInvalid)
}

func testOptInfoGo(t *testing.T, ts *testServer) {
	r := ts.raw(t)
	r.greet(clientFixedNewstyle | clientNoZeroes)
	q := infoRequest{name: "", infos: []InfoType{InfoName, InfoDescription, InfoBlockSize, 77}}
	r.option(OptInfo, q.encode())
	got := map[InfoType][]byte{}
	for {
		typ, data := r.reply(OptInfo)
		if typ == RepAck {
			break
		}
		if typ != RepInfo {
			t.Fatalf("info reply %v %q", typ, data)
		}
		got[InfoType(binary.BigEndian.Uint16(data))] = data[2:]
	}
	exp := got[InfoExport]
	if len(exp) != 10 || binary.BigEndian.Uint64(exp) != expSize {
		t.Fatalf("export info % x", exp)
	}
	flags := TransmissionFlags(binary.BigEndian.Uint16(exp[8:]))
	want := FlagHasFlags | FlagSendFlush | FlagSendFUA | FlagSendTrim | FlagSendWriteZeroes |
		FlagSendFastZero | FlagCanMultiConn | FlagSendCache
	if flags != want {
		t.Fatalf("flags %#x, want %#x (no DF without structured replies)", flags, want)
	}
	if string(got[InfoName]) != "first" || string(got[InfoDescription]) != "the first one" {
		t.Fatalf("name %q description %q", got[InfoName], got[InfoDescription])
	}
	bs := got[InfoBlockSize]
	if len(bs) != 12 || binary.BigEndian.Uint32(bs) != 1 || binary.BigEndian.Uint32(bs[4:]) != 4096 ||
		binary.BigEndian.Uint32(bs[8:]) != 1<<20 {
		t.Fatalf("block sizes % x", bs)
	}
	r.option(OptGo, (&infoRequest{name: "second"}).encode())
	exp = r.expectReply(OptGo, RepInfo)
	if binary.BigEndian.Uint64(exp[2:]) != 2*expSize || TransmissionFlags(binary.BigEndian.Uint16(exp[10:]))&FlagReadOnly == 0 {
		t.Fatalf("export info of second % x", exp)
	}
	r.expectReply(OptGo, RepAck)
	r.request(CmdRead, 0, 1, 2*expSize-512, 512, nil)
	if e := r.simple(1); e != 0 {
		t.Fatalf("read: %v", e)
	}
}

func testOptErrors(t *testing.T, ts *testServer) {
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	r.option(OptInfo, (&infoRequest{name: "nope"}).encode())
	r.expectReply(OptInfo, RepErrUnknown)
	r.option(OptGo, []byte{0, 0, 0, 9})
	r.expectReply(OptGo, RepErrInvalid)
	r.option(Option(0x1234), []byte("whatever"))
	r.expectReply(Option(0x1234), RepErrUnsup)
	r.option(OptStartTLS, nil)
	r.expectReply(OptStartTLS, RepErrPolicy)
	r.option(OptNetraidHello, encodeHello("first", nil))
	r.expectReply(OptNetraidHello, RepErrUnsup)
	meta := (&metaRequest{name: "first", queries: []string{metaBaseAllocation}}).encode()
	r.option(OptSetMetaContext, meta)
	r.expectReply(OptSetMetaContext, RepErrInvalid)
	r.option(OptStructuredReply, []byte{1})
	r.expectReply(OptStructuredReply, RepErrInvalid)
	r.option(OptStructuredReply, nil)
	r.expectReply(OptStructuredReply, RepAck)
	r.option(OptListMetaContext, (&metaRequest{name: "first"}).encode())
	if data := r.expectReply(OptListMetaContext, RepMetaContext); string(data[4:]) != metaBaseAllocation {
		t.Fatalf("listed context %q", data[4:])
	}
	r.expectReply(OptListMetaContext, RepAck)
	r.option(OptListMetaContext, (&metaRequest{name: "first", queries: []string{"qemu:dirty-bitmap:x"}}).encode())
	r.expectReply(OptListMetaContext, RepAck)
	r.option(OptSetMetaContext, (&metaRequest{name: "nope", queries: []string{metaBaseAllocation}}).encode())
	r.expectReply(OptSetMetaContext, RepErrUnknown)
	r.option(OptGo, (&infoRequest{name: "first"}).encode())
	exp := r.expectReply(OptGo, RepInfo)
	if TransmissionFlags(binary.BigEndian.Uint16(exp[10:]))&FlagSendDF == 0 {
		t.Fatalf("structured connection without SEND_DF")
	}
	r.expectReply(OptGo, RepAck)
	// The last SET_META_CONTEXT failed, so no context is selected.
	r.request(CmdBlockStatus, 0, 1, 0, 512, nil)
	if _, typ, p := r.chunk(1); typ != chunkError || Errno(binary.BigEndian.Uint32(p)) != EINVAL {
		t.Fatalf("block status without a context: chunk %d % x", typ, p)
	}
}

func testOptBlockSizes(t *testing.T, ts *testServer) {
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	r.option(OptInfo, (&infoRequest{name: "4k", infos: []InfoType{InfoBlockSize}}).encode())
	r.expectReply(OptInfo, RepInfo)
	bs := r.expectReply(OptInfo, RepInfo)
	// Any request is taken: the minimum is 1 on a 4 KiB device too.
	if binary.BigEndian.Uint16(bs) != uint16(InfoBlockSize) || binary.BigEndian.Uint32(bs[2:]) != 1 ||
		binary.BigEndian.Uint32(bs[6:]) != 4096 || binary.BigEndian.Uint32(bs[10:]) != 1<<20 {
		t.Fatalf("block size info % x", bs)
	}
	r.expectReply(OptInfo, RepAck)
	// A client that does not ask is not refused.
	r.option(OptGo, (&infoRequest{name: "4k"}).encode())
	r.expectReply(OptGo, RepInfo)
	r.expectReply(OptGo, RepAck)
}

func testOptExportName(t *testing.T, ts *testServer) {
	for _, noZeroes := range []bool{false, true} {
		r := ts.raw(t)
		flags, n := clientFixedNewstyle, 10+exportNameZeroes
		if noZeroes {
			flags, n = flags|clientNoZeroes, 10
		}
		r.greet(flags)
		r.option(OptExportName, []byte("first"))
		b := r.read(n)
		if binary.BigEndian.Uint64(b) != expSize || TransmissionFlags(binary.BigEndian.Uint16(b[8:]))&FlagHasFlags == 0 {
			t.Fatalf("export name reply % x", b[:10])
		}
		r.request(CmdFlush, 0, 7, 0, 0, nil)
		if e := r.simple(7); e != 0 {
			t.Fatalf("flush: %v", e)
		}
	}
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	r.option(OptExportName, []byte("nope"))
	r.expectClosed()
}

func testOptAbort(t *testing.T, ts *testServer) {
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	r.option(OptAbort, nil)
	r.expectReply(OptAbort, RepAck)
	r.expectClosed()
}

func testOptTooBig(t *testing.T, ts *testServer) {
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	h := make([]byte, optHeaderSize)
	putOptHeader(h, OptInfo, maxOptionLen+1)
	r.write(h)
	r.expectReply(OptInfo, RepErrTooBig)
	r.expectClosed()
}

func testOptBadMagic(t *testing.T, ts *testServer) {
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	r.write(make([]byte, optHeaderSize))
	r.expectClosed()
}

func testClientFlags(t *testing.T, ts *testServer) {
	r := ts.raw(t)
	r.greet(clientFixedNewstyle | 1<<5)
	r.expectClosed()
}

func TestNegotiationTimeout(t *testing.T) {
	ts := negotiationServer(t, ServerOptions{NegotiationTimeout: 50 * time.Millisecond})
	r := ts.raw(t)
	r.greet(clientFixedNewstyle)
	r.expectClosed() // the client never chose an export
	c := ts.dial(t, ClientOptions{Export: "first"})
	if _, err := c.ReadAt(make([]byte, 512), 0); err != nil {
		t.Fatalf("a prompt client after a slow one: %v", err)
	}
}
