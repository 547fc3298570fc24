package nbd

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/internal/lat"
)

// ClientOptions configure a Client. Zero values take the defaults.
type ClientOptions struct {
	// Export is the name of the export to open ("" is the default one).
	Export string
	// Timeout bounds each request from its sending to its reply, and the
	// handshake (default 5s). A request that times out breaks the client.
	Timeout time.Duration
	// MaxInflight bounds the requests in flight at once (default 64).
	MaxInflight int
	// Hello, if not nil, is sent in the netraid hello before the export
	// is opened; the server's answer is HelloReply.
	Hello []byte
	// Auth, if set, authenticates this client with the netraid
	// authentication (OptNetraidAuth) after STARTTLS and before anything
	// else: called with nil first, it returns the first request; called
	// with each reply, the next request, or nil once the exchange is
	// done (having checked the server's proof). A refusal is ErrAuth.
	Auth func(reply []byte) (next []byte, err error)
	// TLS, if not nil, upgrades the connection with NBD_OPT_STARTTLS
	// before any other option; a server that will not, or a certificate
	// either side refuses, fails the handshake with ErrTLS. Dial sets
	// ServerName to the address's host if it is empty.
	TLS *tls.Config
}

const (
	defaultClientTimeout  = 5 * time.Second
	defaultClientInflight = 64
	// defaultMaxBlock is the request size every server takes (the spec's
	// interoperability limit), used when the server states none.
	defaultMaxBlock = 32 << 20
	// bigPiece splits trims and block status queries, whose length is not
	// a payload; a multiple of any minimum block size.
	bigPiece = 1 << 31
)

// Client is a blockdev.Device on an NBD export. Any number of goroutines
// may call it: requests are pipelined on one connection and answered out
// of order. Once a request fails for want of a reply within Timeout, or
// the connection fails, the client is broken for good: every call in
// flight or later fails with an error wrapping ErrBroken and the cause
// (blockdev.ErrTimeout for a time-out); dial a new client to reconnect.
type Client struct {
	raw     net.Conn      // the connection: deadlines of the handshake, and fail, go here
	nc      net.Conn      // the protocol's stream: raw, or the TLS session over it
	br      *bufio.Reader // reads nc
	timeout time.Duration
	export  string

	// Learnt in the handshake; read-only afterwards.
	size       int64
	flags      TransmissionFlags
	sizes      blockSizes
	structured bool
	hasMeta    bool
	metaID     uint32
	hello      bool
	helloReply []byte
	tls        bool
	peerCert   *x509.Certificate // the server's certificate, under TLS

	wmu      sync.Mutex          // serializes requests on nc
	requests combiner            // plaintext requests sent together (see send)
	slots    chan struct{}       // one token per request in flight
	flushes  blockdev.FlushGroup // concurrent Flushes share FLUSH requests

	mu           sync.Mutex // guards the fields below
	pending      map[uint64]*call
	handle       uint64
	err          error // why no new call is taken; nil while healthy
	closed       bool
	quiesce      bool // disconnect once nothing is pending
	disconnected bool

	done       chan struct{} // closed when err is set
	readerDone chan struct{}
}

var (
	_ blockdev.Device      = (*Client)(nil)
	_ blockdev.Trimmer     = (*Client)(nil)
	_ blockdev.Zeroer      = (*Client)(nil)
	_ blockdev.FUAWriter   = (*Client)(nil)
	_ blockdev.Mapper      = (*Client)(nil)
	_ blockdev.BlockSizer  = (*Client)(nil)
	_ blockdev.Checksummer = (*Client)(nil)
)

// Dial connects to an NBD server ("tcp" or "unix") and opens an export.
func Dial(ctx context.Context, network, addr string, o ClientOptions) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("nbd: dial %s %s: %w", network, addr, err)
	}
	if network != "unix" {
		o.TLS = withServerName(o.TLS, addr)
	}
	return NewClient(ctx, nc, o)
}

