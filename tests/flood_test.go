package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/nbd"
	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// The export server's defaults, which bound what a connection can hold.
const (
	maxRequest          = 32 << 20       // largest request
	inflightPerConn     = 4 * maxRequest // request buffers per connection
	defaultMemoryBudget = 512 << 20      // netraid serve --memory-budget
)

// TestFloodHostileClients: a node with --max-connections 32 meets a flood
// of connections that never negotiate, oversized, absurd and malformed
// requests, reads whose replies are never taken and writes whose payload
// stops halfway. A client connected before keeps writing and verifying
// throughout, new clients get in as the server promises (nbd/doc.go,
// admission), a connection that never negotiates is dropped, and the
// node's memory stays within what the limits allow.
func TestFloodHostileClients(t *testing.T) {
	requireTools(t, "nbdinfo")
	const maxConns = 32 // in transmission, and as many in handshake
	n, addr := serveNode(t, "flood", "--max-connections", strconv.Itoa(maxConns))
	pid := daemonPID(t, n)
	baseline := memKiB(t, pid, "VmRSS")
	good := startGoodClient(t, addr, "flood")

	// A burst of connections that are held and never negotiate, and a
	// stream of more: they take turns in the handshake slots, and never
	// touch a connection in transmission.
	flood := openConns(t, addr, 600)
	stopChurn := churn(t, addr)
	good.progress(t, "during the connection flood")
	flood = append(flood, stopChurn()...)
	// The promise to a new client: it is displaced only once maxConns
	// connections arrived since the server last heard from it. With the
	// flood held, nothing arrives after it: it gets in, every time.
	for i := range 3 {
		c := dialClient(t, addr, "flood")
		checkWriteRead(t, c, int64(16+i)<<20, byte(i))
		c.Close()
	}
	harness.Run(t, "nbdinfo", "nbd://"+addr+"/flood")
	// A client that spoke is not displaced by maxConns-1 newer
	// connections, however slowly it goes on.
	spoke := dialRaw(t, addr)
	spoke.speak()
	for range maxConns - 1 {
		dialRaw(t, addr).readGreeting()
	}
	spoke.openAfterSpeaking("flood")
	spoke.request(cmdRead, 1, 0, 4096, nil)
	spoke.expectErrno(1, 0)
	spoke.read(4096)
	if open := stillOpen(flood); open > maxConns {
		t.Fatalf("%d flood connections still open, limit %d in handshake", open, maxConns)
	} else {
		t.Logf("%d connections flooded, %d left open by the server (limit %d)", len(flood), open, maxConns)
	}
	// Opened after the burst, this one is not the oldest in handshake:
	// it is the negotiation time-out that must drop it.
	silent := dialRaw(t, addr)
	silent.readGreeting()
	silentSince := time.Now()

	before, _ := n.Status()
	// Oversized: the payload is read and dropped, never stored.
	r := dialRaw(t, addr)
	r.open("flood")
	r.request(cmdWrite, 1, 0, 2*maxRequest, nil)
	r.streamZeroes(2 * maxRequest)
	r.expectErrno(1, 22)
	// Absurd and out-of-range requests.
	r.request(cmdRead, 2, 0, 0xffffffff, nil)
	r.expectErrno(2, 22)
	r.request(cmdRead, 3, uint64(before.Size), 4096, nil)
	r.expectErrno(3, 22)
	// Reads whose replies are never taken, and writes whose payload
	// stops halfway: each holds what the server lets one connection hold.
	const hogs, stalls = 4, 4
	for range hogs {
		h := dialRaw(t, addr)
		h.open("flood")
		for i := range 16 {
			h.request(cmdRead, uint64(i), uint64(i)*maxRequest%uint64(before.Size-maxRequest), maxRequest, nil)
		}
	}
	for range stalls {
		s := dialRaw(t, addr)
		s.open("flood")
		s.request(cmdWrite, 1, 0, maxRequest, nil)
		s.streamZeroes(1 << 20)
	}
	// A broken stream ends its connection only.
	bad := dialRaw(t, addr)
	bad.open("flood")
	bad.write(bytes.Repeat([]byte{0xde}, 28))
	bad.expectClosed(20 * time.Second)
	n.WaitStatus(30*time.Second, "the hostile requests received", func(s node.Status) bool {
		return s.Export.Requests >= before.Export.Requests+3+hogs*5+stalls
	})
	c := dialClient(t, addr, "flood")
	checkWriteRead(t, c, 24<<20, 0x77)
	c.Close()
	good.progress(t, "while the hostile requests are held")
	silent.expectClosed(30 * time.Second)
	t.Logf("a connection that never negotiated was dropped after %v", time.Since(silentSince).Round(100*time.Millisecond))

	ops, worst := good.stop(t)
	peak := memKiB(t, pid, "VmHWM")
	// Go's collector lets the heap grow to twice what is live; what is
	// live is what the connections may hold, within the memory budget.
	held := min(int64(hogs+stalls+1)*inflightPerConn, defaultMemoryBudget)
	bound := baseline<<10 + 2*held + 128<<20
	t.Logf("peak RSS %s (baseline %s; bound %s: twice %s in flight, plus 128 MiB)",
		humanize.IBytes(uint64(peak<<10)), humanize.IBytes(uint64(baseline<<10)), humanize.IBytes(uint64(bound)),
		humanize.IBytes(uint64(held)))
	t.Logf("the well-behaved client: %d verified write+read pairs, slowest %v", ops, worst.Round(time.Millisecond))
	if peak<<10 > bound {
		t.Fatalf("peak RSS %s is above the bound %s", humanize.IBytes(uint64(peak<<10)), humanize.IBytes(uint64(bound)))
	}
	n.WaitLog(t, 10*time.Second, "the node did not log the connection limit", func(log string) bool {
		return strings.Contains(log, "connection limit reached")
	})
}

