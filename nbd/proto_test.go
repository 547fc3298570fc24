package nbd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/netraid/netraid/blockdev"
)

func TestRequestWireFormat(t *testing.T) {
	req := Request{Flags: CmdFlagFUA | CmdFlagNoHole, Type: CmdWriteZeroes, Handle: 0x0102030405060708,
		Offset: 0x1112131415161718, Length: 0x21222324}
	want := []byte{
		0x25, 0x60, 0x95, 0x13, // magic
		0x00, 0x03, // flags
		0x00, 0x06, // type
		1, 2, 3, 4, 5, 6, 7, 8,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		0x21, 0x22, 0x23, 0x24,
	}
	got := make([]byte, requestSize)
	req.encode(got)
	if !bytes.Equal(got, want) {
		t.Fatalf("encode = % x, want % x", got, want)
	}
	back, err := decodeRequest(want)
	if err != nil || back != req {
		t.Fatalf("decode = %+v, %v; want %+v", back, err, req)
	}
	bad := bytes.Clone(want)
	bad[3] ^= 1
	if _, err := decodeRequest(bad); !errors.Is(err, ErrProtocol) {
		t.Fatalf("decode with bad magic: %v, want ErrProtocol", err)
	}
	if _, err := decodeRequest(want[:27]); !errors.Is(err, ErrProtocol) {
		t.Fatalf("decode of a short header: %v, want ErrProtocol", err)
	}
}

func TestRequestReader(t *testing.T) {
	var stream bytes.Buffer
	h := make([]byte, requestSize)
	(&Request{Type: CmdWrite, Handle: 1, Length: 5}).encode(h)
	stream.Write(h)
	stream.WriteString("hello")
	(&Request{Type: CmdWrite, Handle: 2, Length: 1 << 20}).encode(h)
	stream.Write(h)
	stream.Write(make([]byte, 1<<20))
	(&Request{Type: CmdRead, Handle: 3, Length: 9}).encode(h)
	stream.Write(h)
	(&Request{Type: CmdWrite, Handle: 4, Length: 10}).encode(h)
	stream.Write(h)
	stream.WriteString("short")

	rr := requestReader{r: &stream}
	r1, err := rr.next()
	p := make([]byte, r1.Length)
	if err != nil || r1.Handle != 1 || !r1.hasPayload() || rr.payload(p) != nil || string(p) != "hello" {
		t.Fatalf("first request %+v %v payload %q", r1, err, p)
	}
	r2, err := rr.next()
	if err != nil || r2.Handle != 2 || rr.discard(int64(r2.Length)) != nil {
		t.Fatalf("second request %+v %v", r2, err)
	}
	r3, err := rr.next()
	if err != nil || r3.Handle != 3 || r3.hasPayload() {
		t.Fatalf("third request %+v %v", r3, err)
	}
	r4, err := rr.next()
	if err != nil || r4.Handle != 4 {
		t.Fatalf("fourth request %+v %v", r4, err)
	}
	if err := rr.payload(make([]byte, r4.Length)); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated payload: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := rr.next(); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	rr = requestReader{r: bytes.NewReader(make([]byte, 10))}
	if err := rr.discard(11); err != io.ErrUnexpectedEOF {
		t.Fatalf("short discard: %v", err)
	}
}

func TestRequestEnd(t *testing.T) {
	for _, c := range []struct {
		off  uint64
		n    uint32
		end  int64
		fits bool
	}{
		{0, 0, 0, true},
		{1 << 40, 4096, 1<<40 + 4096, true},
		{1<<63 - 1, 0, 1<<63 - 1, true},
		{1<<63 - 1, 1, 0, false},
		{1 << 63, 0, 0, false},
		{^uint64(0), 0xffffffff, 0, false},
	} {
		r := Request{Offset: c.off, Length: c.n}
		end, fits := r.end()
		if end != c.end || fits != c.fits {
			t.Errorf("end(off %d len %d) = %d, %v; want %d, %v", c.off, c.n, end, fits, c.end, c.fits)
		}
	}
}