// NewClient runs the handshake on conn and returns a client that owns
// it; on error conn is closed. ctx bounds the handshake only.
func NewClient(ctx context.Context, conn net.Conn, o ClientOptions) (*Client, error) {
	conn = wrapSocket(conn)
	if o.Timeout <= 0 {
		o.Timeout = defaultClientTimeout
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = defaultClientInflight
	}
	c := &Client{
		raw:        conn,
		nc:         conn,
		br:         bufio.NewReaderSize(conn, 64<<10),
		timeout:    o.Timeout,
		export:     o.Export,
		slots:      make(chan struct{}, o.MaxInflight),
		pending:    map[uint64]*call{},
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	if err := c.handshake(ctx, o); err != nil {
		conn.Close()
		return nil, err
	}
	go c.readLoop()
	return c, nil
}

// Size is the export's size.
func (c *Client) Size() int64 { return c.size }

// BlockSize is the server's minimum block size: offsets and lengths must
// be multiples of it. A server that takes any alignment reports 512, the
// conventional sector, as blockdev.BlockSize does for devices that do not
// say; the client still accepts byte-granular requests then.
func (c *Client) BlockSize() int { return int(max(c.sizes.min, 512)) }

// Flags are the export's transmission flags.
func (c *Client) Flags() TransmissionFlags { return c.flags }

// TLS reports whether the connection is protected by TLS.
func (c *Client) TLS() bool { return c.tls }

// PeerCertificate is the certificate the server presented, nil without
// TLS: a caller that must stop trusting it (revocation) closes the client.
func (c *Client) PeerCertificate() *x509.Certificate { return c.peerCert }

// HelloReply is the server's answer to the netraid hello, nil without one.
func (c *Client) HelloReply() []byte { return append([]byte(nil), c.helloReply...) }

// Done is closed when the client takes no more requests: it broke, was
// closed, or the server is shutting down.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why Done was closed; nil before.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close waits for the requests in flight, disconnects politely
// (NBD_CMD_DISC) and waits for the client's goroutine. Requests issued
// after Close fail with blockdev.ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("%w: nbd client closed twice", blockdev.ErrClosed)
	}
	c.closed = true
	c.setErr(fmt.Errorf("nbd: client of export %q: %w", c.export, blockdev.ErrClosed))
	c.quiesce = true
	idle := len(c.pending) == 0
	c.mu.Unlock()
	if idle {
		c.disconnect()
	}
	<-c.readerDone
	return nil
}