// goodClient writes and reads back its own region in a loop.
type goodClient struct {
	ops   atomic.Int64
	worst atomic.Int64 // nanoseconds
	quit  chan struct{}
	done  chan error
}

func startGoodClient(t *testing.T, addr, export string) *goodClient {
	t.Helper()
	c := dialClient(t, addr, export)
	g := &goodClient{quit: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		defer c.Close()
		buf, got := make([]byte, 64<<10), make([]byte, 64<<10)
		for i := 0; i < 1_000_000; i++ {
			select {
			case <-g.quit:
				g.done <- nil
				return
			default:
			}
			off := int64(i%64) * int64(len(buf))
			for j := range buf {
				buf[j] = byte(i) + byte(j>>9)
			}
			start := time.Now()
			if _, err := c.WriteAt(buf, off); err != nil {
				g.done <- fmt.Errorf("write %d: %w", i, err)
				return
			}
			if _, err := c.ReadAt(got, off); err != nil {
				g.done <- fmt.Errorf("read %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, buf) {
				g.done <- fmt.Errorf("pair %d read back other data", i)
				return
			}
			if d := int64(time.Since(start)); d > g.worst.Load() {
				g.worst.Store(d)
			}
			g.ops.Add(1)
		}
		g.done <- errors.New("ran out of iterations")
	}()
	t.Cleanup(func() {
		select {
		case <-g.quit:
		default:
			close(g.quit)
			<-g.done
		}
	})
	return g
}

// progress fails the test unless the client completes more pairs soon.
func (g *goodClient) progress(t *testing.T, when string) {
	t.Helper()
	from := g.ops.Load()
	deadline := time.Now().Add(30 * time.Second)
	for g.ops.Load() < from+50 {
		select {
		case err := <-g.done:
			t.Fatalf("the well-behaved client stopped %s: %v", when, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the well-behaved client made no progress %s", when)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (g *goodClient) stop(t *testing.T) (int64, time.Duration) {
	t.Helper()
	close(g.quit)
	if err := <-g.done; err != nil {
		t.Fatalf("the well-behaved client: %v", err)
	}
	return g.ops.Load(), time.Duration(g.worst.Load())
}

func dialClient(t *testing.T, addr, export string) *nbd.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := nbd.Dial(ctx, "tcp", addr, nbd.ClientOptions{Export: export, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("a well-behaved client could not connect: %v", err)
	}
	return c
}

func checkWriteRead(t *testing.T, c *nbd.Client, off int64, seed byte) {
	t.Helper()
	want := bytes.Repeat([]byte{seed, seed ^ 0xff}, 64<<10)
	if _, err := c.WriteAt(want, off); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(want))
	if _, err := c.ReadAt(got, off); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back: %v (equal %v)", err, bytes.Equal(got, want))
	}
}

// openConns opens count connections that never say a word, closed at
// cleanup; connections the server refuses at once are counted too.
func openConns(t *testing.T, addr string, count int) []net.Conn {
	t.Helper()
	var l []net.Conn
	for range count {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			continue
		}
		l = append(l, c)
	}
	t.Cleanup(func() {
		for _, c := range l {
			c.Close()
		}
	})
	return l
}

// churn opens a connection every 2ms, held until cleanup, until stop,
// which returns them.
func churn(t *testing.T, addr string) (stop func() []net.Conn) {
	quit, done := make(chan struct{}), make(chan struct{})
	var held []net.Conn
	go func() {
		defer close(done)
		for i := 0; i < 100_000; i++ {
			select {
			case <-quit:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				held = append(held, c)
			}
		}
	}()
	var once sync.Once
	stop = func() []net.Conn {
		once.Do(func() { close(quit); <-done })
		return held
	}
	t.Cleanup(func() {
		for _, c := range stop() {
			c.Close()
		}
	})
	return stop
}

// stillOpen counts the connections the server has not closed.
func stillOpen(conns []net.Conn) int {
	var open atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			b := make([]byte, 64)
			for {
				_, err := c.Read(b)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					open.Add(1)
					return
				}
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return int(open.Load())
}

// daemonPID finds the process of a node's daemon by its control socket.
func daemonPID(t *testing.T, n *harness.Node) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 3 && args[1] == "serve" && strings.Contains(string(b), "\x00"+n.Control+"\x00") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	t.Fatalf("no daemon process with control socket %s", n.Control)
	return 0
}

