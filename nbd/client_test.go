package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

func TestOutOfOrderReplies(t *testing.T) {
	g := newGate(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "g", Dev: g})
	c := ts.dial(t, ClientOptions{Export: "g"})
	a, b := pattern(1, 4096), pattern(2, 4096)
	if _, err := c.WriteAt(a, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteAt(b, 65536); err != nil {
		t.Fatal(err)
	}
	g.hold(0)
	slow := make(chan []byte, 1)
	go func() {
		p := make([]byte, 4096)
		if _, err := c.ReadAt(p, 0); err != nil {
			t.Errorf("held read: %v", err)
		}
		slow <- p
	}()
	<-g.arrived
	// The second read overtakes the first on the same connection.
	p := make([]byte, 4096)
	if _, err := c.ReadAt(p, 65536); err != nil || !bytes.Equal(p, b) {
		t.Fatalf("read behind a held one: %v", err)
	}
	select {
	case <-slow:
		t.Fatalf("the held read finished before it was released")
	default:
	}
	g.release(0)
	if got := <-slow; !bytes.Equal(got, a) {
		t.Fatalf("held read returned wrong data")
	}
}

func TestTimeoutBreaksClient(t *testing.T) {
	g := newGate(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "g", Dev: g})
	c := ts.dial(t, ClientOptions{Export: "g", Timeout: 100 * time.Millisecond})
	g.hold(4096)
	defer g.release(4096)
	p := make([]byte, 512)
	_, err := c.ReadAt(p, 4096)
	if !errors.Is(err, blockdev.ErrTimeout) || !errors.Is(err, ErrBroken) {
		t.Fatalf("read without a reply: %v, want ErrTimeout and ErrBroken", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatalf("Done not closed after a time-out")
	}
	if !errors.Is(c.Err(), blockdev.ErrTimeout) {
		t.Fatalf("Err() = %v", c.Err())
	}
	// A failed link stays failed, even for requests the server would answer.
	if _, err := c.WriteAt(p, 0); !errors.Is(err, ErrBroken) || !errors.Is(err, blockdev.ErrTimeout) {
		t.Fatalf("write on a broken client: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close of a broken client: %v", err)
	}
}