func TestOptionCodec(t *testing.T) {
	q := infoRequest{name: "disk0", infos: []InfoType{InfoBlockSize, InfoName}}
	back, err := parseInfoRequest(q.encode())
	if err != nil || back.name != q.name || len(back.infos) != 2 || !back.wants(InfoName) || back.wants(InfoDescription) {
		t.Fatalf("info request round trip: %+v, %v", back, err)
	}
	m := metaRequest{name: "disk0", queries: []string{"base:allocation", "qemu:dirty-bitmap:x"}}
	mback, err := parseMetaRequest(m.encode())
	if err != nil || mback.name != m.name || len(mback.queries) != 2 || mback.queries[1] != m.queries[1] {
		t.Fatalf("meta request round trip: %+v, %v", mback, err)
	}
	name, payload, err := parseHello(encodeHello("disk0", []byte{1, 2, 3}))
	if err != nil || name != "disk0" || !bytes.Equal(payload, []byte{1, 2, 3}) {
		t.Fatalf("hello round trip: %q %v %v", name, payload, err)
	}

	for _, c := range []struct {
		name  string
		parse func([]byte) error
		data  []byte
		want  error
	}{
		{"info empty", infoParse, nil, ErrProtocol},
		{"info name past end", infoParse, []byte{0, 0, 0, 9, 'a', 0, 0}, ErrProtocol},
		{"info missing count", infoParse, []byte{0, 0, 0, 1, 'a'}, ErrProtocol},
		{"info count past end", infoParse, []byte{0, 0, 0, 0, 0, 2, 0, 1}, ErrProtocol},
		{"info trailing", infoParse, []byte{0, 0, 0, 0, 0, 0, 9}, ErrProtocol},
		{"info NUL in name", infoParse, []byte{0, 0, 0, 1, 0, 0, 0}, ErrProtocol},
		{"info bad UTF-8", infoParse, []byte{0, 0, 0, 1, 0xff, 0, 0}, ErrProtocol},
		{"info huge name length", infoParse, []byte{0xff, 0xff, 0xff, 0xff, 0, 0}, ErrProtocol},
		{"meta query past end", metaParse, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 'b'}, ErrProtocol},
		{"meta too many", metaParse, []byte{0, 0, 0, 0, 0, 0, 1, 0}, errTooManyQueries},
		{"meta trailing", metaParse, []byte{0, 0, 0, 0, 0, 0, 0, 0, 1}, ErrProtocol},
		{"hello short", helloParse, []byte{0, 0, 0}, ErrProtocol},
		{"hello name past end", helloParse, []byte{0, 0, 0, 4, 'a'}, ErrProtocol},
		{"info ok", infoParse, []byte{0, 0, 0, 0, 0, 0}, nil},
		{"meta ok", metaParse, []byte{0, 0, 0, 0, 0, 0, 0, 0}, nil},
	} {
		if err := c.parse(c.data); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func infoParse(b []byte) error  { _, err := parseInfoRequest(b); return err }
func metaParse(b []byte) error  { _, err := parseMetaRequest(b); return err }
func helloParse(b []byte) error { _, _, err := parseHello(b); return err }

func TestBlockSizesValid(t *testing.T) {
	for _, c := range []struct {
		s  blockSizes
		ok bool
	}{
		{blockSizes{1, 4096, 32 << 20}, true},
		{blockSizes{512, 4096, 0xffffffff}, true},
		{blockSizes{4096, 4096, 4096}, true},
		{blockSizes{65536, 65536, 1 << 20}, true},
		{blockSizes{0, 4096, 4096}, false},
		{blockSizes{3, 4096, 4096}, false},
		{blockSizes{1 << 17, 1 << 17, 1 << 20}, false},
		{blockSizes{1, 256, 4096}, false},
		{blockSizes{4096, 512, 1 << 20}, false},
		{blockSizes{4096, 4096, 5000}, false},
		{blockSizes{4096, 4096, 2048}, false},
	} {
		if err := c.s.valid(); (err == nil) != c.ok {
			t.Errorf("%+v.valid() = %v, want ok=%v", c.s, err, c.ok)
		}
	}
}

func TestErrnoOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Errno
	}{
		{nil, 0},
		{fmt.Errorf("ctx: %w", blockdev.ErrOutOfRange), EINVAL},
		{blockdev.ErrUnaligned, EINVAL},
		{fmt.Errorf("x: %w", blockdev.ErrNoSpace), ENOSPC},
		{blockdev.ErrReadOnly, EPERM},
		{fmt.Errorf("x: %w", blockdev.ErrTimeout), EIO},
		{blockdev.ErrClosed, ESHUTDOWN},
		{ErrShutdown, ESHUTDOWN},
		{ErrNoHello, EINVAL},
		{ErrTooLarge, EINVAL},
		{errFastZero, ENOTSUP},
		{&hookError{"control: no"}, EIO},
		{errors.New("disk on fire"), EIO},
		{fmt.Errorf("write: %w", syscall.EDQUOT), ENOSPC},
		{fmt.Errorf("write: %w", syscall.EFBIG), ENOSPC},
		{fmt.Errorf("write: %w", syscall.EROFS), EPERM},
		{fmt.Errorf("write: %w", syscall.EIO), EIO},
		// An error reply relayed from a remote leg keeps its meaning.
		{&Error{Op: CmdWrite, Errno: ENOSPC}, ENOSPC},
		{&Error{Op: CmdWrite, Errno: EPERM}, EPERM},
		{&Error{Op: CmdRead, Errno: EIO}, EIO},
	} {
		if got := errnoOf(c.err); got != c.want {
			t.Errorf("errnoOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestErrorUnwrap(t *testing.T) {
	for _, c := range []struct {
		errno Errno
		want  error
	}{
		{EPERM, blockdev.ErrReadOnly}, {ENOSPC, blockdev.ErrNoSpace}, {EINVAL, ErrInvalid},
		{ENOTSUP, errors.ErrUnsupported}, {ESHUTDOWN, ErrShutdown}, {EIO, ErrRemoteIO}, {ENOMEM, ErrRemoteIO},
	} {
		if err := error(&Error{Errno: c.errno}); !errors.Is(err, c.want) {
			t.Errorf("Error{%v} does not match %v", c.errno, c.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	long := bytes.Repeat([]byte("é"), maxString) // 2 bytes each
	for _, c := range []struct {
		err  error
		want string
	}{
		{errors.New("plain"), "plain"},
		{errors.New("nul\x00byte"), "nulbyte"},
		{errors.New("bad \xff utf8"), "bad ? utf8"},
		{errors.New(string(long)), string(long[:maxString])},
		{errors.New("x" + string(long)), "x" + string(long[:maxString-2])},
	} {
		if got := errorMessage(c.err); got != c.want {
			t.Errorf("errorMessage(%.20q...) = %.20q... (len %d), want len %d", c.err.Error(), got, len(got), len(c.want))
		}
	}
}

func TestCheckRequest(t *testing.T) {
	const size = 1 << 20
	base := session{size: size, structured: true, metaAlloc: true, hello: true, maxRequest: 64 << 10, fastZero: true}
	ro := base
	ro.readOnly = true
	simple := base
	simple.structured, simple.metaAlloc, simple.hello, simple.fastZero = false, false, false, false
	for _, c := range []struct {
		name string
		s    session
		req  Request
		want Errno
	}{
		{"read", base, Request{Type: CmdRead, Offset: size - 4096, Length: 4096}, 0},
		{"read zero length at end", base, Request{Type: CmdRead, Offset: size}, 0},
		{"read past end", base, Request{Type: CmdRead, Offset: size - 4096, Length: 4097}, EINVAL},
		{"read offset overflow", base, Request{Type: CmdRead, Offset: ^uint64(0) - 10, Length: 100}, EINVAL},
		{"read too large", base, Request{Type: CmdRead, Length: 64<<10 + 1}, EINVAL},
		{"read DF", base, Request{Type: CmdRead, Flags: CmdFlagDF, Length: 512}, 0},
		{"read DF without structured", simple, Request{Type: CmdRead, Flags: CmdFlagDF, Length: 512}, EINVAL},
		{"read FUA", base, Request{Type: CmdRead, Flags: CmdFlagFUA, Length: 512}, 0},
		{"read NO_HOLE", base, Request{Type: CmdRead, Flags: CmdFlagNoHole, Length: 512}, EINVAL},
		{"read unknown flag", base, Request{Type: CmdRead, Flags: 1 << 9, Length: 512}, EINVAL},
		{"write", base, Request{Type: CmdWrite, Flags: CmdFlagFUA, Offset: 512, Length: 512}, 0},
		{"write past end", base, Request{Type: CmdWrite, Offset: size, Length: 1}, ENOSPC},
		{"write too large", base, Request{Type: CmdWrite, Length: 64<<10 + 1}, EINVAL},
		{"write read-only", ro, Request{Type: CmdWrite, Length: 512}, EPERM},
		{"write read-only past end", ro, Request{Type: CmdWrite, Offset: size, Length: 512}, EPERM},
		{"trim", base, Request{Type: CmdTrim, Length: size}, 0},
		{"trim past end", base, Request{Type: CmdTrim, Offset: 1, Length: size}, EINVAL},
		{"trim read-only", ro, Request{Type: CmdTrim, Length: 512}, EPERM},
		{"zeroes whole device beyond max", base, Request{Type: CmdWriteZeroes, Flags: CmdFlagNoHole, Length: size}, 0},
		{"zeroes past end", base, Request{Type: CmdWriteZeroes, Offset: size, Length: 1}, ENOSPC},
		{"zeroes read-only", ro, Request{Type: CmdWriteZeroes, Length: 1}, EPERM},
		{"zeroes fast", base, Request{Type: CmdWriteZeroes, Flags: CmdFlagFastZero, Length: 512}, 0},
		{"zeroes fast on a slow device", simple, Request{Type: CmdWriteZeroes, Flags: CmdFlagFastZero, Length: 512}, ENOTSUP},
		{"zeroes DF", base, Request{Type: CmdWriteZeroes, Flags: CmdFlagDF, Length: 512}, EINVAL},
		{"flush", base, Request{Type: CmdFlush}, 0},
		{"flush with range", base, Request{Type: CmdFlush, Offset: 512}, EINVAL},
		{"flush read-only", ro, Request{Type: CmdFlush}, 0},
		{"cache", base, Request{Type: CmdCache, Length: size}, 0},
		{"cache past end", base, Request{Type: CmdCache, Offset: size, Length: 1}, EINVAL},
		{"block status", base, Request{Type: CmdBlockStatus, Flags: CmdFlagReqOne, Length: size}, 0},
		{"block status zero length", base, Request{Type: CmdBlockStatus}, EINVAL},
		{"block status past end", base, Request{Type: CmdBlockStatus, Offset: 1, Length: size}, EINVAL},
		{"block status without context", simple, Request{Type: CmdBlockStatus, Length: 512}, EINVAL},
		{"control", base, Request{Type: CmdNetraidControl, Length: 17}, 0},
		{"control too large", base, Request{Type: CmdNetraidControl, Length: 64<<10 + 1}, EINVAL},
		{"control without hello", simple, Request{Type: CmdNetraidControl, Length: 17}, EINVAL},
		{"control on read-only", ro, Request{Type: CmdNetraidControl, Length: 17}, 0},
		{"resize", base, Request{Type: 8}, EINVAL},
		{"unknown command", base, Request{Type: 0x77}, EINVAL},
	} {
		if got := errnoOf(checkRequest(&c.req, &c.s)); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestStatusDescriptors(t *testing.T) {
	data := func(off, n int64) blockdev.Extent { return blockdev.Extent{Off: off, Len: n} }
	hole := func(off, n int64) blockdev.Extent { return blockdev.Extent{Off: off, Len: n, Hole: true, Zero: true} }
	zero := func(off, n int64) blockdev.Extent { return blockdev.Extent{Off: off, Len: n, Zero: true} }
	const hz = stateHole | stateZero
	many := make([]blockdev.Extent, maxDescriptors+10)
	for i := range many {
		many[i] = data(int64(i), 1)
		if i%2 == 1 {
			many[i] = hole(int64(i), 1)
		}
	}
	for _, c := range []struct {
		name   string
		ext    []blockdev.Extent
		off, n int64
		one    bool
		want   []descriptor
	}{
		{"one extent", []blockdev.Extent{data(0, 4096)}, 0, 4096, false, []descriptor{{4096, 0}}},
		{"mixed", []blockdev.Extent{data(0, 512), hole(512, 1024), zero(1536, 512)}, 0, 2048, false,
			[]descriptor{{512, 0}, {1024, hz}, {512, stateZero}}},
		{"merged", []blockdev.Extent{hole(0, 512), hole(512, 512), data(1024, 1)}, 0, 1025, false,
			[]descriptor{{1024, hz}, {1, 0}}},
		{"clipped both ends", []blockdev.Extent{data(0, 1000), hole(1000, 1000)}, 500, 1000, false,
			[]descriptor{{500, 0}, {500, hz}}},
		{"req one", []blockdev.Extent{data(0, 512), hole(512, 512)}, 0, 1024, true, []descriptor{{512, 0}}},
		{"gap cuts", []blockdev.Extent{data(0, 512), hole(1024, 512)}, 0, 1536, false, []descriptor{{512, 0}}},
		{"starts late", []blockdev.Extent{hole(512, 512)}, 0, 1024, false, []descriptor{{1024, 0}}},
		{"empty map", nil, 0, 1024, false, []descriptor{{1024, 0}}},
		{"zero-length extent", []blockdev.Extent{data(0, 0), hole(0, 8)}, 0, 8, false, []descriptor{{8, 0}}},
		{"overlong", []blockdev.Extent{hole(0, 1<<40)}, 1 << 39, 4096, false, []descriptor{{4096, hz}}},
		{"bounded", many, 0, int64(len(many)), false, nil},
	} {
		got := statusDescriptors(c.ext, c.off, c.n, c.one)
		if c.name == "bounded" {
			if len(got) != maxDescriptors {
				t.Errorf("%s: %d descriptors, want %d", c.name, len(got), maxDescriptors)
			}
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRangeSet(t *testing.T) {
	var s rangeSet
	for _, c := range []struct {
		off, n int64
		ok     bool
	}{
		{100, 50, true}, {0, 50, true}, {50, 50, true}, {149, 2, false}, {99, 1, false},
		{150, 10, true}, {200, 10, true}, {170, 30, true}, {160, 10, true}, {0, 1, false}, {209, 1, false},
	} {
		if got := s.add(c.off, c.n); got != c.ok {
			t.Errorf("add(%d, %d) = %v, want %v (set %v)", c.off, c.n, got, c.ok, s.r)
		}
	}
	if s.total != 210 || len(s.r) != 1 || s.r[0] != (segment{0, 210}) {
		t.Fatalf("set %v total %d, want one [0,210)", s.r, s.total)
	}
	var many rangeSet
	for i := range int64(maxReadSegments) {
		if !many.add(2*i, 1) {
			t.Fatalf("add %d failed", i)
		}
	}
	if many.add(2*maxReadSegments, 1) {
		t.Fatalf("set grew past %d ranges", maxReadSegments)
	}
	if !many.add(1, 1) || many.total != maxReadSegments+1 {
		t.Fatalf("joining two ranges failed: total %d", many.total)
	}
}

func TestExtentOf(t *testing.T) {
	for _, c := range []struct {
		flags uint32
		want  blockdev.Extent
	}{
		{0, blockdev.Extent{Off: 1, Len: 2}},
		{stateHole | stateZero, blockdev.Extent{Off: 1, Len: 2, Hole: true, Zero: true}},
		{stateZero, blockdev.Extent{Off: 1, Len: 2, Zero: true}},
		// A hole of unknown content is not a blockdev hole, which reads zeroes.
		{stateHole, blockdev.Extent{Off: 1, Len: 2}},
		{stateZero | 1<<7, blockdev.Extent{Off: 1, Len: 2, Zero: true}},
	} {
		if got := extentOf(1, 2, c.flags); got != c.want {
			t.Errorf("extentOf(flags %#x) = %+v, want %+v", c.flags, got, c.want)
		}
	}
}