// setErr records why the client stops taking requests. Called with mu held.
func (c *Client) setErr(err error) {
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

// fail breaks the client: the connection is closed at once, without a
// TLS goodbye that could wait behind a stuck send, and the reader fails
// every pending call with cause.
func (c *Client) fail(cause error) {
	c.mu.Lock()
	c.setErr(fmt.Errorf("%w: %w", ErrBroken, cause))
	c.mu.Unlock()
	c.raw.Close()
}

// stopTaking makes the client refuse new calls and disconnect politely
// once the pending ones are answered (after ESHUTDOWN).
func (c *Client) stopTaking(cause error) {
	c.mu.Lock()
	c.setErr(cause)
	c.quiesce = true
	idle := len(c.pending) == 0
	c.mu.Unlock()
	if idle {
		c.disconnect()
	}
}

// disconnect sends NBD_CMD_DISC and closes the connection, once.
func (c *Client) disconnect() {
	c.mu.Lock()
	if c.disconnected {
		c.mu.Unlock()
		return
	}
	c.disconnected = true
	c.mu.Unlock()
	var h [requestSize]byte
	(&Request{Type: CmdDisc}).encode(h[:])
	c.wmu.Lock()
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	c.nc.Write(h[:]) // best effort: the connection closes either way
	c.wmu.Unlock()
	c.nc.Close()
}

// call is one request in flight. The reader goroutine owns buf and the
// reply fields until it closes done.
type call struct {
	req  Request
	head [requestSize]byte // req encoded, while it is sent
	buf  []byte            // READ: where the data goes
	sent time.Time
	done chan struct{}
	err  error
	// lat.Start times: when the request's send began (set before it is
	// registered as pending), and when its reply was read (set by the
	// reader before done closes).
	sending, answered int64

	covered rangeSet     // READ: bytes received
	descs   []descriptor // BLOCK_STATUS
	status  bool         // BLOCK_STATUS: the chunk arrived
	resp    []byte       // control response
	chunkEr error        // first error chunk
}

func newCall(typ Command, flags CommandFlags, off, n int64) *call {
	return &call{
		req:  Request{Type: typ, Flags: flags, Offset: uint64(off), Length: uint32(n)},
		done: make(chan struct{}),
	}
}

// start sends a request. After it returns nil the call must be waited
// for; an error means it was never registered.
func (c *Client) start(cl *call, payload []byte) error {
	select {
	case c.slots <- struct{}{}:
	case <-c.done:
		return c.refused(cl)
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		<-c.slots
		return c.refused(cl)
	}
	c.handle++
	cl.req.Handle = c.handle
	cl.sending = lat.Start()
	c.pending[cl.req.Handle] = cl
	c.mu.Unlock()

	cl.req.encode(cl.head[:])
	cl.sent = time.Now()
	if err := c.send(cl.head[:], payload); err != nil {
		c.fail(fmt.Errorf("nbd: send %v: %w", cl.req.Type, err))
	}
	lat.Since(lat.ClientSend, cl.sending)
	return nil
}

// send writes a request, a header and its payload, and returns once it is
// written (or failed). Requests sent together combine (combiner): one
// writev on a plaintext connection, one cork on TLS; the mirror's
// goroutines send their writes to the peer at about the same time.
func (c *Client) send(head, payload []byte) error {
	return c.requests.send(head, payload, func(batch []*queuedMsg) error {
		return c.sendLocked(func() error { return c.requests.writeBatch(c.nc, batch) })
	})
}

// sendLocked runs write under the request lock with the write deadline.
func (c *Client) sendLocked(write func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	return write()
}

// refused is the error of a call the client would not take.
func (c *Client) refused(cl *call) error {
	return fmt.Errorf("nbd: %v off %d len %d: %w", cl.req.Type, cl.req.Offset, cl.req.Length, c.Err())
}

// wait waits for a started call's reply, breaking the client if none comes
// within the timeout.
func (c *Client) wait(cl *call) error {
	t := time.NewTimer(time.Until(cl.sent.Add(c.timeout)))
	defer t.Stop()
	select {
	case <-cl.done:
	case <-t.C:
		c.fail(fmt.Errorf("nbd: %v off %d len %d: no reply within %v: %w",
			cl.req.Type, cl.req.Offset, cl.req.Length, c.timeout, blockdev.ErrTimeout))
		<-cl.done
	}
	lat.Since(lat.ClientWake, cl.answered)
	return cl.err
}

// do sends one request and waits for it.
func (c *Client) do(cl *call, payload []byte) error {
	if err := c.start(cl, payload); err != nil {
		return err
	}
	return c.wait(cl)
}

// split issues typ over [off, off+n) in pieces of at most piece bytes, all
// in flight together, and waits for all of them. buf is the READ
// destination or the WRITE payload, nil for other commands.
func (c *Client) split(typ Command, flags CommandFlags, off, n, piece int64, buf []byte) error {
	calls := make([]*call, 0, (n+piece-1)/piece)
	var err error
	for done := int64(0); done < n; done += piece {
		m := min(piece, n-done)
		cl := newCall(typ, flags, off+done, m)
		var payload []byte
		if buf != nil && typ == CmdRead {
			cl.buf = buf[done : done+m]
		} else if buf != nil {
			payload = buf[done : done+m]
		}
		if err = c.start(cl, payload); err != nil {
			break
		}
		calls = append(calls, cl)
	}
	for _, cl := range calls {
		if werr := c.wait(cl); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// lookup returns the pending call of a handle.
func (c *Client) lookup(handle uint64) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[handle]
}

// complete ends a call. Called by the reader only.
func (c *Client) complete(cl *call, err error) {
	c.mu.Lock()
	delete(c.pending, cl.req.Handle)
	idle := c.quiesce && len(c.pending) == 0
	c.mu.Unlock()
	cl.err = err
	cl.answered = lat.Since(lat.ClientRoundTrip, cl.sending)
	<-c.slots
	close(cl.done)
	if idle {
		c.disconnect()
	}
}

// readLoop receives replies until the connection ends, then fails every
// call still pending.
func (c *Client) readLoop() {
	defer close(c.readerDone)
	err := c.receive()
	c.mu.Lock()
	if !c.disconnected {
		c.setErr(fmt.Errorf("%w: receive: %w", ErrBroken, err))
	}
	cause := c.err
	if !errors.Is(cause, ErrBroken) {
		cause = fmt.Errorf("%w: %w", ErrBroken, cause)
	}
	pending := c.pending
	c.pending = map[uint64]*call{}
	c.mu.Unlock()
	c.raw.Close() // after disconnect, which said goodbye, or a failure
	for _, cl := range pending {
		cl.err = fmt.Errorf("nbd: %v off %d len %d: unanswered: %w", cl.req.Type, cl.req.Offset, cl.req.Length, cause)
		<-c.slots
		close(cl.done)
	}
}