func TestTimeoutFailsEveryPendingCall(t *testing.T) {
	g := newGate(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "g", Dev: g})
	c := ts.dial(t, ClientOptions{Export: "g", Timeout: 200 * time.Millisecond})
	const n = 8
	for i := range int64(n) {
		g.hold(i * 4096)
	}
	defer func() {
		for i := range int64(n) {
			g.release(i * 4096)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range int64(n) {
		wg.Go(func() {
			_, err := c.ReadAt(make([]byte, 4096), i*4096)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrBroken) || !errors.Is(err, blockdev.ErrTimeout) {
			t.Fatalf("pending call: %v", err)
		}
	}
}

func TestClientSplitsRequests(t *testing.T) {
	mem := blockdev.NewMem(4 << 20)
	ts := startServer(t, "unix", ServerOptions{MaxRequest: 64 << 10}, Export{Name: "m", Dev: mem})
	c := ts.dial(t, ClientOptions{Export: "m", MaxInflight: 3})
	data := pattern(7, 1<<20+100)
	if _, err := c.WriteAt(data, 1000); err != nil {
		t.Fatal(err)
	}
	if got := ts.Stats().Requests; got != 17 {
		t.Fatalf("a %d-byte write took %d requests, want 17", len(data), got)
	}
	got := make([]byte, len(data))
	if _, err := c.ReadAt(got, 1000); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	if err := c.WriteZeroes(0, 3<<20, false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mem.Bytes()[:3<<20], make([]byte, 3<<20)) {
		t.Fatalf("WriteZeroes left data")
	}
}

func TestClientClose(t *testing.T) {
	g := newGate(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "g", Dev: g})
	c := ts.dial(t, ClientOptions{Export: "g"})
	g.hold(0)
	read := make(chan error, 1)
	go func() { _, err := c.ReadAt(make([]byte, 512), 0); read <- err }()
	<-g.arrived
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	<-c.Done()
	if _, err := c.ReadAt(make([]byte, 512), 512); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("read while closing: %v", err)
	}
	select {
	case <-closed:
		t.Fatalf("Close returned with a request in flight")
	default:
	}
	g.release(0)
	if err := <-read; err != nil {
		t.Fatalf("request in flight at Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, blockdev.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	waitFor(t, "the server to see NBD_CMD_DISC", func() bool { return ts.Clients("g") == 0 })
	if ts.Stats().Errors != 0 {
		t.Fatalf("server counted errors: %+v", ts.Stats())
	}
}

func TestClientMap(t *testing.T) {
	dev := newSparse(expSize)
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "s", Dev: dev})
	c := ts.dial(t, ClientOptions{Export: "s"})
	for _, w := range []struct{ off, n int64 }{{8192, 4096}, {100 << 10, 1000}, {expSize - 4096, 4096}} {
		if _, err := c.WriteAt(pattern(1, int(w.n)), w.off); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct{ off, n int64 }{{0, expSize}, {8000, 5000}, {1, 3}, {expSize - 1, 1}} {
		got, err := c.Map(r.off, r.n)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := dev.Map(r.off, r.n)
		if len(got) != len(want) {
			t.Fatalf("Map(%d, %d) = %+v, want %+v", r.off, r.n, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("Map(%d, %d) = %+v, want %+v", r.off, r.n, got, want)
			}
		}
	}

	// REQ_ONE gives one descriptor.
	r := ts.raw(t)
	r.open("s", true, true)
	r.request(CmdBlockStatus, CmdFlagReqOne, 1, 0, expSize, nil)
	flags, typ, p := r.chunk(1)
	if typ != chunkBlockStatus || flags&replyFlagDone == 0 || len(p) != 12 ||
		binary.BigEndian.Uint32(p) != metaAllocationID || binary.BigEndian.Uint32(p[4:]) != 8192 ||
		binary.BigEndian.Uint32(p[8:]) != stateHole|stateZero {
		t.Fatalf("REQ_ONE block status: type %d % x", typ, p)
	}
}

func TestDialErrors(t *testing.T) {
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	_, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "nope"})
	var oe *OptionError
	if !errors.Is(err, ErrUnknownExport) || !errors.As(err, &oe) || oe.Reply != RepErrUnknown || oe.Msg == "" {
		t.Fatalf("Dial of an unknown export: %v", err)
	}

	// A server that accepts and never speaks: the context ends the handshake.
	l, err := listenUnix(t)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if nc, err := l.Accept(); err == nil {
			accepted <- nc
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, "unix", l.Addr().String(), ClientOptions{Timeout: testWait})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial of a mute server: %v", err)
	}
	(<-accepted).Close()
}

// fakeServer runs script on the server end of a pipe whose client end
// goes to NewClient.
func fakeServer(t *testing.T, o ClientOptions, script func(s *raw)) (*Client, error) {
	t.Helper()
	cend, send := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer send.Close()
		send.SetDeadline(time.Now().Add(testWait))
		script(&raw{t: t, nc: send})
	}()
	t.Cleanup(func() { cend.Close(); <-done })
	if o.Timeout == 0 {
		o.Timeout = testWait
	}
	return NewClient(context.Background(), cend, o)
}

