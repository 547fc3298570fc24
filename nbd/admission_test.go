package nbd

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// silent opens a connection that reads the greeting and says nothing:
// once it returns, the server has registered the connection.
func (ts *testServer) silent(t *testing.T) *raw {
	t.Helper()
	r := ts.raw(t)
	r.read(18)
	return r
}

// speak sends the client flags and an option that the server answers,
// so that the server has heard the client once it returns.
func (r *raw) speak() {
	r.t.Helper()
	r.greet(clientFixedNewstyle | clientNoZeroes)
	r.option(OptStructuredReply, nil)
	r.expectReply(OptStructuredReply, RepAck)
}

// goAndWrite opens export x on a raw connection that has spoken and
// checks a write.
func (r *raw) goAndWrite(handle uint64) {
	r.t.Helper()
	q := infoRequest{name: "x"}
	r.option(OptGo, q.encode())
	r.expectReply(OptGo, RepInfo)
	r.expectReply(OptGo, RepAck)
	r.request(CmdWrite, 0, handle, 0, 512, pattern(byte(handle), 512))
	if e := r.simple(handle); e != 0 {
		r.t.Fatalf("write: errno %d", e)
	}
}

// stillOpen reports whether the server has not closed r, without
// waiting for it to.
func (r *raw) stillOpen() bool {
	r.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	defer r.nc.SetReadDeadline(time.Now().Add(testWait))
	var b [1]byte
	_, err := r.nc.Read(b[:])
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHandshakeFlood: what the server promises a client while
// connections that never negotiate flood in. With MaxHandshakes open, a
// newcomer displaces the handshake heard from least recently, so a
// client is displaced only once MaxHandshakes connections arrived since
// it last spoke: one that spoke before MaxHandshakes-1 newer ones gets
// in, one that did not is closed, and the flood never touches a
// connection in transmission.
func TestHandshakeFlood(t *testing.T) {
	const max = 4
	ts := startServer(t, "unix", ServerOptions{MaxHandshakes: max}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	var old []*raw
	for range max {
		old = append(old, ts.silent(t))
	}
	client := ts.raw(t) // displaces old[0]
	client.speak()
	var newer []*raw
	for range max - 1 {
		newer = append(newer, ts.silent(t)) // each displaces an older silent one
	}
	client.goAndWrite(1)
	for i, r := range old {
		if r.stillOpen() {
			t.Fatalf("silent connection %d, older than the client, is still open", i)
		}
	}
	for i, r := range newer {
		if !r.stillOpen() {
			t.Fatalf("silent connection %d, newer than the client, was closed", i)
		}
	}
	// A flood of many times the limit: only handshakes take turns.
	for range 5 * max {
		ts.silent(t)
	}
	client.request(CmdFlush, 0, 2, 0, 0, nil)
	if e := client.simple(2); e != 0 {
		t.Fatalf("the client in transmission after the flood: errno %d", e)
	}
	// One that does not speak again while MaxHandshakes newer
	// connections arrive is displaced.
	late := ts.raw(t)
	late.speak()
	for range max {
		ts.silent(t)
	}
	late.expectClosed()
	// Displaced: old[0] by the client, the rest of old by newer, all but
	// the first of the flood (it found the slot the client left), one by
	// late, and the three before late and late itself.
	if st, want := ts.Stats(), int64(1+(max-1)+(5*max-1)+1+max); st.Refused != want {
		t.Fatalf("stats %+v: want %d displaced", st, want)
	}
}

// TestIdleConnectionsDoNotLockOut: a client holding every connection,
// finished negotiating and silent, does not keep a new client out: the
// newcomer displaces the one idle longest and works; the others stay.
func TestIdleConnectionsDoNotLockOut(t *testing.T) {
	const max = 6
	ts := startServer(t, "unix", ServerOptions{MaxConnections: max}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	var hoard []*Client
	for range max {
		hoard = append(hoard, ts.dial(t, ClientOptions{Export: "x"}))
	}
	// hoard[1] was heard from last: hoard[0] is idle longest.
	for _, i := range []int{2, 1} {
		if err := hoard[i].Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		c := ts.dial(t, ClientOptions{Export: "x"})
		if _, err := c.WriteAt(pattern(byte(i), 4096), 0); err != nil {
			t.Fatalf("newcomer %d: %v", i, err)
		}
	}
	// The newcomers displaced hoard[0], hoard[3] and hoard[4], in that
	// order; hoard[1], hoard[2] and hoard[5] stay.
	for i, c := range hoard {
		err := c.Flush()
		if gone := i == 0 || i == 3 || i == 4; gone != (err != nil) {
			t.Fatalf("hoarded connection %d after the newcomers: %v", i, err)
		}
	}
	if n := ts.Clients("x"); n != max {
		t.Fatalf("%d clients, want %d", n, max)
	}
}

// TestFullOfBusyConnections: a newcomer displaces only a connection with
// nothing in flight; when every one is busy, it is refused with
// NBD_REP_ERR_POLICY and the busy ones go on.
func TestFullOfBusyConnections(t *testing.T) {
	g := newGate(expSize)
	ts := startServer(t, "unix", ServerOptions{MaxConnections: 2}, Export{Name: "x", Dev: g})
	a := ts.dial(t, ClientOptions{Export: "x"})
	b := ts.dial(t, ClientOptions{Export: "x"})
	for i, c := range []*Client{a, b} {
		off := int64(i+1) * 4096
		g.hold(off)
		go c.WriteAt(pattern(1, 4096), off)
		<-g.arrived
	}
	_, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "x"})
	if !refused(err) {
		t.Fatalf("a newcomer to a server of busy connections: %v, want NBD_REP_ERR_POLICY", err)
	}
	g.release(4096) // a is idle once its write is answered
	waitFor(t, "a idle", func() bool { return ts.idleConns() == 1 })
	c := ts.dial(t, ClientOptions{Export: "x"})
	if err := c.Flush(); err != nil {
		t.Fatalf("the newcomer once a was idle: %v", err)
	}
	if err := a.Flush(); !errors.Is(err, ErrBroken) {
		t.Fatalf("a, idle, was not displaced: %v", err)
	}
	g.release(8192)
	if err := b.Flush(); err != nil {
		t.Fatalf("b, busy, was displaced: %v", err)
	}
}

// idleConns counts the connections in transmission with nothing in
// flight.
func (ts *testServer) idleConns() int {
	return len(ts.connsWhere(func(c *conn) bool { return c.idle() }))
}

// TestDisplaceFromLargestClient: a newcomer displaces from the client
// (address) holding the most connections, not a lone client's
// connection that was idle longer.
func TestDisplaceFromLargestClient(t *testing.T) {
	ts := startServer(t, "tcp", ServerOptions{MaxConnections: 4}, Export{Name: "x", Dev: blockdev.NewMem(expSize)})
	lone := ts.rawFrom(t, "127.0.0.1") // idle longest
	lone.open("x", false, false)
	var hoard []*raw
	for range 3 {
		r := ts.rawFrom(t, "127.0.0.2")
		r.open("x", false, false)
		hoard = append(hoard, r)
	}
	newcomer := ts.rawFrom(t, "127.0.0.3")
	newcomer.open("x", false, false)
	hoard[0].expectClosed()
	for i, r := range []*raw{lone, hoard[1], hoard[2], newcomer} {
		r.request(CmdFlush, 0, 1, 0, 0, nil)
		if e := r.simple(1); e != 0 {
			t.Fatalf("connection %d: errno %d", i, e)
		}
	}
}

// rawFrom is a raw TCP connection from a local address of the loopback
// network.
func (ts *testServer) rawFrom(t *testing.T, ip string) *raw {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Skipf("cannot dial from %s: %v", ip, err)
	}
	nc.SetDeadline(time.Now().Add(testWait))
	t.Cleanup(func() { nc.Close() })
	return &raw{t: t, nc: nc}
}