// memKiB reads a memory figure (VmRSS, VmHWM) of a process, in KiB.
func memKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	kb, err := statusKiB(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return kb
}

// statusKiB reads a figure in kB from /proc/PID/status.
func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %q", field, line)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// NBD wire constants for the raw client.
const (
	cmdRead  = 0
	cmdWrite = 1
)

// rawConn is a hand-driven NBD connection, for clients that misbehave.
type rawConn struct {
	t  *testing.T
	nc net.Conn
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

func (r *rawConn) read(n int) []byte {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(r.nc, b); err != nil {
		r.t.Fatalf("raw read: %v", err)
	}
	return b
}

func (r *rawConn) readGreeting() {
	r.t.Helper()
	if g := r.read(18); string(g[:8]) != "NBDMAGIC" || string(g[8:16]) != "IHAVEOPT" {
		r.t.Fatalf("greeting % x", g)
	}
}

// open negotiates the export with NBD_OPT_GO: simple replies only.
func (r *rawConn) open(export string) {
	r.t.Helper()
	r.readGreeting()
	r.write(binary.BigEndian.AppendUint32(nil, 3)) // fixed newstyle, no zeroes
	r.openAfterSpeaking(export)
}

// speak reads the greeting, sends the client flags and lists the
// exports: once it returns, the server has heard from the client.
func (r *rawConn) speak() {
	r.t.Helper()
	r.readGreeting()
	r.write(binary.BigEndian.AppendUint32(nil, 3))
	r.write(append([]byte("IHAVEOPT"), binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 3), 0)...)) // NBD_OPT_LIST
	for {
		h := r.read(20)
		typ, n := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
		r.read(int(n))
		switch {
		case typ == 1:
			return
		case typ&(1<<31) != 0:
			r.t.Fatalf("NBD_OPT_LIST refused (%#x)", typ)
		}
	}
}

// openAfterSpeaking opens the export on a connection past its client
// flags.
func (r *rawConn) openAfterSpeaking(export string) {
	r.t.Helper()
	data := binary.BigEndian.AppendUint32(nil, uint32(len(export)))
	data = append(data, export...)
	data = binary.BigEndian.AppendUint16(data, 0)
	opt := append([]byte("IHAVEOPT"), binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 7), uint32(len(data)))...)
	r.write(append(opt, data...))
	for {
		h := r.read(20)
		typ, n := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
		msg := r.read(int(n))
		switch {
		case typ == 1: // ACK: transmission
			return
		case typ&(1<<31) != 0:
			r.t.Fatalf("NBD_OPT_GO refused (%#x): %s", typ, msg)
		}
	}
}

func (r *rawConn) request(typ uint16, handle, off uint64, length uint32, payload []byte) {
	r.t.Helper()
	b := binary.BigEndian.AppendUint32(nil, 0x25609513)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, handle)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, length)
	r.write(append(b, payload...))
}

// streamZeroes sends n bytes of payload.
func (r *rawConn) streamZeroes(n int) {
	r.t.Helper()
	chunk := make([]byte, 1<<20)
	for n > 0 {
		m := min(n, len(chunk))
		r.write(chunk[:m])
		n -= m
	}
}

// reply reads a simple reply's error value and handle.
func (r *rawConn) reply() (errno uint32, handle uint64) {
	r.t.Helper()
	h := r.read(16)
	if binary.BigEndian.Uint32(h) != 0x67446698 {
		r.t.Fatalf("reply magic % x", h[:4])
	}
	return binary.BigEndian.Uint32(h[4:]), binary.BigEndian.Uint64(h[8:])
}

func (r *rawConn) expectErrno(handle uint64, want uint32) {
	r.t.Helper()
	errno, h := r.reply()
	if h != handle || errno != want {
		r.t.Fatalf("reply to %d: handle %d errno %d, want errno %d", handle, h, errno, want)
	}
}

// expectClosed waits for the server to close the connection.
func (r *rawConn) expectClosed(within time.Duration) {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(within))
	b := make([]byte, 4096)
	for {
		_, err := r.nc.Read(b)
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			r.t.Fatalf("the server did not close the connection within %v", within)
		default:
			return
		}
	}
}