// fakeGreet plays the server's handshake: no structured replies, and GO
// answered with an export of size bytes, or unsupported.
func fakeGreet(s *raw, size uint64, withGo bool) {
	g := binary.BigEndian.AppendUint64(nil, magicNBD)
	g = binary.BigEndian.AppendUint64(g, magicOpt)
	s.write(binary.BigEndian.AppendUint16(g, flagFixedNewstyle|flagNoZeroes))
	s.read(4)
	for {
		h := s.read(optHeaderSize)
		opt := Option(binary.BigEndian.Uint32(h[8:]))
		s.read(int(binary.BigEndian.Uint32(h[12:])))
		reply := func(typ Reply, data []byte) {
			b := make([]byte, optReplyHeaderSize)
			putOptReplyHeader(b, opt, typ, uint32(len(data)))
			s.write(b, data)
		}
		switch {
		case opt == OptGo && withGo:
			reply(RepInfo, encodeInfoExport(size, FlagHasFlags|FlagSendFlush))
			reply(RepAck, nil)
			return
		case opt == OptExportName:
			s.write(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint64(nil, size), uint16(FlagHasFlags)))
			return
		default:
			reply(RepErrUnsup, nil)
		}
	}
}

func TestClientProtocolViolations(t *testing.T) {
	for _, c := range []struct {
		name  string
		reply func(s *raw, req []byte)
	}{
		{"unknown handle", func(s *raw, req []byte) {
			b := make([]byte, simpleReplySize)
			putSimpleReply(b, 0, binary.BigEndian.Uint64(req[8:])+1)
			s.write(b)
		}},
		{"bad magic", func(s *raw, req []byte) { s.write(make([]byte, simpleReplySize)) }},
		{"structured reply never negotiated and short", func(s *raw, req []byte) {
			b := make([]byte, chunkHeaderSize+8)
			putChunkHeader(b, replyFlagDone, chunkOffsetData, binary.BigEndian.Uint64(req[8:]), 8+100)
			s.write(b)
		}},
		{"disconnect mid-reply", func(s *raw, req []byte) {
			b := make([]byte, simpleReplySize+100)
			putSimpleReply(b, 0, binary.BigEndian.Uint64(req[8:]))
			s.write(b)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := fakeServer(t, ClientOptions{}, func(s *raw) {
				fakeGreet(s, expSize, true)
				c.reply(s, s.read(requestSize))
			})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			_, err = cl.ReadAt(make([]byte, 512), 0)
			if !errors.Is(err, ErrBroken) {
				t.Fatalf("read answered by a broken server: %v", err)
			}
			<-cl.Done()
		})
	}
}