// TestPerCertificateLimit: under TLS, one certificate's connections
// cannot fill the server: beyond MaxConnectionsPerCert, its newcomer
// displaces its own idle longest, or is refused if all are busy; another
// certificate's connections are untouched.
func TestPerCertificateLimit(t *testing.T) {
	p := newTestPKI(t)
	g := newGate(expSize)
	ts := startServer(t, "tcp", ServerOptions{TLS: p.server(t, "a"), TLSRequired: true, MaxConnections: 8, MaxConnectionsPerCert: 2},
		Export{Name: "x", Dev: g})
	bob := ts.dial(t, ClientOptions{Export: "x", TLS: p.client(t, "bob")})
	var alice []*Client
	for range 6 {
		alice = append(alice, ts.dial(t, ClientOptions{Export: "x", TLS: p.client(t, "alice")}))
	}
	for i, c := range alice {
		if err := c.Flush(); (i < 4) != (err != nil) {
			t.Fatalf("alice's connection %d of 6, limit 2: %v", i, err)
		}
	}
	if err := bob.Flush(); err != nil {
		t.Fatalf("bob after alice's connections: %v", err)
	}
	// Alice's two busy: her next one is refused, bob's next one gets in.
	for i, c := range alice[4:] {
		off := int64(i+1) * 4096
		g.hold(off)
		go c.WriteAt(pattern(1, 4096), off)
		<-g.arrived
	}
	_, err := Dial(context.Background(), ts.network, ts.addr, ClientOptions{Export: "x", TLS: p.client(t, "alice")})
	if !refused(err) {
		t.Fatalf("alice's third with two busy: %v, want refused", err)
	}
	if err := ts.dial(t, ClientOptions{Export: "x", TLS: p.client(t, "bob")}).Flush(); err != nil {
		t.Fatalf("bob's second: %v", err)
	}
	g.release(4096)
	g.release(8192)
	if n := ts.Clients("x"); n != 4 {
		t.Fatalf("%d clients, want alice's 2 and bob's 2", n)
	}
}

// refused reports whether err is a refusal of NBD_OPT_GO by policy.
func refused(err error) bool {
	var oe *OptionError
	return errors.As(err, &oe) && oe.Option == OptGo && oe.Reply == RepErrPolicy
}