func TestClientExportNameFallback(t *testing.T) {
	data := pattern(4, 512)
	cl, err := fakeServer(t, ClientOptions{Export: "old"}, func(s *raw) {
		fakeGreet(s, 4096, false)
		req := s.read(requestSize)
		b := make([]byte, simpleReplySize)
		putSimpleReply(b, 0, binary.BigEndian.Uint64(req[8:]))
		s.write(b, data)
		s.read(requestSize) // NBD_CMD_DISC
	})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Size() != 4096 || cl.BlockSize() != 512 || cl.Flags()&FlagSendTrim != 0 {
		t.Fatalf("size %d block %d flags %#x", cl.Size(), cl.BlockSize(), cl.Flags())
	}
	got := make([]byte, 512)
	if _, err := cl.ReadAt(got, 512); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through the old handshake: %v", err)
	}
	// Without SEND_TRIM and SEND_FUA: trim is a no-op, not an error.
	if err := cl.Trim(0, 512); err != nil {
		t.Fatalf("Trim on a server without trim: %v", err)
	}
	if _, err := cl.Map(0, 4096); err != nil {
		t.Fatalf("Map without a context: %v", err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestClientRejectsLocally: against a server whose minimum block size is
// 4 KiB (this server advertises 1, others do not), unaligned requests and
// ranges past the end fail in the client, and none reaches the server.
func TestClientRejectsLocally(t *testing.T) {
	c, err := fakeServer(t, ClientOptions{Export: "4k"}, func(s *raw) {
		g := binary.BigEndian.AppendUint64(nil, magicNBD)
		g = binary.BigEndian.AppendUint64(g, magicOpt)
		s.write(binary.BigEndian.AppendUint16(g, flagFixedNewstyle|flagNoZeroes))
		s.read(4) // client flags
		for {
			h := s.read(optHeaderSize)
			opt := Option(binary.BigEndian.Uint32(h[8:]))
			s.read(int(binary.BigEndian.Uint32(h[12:])))
			reply := func(typ Reply, data []byte) {
				b := make([]byte, optReplyHeaderSize)
				putOptReplyHeader(b, opt, typ, uint32(len(data)))
				s.write(b, data)
			}
			if opt != OptGo {
				reply(RepErrUnsup, nil)
				continue
			}
			reply(RepInfo, encodeInfoExport(expSize, FlagHasFlags|FlagSendFlush|FlagSendTrim))
			reply(RepInfo, blockSizes{min: 4096, preferred: 4096, max: 1 << 20}.encode())
			reply(RepAck, nil)
			break
		}
		// The first request is the disconnect of Close.
		if h := s.read(requestSize); Command(binary.BigEndian.Uint16(h[6:])) != CmdDisc {
			t.Errorf("a %v request reached the server", Command(binary.BigEndian.Uint16(h[6:])))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.BlockSize() != 4096 {
		t.Fatalf("BlockSize = %d", c.BlockSize())
	}
	for _, err := range []error{
		func() error { _, err := c.ReadAt(make([]byte, 512), 0); return err }(),
		func() error { _, err := c.WriteAt(make([]byte, 4096), 512); return err }(),
		c.Trim(0, 100),
	} {
		if !errors.Is(err, blockdev.ErrUnaligned) {
			t.Fatalf("unaligned request: %v", err)
		}
	}
	if _, err := c.ReadAt(make([]byte, 4096), expSize); !errors.Is(err, blockdev.ErrOutOfRange) {
		t.Fatalf("read past the end: %v", err)
	}
	c.Close()
}

// TestClientUnalignedOnThisServer: this server takes any request, even on
// a device that states a 4 KiB block size.
func TestClientUnalignedOnThisServer(t *testing.T) {
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "4k", Dev: blockdev.NewAligned(aligned4k{blockdev.NewMem(expSize)})})
	c := ts.dial(t, ClientOptions{Export: "4k"})
	if c.BlockSize() != 512 {
		t.Fatalf("BlockSize = %d, want 512: the server's minimum of 1, and the client's floor", c.BlockSize())
	}
	data := pattern(4, 5000)
	if _, err := c.WriteAt(data, 3000); err != nil {
		t.Fatalf("unaligned write: %v", err)
	}
	got := make([]byte, len(data))
	if _, err := c.ReadAt(got, 3000); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("unaligned read back: %v (equal %v)", err, bytes.Equal(got, data))
	}
}

// flushGate is a device whose flushes wait for release, counted.
type flushGate struct {
	blockdev.Device
	n       atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (g *flushGate) Flush() error {
	g.n.Add(1)
	g.entered <- struct{}{}
	<-g.release
	return g.Device.Flush()
}

// TestClientSharesFlushes: Flushes that come while one is on the wire
// share one more FLUSH request, sent after the first is answered.
func TestClientSharesFlushes(t *testing.T) {
	g := &flushGate{Device: blockdev.NewMem(expSize), entered: make(chan struct{}, 8), release: make(chan struct{})}
	ts := startServer(t, "unix", ServerOptions{}, Export{Name: "g", Dev: g})
	c := ts.dial(t, ClientOptions{Export: "g"})
	errs := make(chan error, 5)
	go func() { errs <- c.Flush() }()
	<-g.entered
	for range 4 {
		go func() { errs <- c.Flush() }()
	}
	waitFor(t, "the four flushes to wait for the first", func() bool { return c.flushes.Callers() == 5 })
	g.release <- struct{}{}
	<-g.entered
	close(g.release) // this flush, and any the server makes as it stops
	for range 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := g.n.Load(); n != 2 {
		t.Fatalf("the server saw %d FLUSH requests for 5 Flushes, want 2", n)
	}
}
