package nbd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/internal/lat"
	"github.com/netraid/netraid/internal/workers"
)

// conn is one client connection. Its goroutine (serve) negotiates and then
// reads requests; each request runs on a handler of the connection's
// worker pool, at most MaxInflight at a time, and replies are serialized
// by wmu. Handlers outlive their requests so that their stacks, grown
// through the layers of the device, are not grown again per request.
type conn struct {
	s   *Server
	id  uint64   // ConnInfo.ID
	raw net.Conn // the accepted connection: deadlines and abort go here
	// nc carries the protocol: raw, or the TLS session over it once
	// STARTTLS succeeded. It changes under mu, in the handshake only.
	nc     net.Conn
	br     *bufio.Reader // reads nc; rr reads through it
	l      net.Listener  // the listener it came from
	rr     requestReader
	log    *slog.Logger
	ctx    context.Context // cancelled when the connection is aborted
	cancel context.CancelFunc
	done   chan struct{} // closed when serve has returned

	// Set by the handshake, read-only in transmission phase.
	exp        *export
	dev        blockdev.Device // serves the connection: exp.Dev, or Export.Attach's
	sess       session
	align      int // buffer alignment for the device
	structured bool

	wmu  sync.Mutex // serializes replies on nc
	werr error      // first reply that failed to go out; guarded by wmu

	replies combiner // plaintext replies sent together (see send)

	mu            sync.Mutex // guards the fields below
	budget        *sync.Cond // signalled when a request releases its budget
	tlsState      *tls.ConnectionState
	transmitting  bool
	draining      bool
	busy          bool // the reader holds a request it has not handed off
	readArmed     bool // armRead set a read deadline
	inflight      int
	inflightBytes int

	handlers sync.WaitGroup // requests handed off and not yet answered
	pool     *workers.Pool  // runs them
	writes   atomic.Uint64  // writes completed (the connection's dirty count)
	flushed  atomic.Uint64  // writes known durable

	// heard orders when the server last heard from the client (accept,
	// handshake messages, requests, the end of its last request in
	// flight) by Server.clock.
	heard atomic.Uint64
	mem   memAccount // its buffers in the server's budget

	// Guarded by Server.mu (admission.go).
	displaced bool   // closed by a connection limit
	group     string // the client it belongs to: certificate or address
	certified bool   // group is a client certificate
}

// Reasons a connection's reader stops without a fault.
var (
	errDisconnect = errors.New("nbd: client sent NBD_CMD_DISC")
	errDrained    = errors.New("nbd: connection drained")
	errAborted    = errors.New("nbd: connection aborted")
)

func newConn(ctx context.Context, s *Server, nc net.Conn, l net.Listener) *conn {
	nc = wrapSocket(nc)
	c := &conn{
		s:    s,
		id:   s.lastID.Add(1),
		raw:  nc,
		nc:   nc,
		l:    l,
		log:  s.log.With("remote", nc.RemoteAddr().String()),
		done: make(chan struct{}),
		pool: workers.New(0),
	}
	s.hear(c)
	c.ctx, c.cancel = context.WithCancel(context.WithValue(context.WithoutCancel(ctx), connKey{}, c))
	c.br = bufio.NewReaderSize(nc, 64<<10)
	c.rr.r = c.br
	c.budget = sync.NewCond(&c.mu)
	return c
}

// serve runs the connection to its end.
func (c *conn) serve() {
	defer close(c.done)
	defer c.s.detach(c)
	defer c.cancel()
	if err := c.negotiate(); err != nil {
		c.nc.Close()
		switch {
		case errors.Is(err, errAbortOption):
			c.log.Debug("client aborted the handshake")
		case c.ctx.Err() != nil:
			c.log.Debug("handshake cut: displaced or aborted", "err", err)
		case errors.Is(err, errServerFull), errors.Is(err, errCertFull):
			c.log.Info("client refused: no room", "err", err)
		case errors.Is(err, ErrTLS), errors.Is(err, ErrTLSRequired):
			c.s.tlsRefused.Add(1)
			c.log.Warn("client refused", "err", err)
		default:
			c.s.failedHandshakes.Add(1)
			c.log.Info("handshake failed", "err", err)
		}
		return
	}
	c.log = c.log.With("export", c.exp.Name)
	c.log.Info("client connected", "structured", c.structured)
	err := c.transmit()
	c.handlers.Wait()
	c.pool.Close()
	c.pool.Wait()
	c.flushOnClose()
	c.nc.Close()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, errDisconnect), errors.Is(err, errDrained), errors.Is(err, errAborted):
		c.log.Info("client disconnected", "reason", err)
	default:
		c.log.Warn("connection failed", "err", err)
	}
}

// startTransmission marks the end of the handshake; it fails if the
// connection is being drained. Called by Server.attach.
func (c *conn) startTransmission(e *export) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return ErrShutdown
	}
	c.exp = e
	c.transmitting = true
	return nil
}

func (c *conn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// idle reports whether c is in transmission with nothing in flight: no
// request held by its reader or its handlers.
func (c *conn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transmitting && !c.draining && !c.busy && c.inflight == 0
}

// setHandshakeDeadline arms the handshake's deadline unless the
// connection is already draining (drain's own deadline must win).
func (c *conn) setHandshakeDeadline(t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.raw.SetDeadline(t)
	return true
}

// drain ends the connection gracefully: a handshake is cut at once; in
// transmission, requests already received run to completion, later ones
// are answered with ESHUTDOWN, and the reader stops once none is left.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return
	}
	c.draining = true
	if !c.transmitting {
		c.raw.SetDeadline(time.Now())
		return
	}
	c.wakeIfDrained()
}

// wakeIfDrained stops the reader's wait for the next request once a
// draining connection has nothing left in flight. Called with mu held.
func (c *conn) wakeIfDrained() {
	if c.draining && c.inflight == 0 && !c.busy {
		c.raw.SetReadDeadline(time.Now())
	}
}

// armRead gives the client d (no limit if zero) to send what the reader
// waits for next, unless the connection is draining, whose own deadline
// wins.
func (c *conn) armRead(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining || (d <= 0 && !c.readArmed) {
		return
	}
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	c.raw.SetReadDeadline(t)
	c.readArmed = d > 0
}

// abort closes the connection at once.
func (c *conn) abort() {
	c.cancel()
	c.raw.Close()
}

// transmit reads requests until the client disconnects, the connection is
// drained or aborted, or the stream is broken.
func (c *conn) transmit() error {
	for {
		if c.drained() {
			return errDrained
		}
		c.armRead(c.s.opts.IdleTimeout)
		req, err := c.rr.next()
		if err != nil {
			return c.readFailure(err)
		}
		if req.Type == CmdDisc {
			return errDisconnect
		}
		c.s.hear(c)
		c.s.counts.cmd(req.Type).requests.Add(1)
		if err := c.accept(req); err != nil {
			return c.readFailure(err)
		}
	}
}

// readFailure explains why the reader stopped.
func (c *conn) readFailure(err error) error {
	switch {
	case c.ctx.Err() != nil:
		return errAborted
	case errors.Is(err, os.ErrDeadlineExceeded) && c.drained():
		return errDrained
	}
	return err
}

func (c *conn) drained() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining && c.inflight == 0
}

// accept takes one request off the wire: it refuses it, or reads its
// payload within the connection's budget and hands it to a handler.
func (c *conn) accept(req Request) error {
	t0 := lat.StartRequest()
	if !c.hold() {
		return c.refuse(&req, ErrShutdown)
	}
	defer c.unhold()
	if err := checkRequest(&req, &c.sess); err != nil {
		return c.refuse(&req, err)
	}
	need := 0
	if req.Type == CmdRead || req.hasPayload() {
		need = int(req.Length)
	}
	if err := c.acquire(need); err != nil {
		return err
	}
	var payload []byte
	if req.hasPayload() {
		c.armRead(c.s.opts.PayloadTimeout)
		payload = blockdev.GetBuffer(int(req.Length), c.align)
		if err := c.rr.payload(payload); err != nil {
			blockdev.PutBuffer(payload)
			c.releaseBytes(need)
			c.finish()
			return fmt.Errorf("nbd: %v off %d len %d: payload truncated: %w", req.Type, req.Offset, req.Length, err)
		}
	}
	c.handlers.Add(1)
	t1 := lat.Since(lat.NBDRecv, t0)
	c.pool.Go(func() { c.handle(req, inflight{c: c, need: need, payload: payload}, t0, t1) })
	return nil
}

// inflight is a request handed to a handler: its payload and the
// buffer bytes it holds.
type inflight struct {
	c       *conn
	need    int // bytes held against MaxInflightBytes and the budget; 0 once freed
	payload []byte
}

// free gives back the request's payload and buffer bytes; a request
// frees them once it no longer needs them (a write, after the device
// call), so that a reply waiting for its client holds no buffer.
func (r *inflight) free() {
	if r.payload != nil {
		blockdev.PutBuffer(r.payload)
		r.payload = nil
	}
	if r.need > 0 {
		r.c.releaseBytes(r.need)
		r.need = 0
	}
}

// hold marks the reader as holding a request, unless the connection is
// draining.
func (c *conn) hold() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = !c.draining
	return c.busy
}

func (c *conn) unhold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = false
	c.wakeIfDrained()
}

// acquire waits for room for one more request holding need bytes: within
// the connection's limits, then within the server's budget. It fails
// only if the connection is aborted while it waits for the budget.
func (c *conn) acquire(need int) error {
	o := &c.s.opts
	c.mu.Lock()
	for c.inflight >= o.MaxInflight || c.inflightBytes+need > o.MaxInflightBytes {
		c.budget.Wait()
	}
	c.inflight++
	c.inflightBytes += need
	c.mu.Unlock()
	if err := c.s.mem.acquire(c.ctx, &c.mem, bufferCost(need)); err != nil {
		c.mu.Lock()
		c.inflightBytes -= need
		c.mu.Unlock()
		c.finish()
		return errAborted
	}
	return nil
}

// releaseBytes gives back a request's buffer bytes.
func (c *conn) releaseBytes(need int) {
	c.s.mem.release(&c.mem, bufferCost(need))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflightBytes -= need
	c.budget.Broadcast()
}

// finish ends a request in flight, once answered.
func (c *conn) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	if c.inflight == 0 {
		c.s.hear(c)
	}
	c.budget.Broadcast()
	c.wakeIfDrained()
}

// refuse answers a request that will not run, skipping its payload.
func (c *conn) refuse(req *Request, err error) error {
	if req.hasPayload() {
		c.armRead(c.s.opts.PayloadTimeout)
		if derr := c.rr.discard(int64(req.Length)); derr != nil {
			return fmt.Errorf("nbd: %v off %d len %d: payload truncated: %w", req.Type, req.Offset, req.Length, derr)
		}
	}
	c.replyError(req, err)
	return nil
}

// handle runs one request and answers it. r comes by value, so that the
// closure that carries the request to its handler stays its only
// allocation. t0 is when its header was read, t1 when it was handed off
// (lat.Start times; 0 when not measured).
func (c *conn) handle(req Request, r inflight, t0, t1 int64) {
	defer c.handlers.Done()
	defer c.finish()
	defer r.free()
	t2 := lat.Since(lat.NBDDispatch, t1)
	if err := c.exec(&req, &r); err != nil {
		c.replyError(&req, err)
	}
	measureRequest(&req, t0, t2)
	if c.log.Enabled(c.ctx, slog.LevelDebug) {
		c.log.Debug("request", "op", req.Type, "off", req.Offset, "len", req.Length, "flags", req.Flags)
	}
}

// flushOnClose makes the connection's acknowledged writes durable if no
// flush has since: a client that disconnects without flushing loses
// nothing the server acknowledged.
func (c *conn) flushOnClose() {
	w := c.writes.Load()
	if w == c.flushed.Load() {
		return
	}
	if err := c.dev.Flush(); err != nil {
		c.log.Warn("flush on disconnect failed", "err", err)
		return
	}
	c.flushed.Store(w)
}

// send writes one reply, a header and its data. A reply that fails to go
// out whole leaves the stream unusable, so the connection is aborted.
// Replies sent together combine (combiner): one writev on a plaintext
// connection, one cork on TLS. send returns once its reply is written
// (or failed), so the caller may reuse data.
func (c *conn) send(head, data []byte) error {
	t := lat.Start()
	defer lat.Since(lat.NBDReply, t)
	return c.replies.send(head, data, func(batch []*queuedMsg) error {
		return c.sendLocked(func() error { return c.replies.writeBatch(c.nc, batch) })
	})
}

// sendLocked runs write under the reply lock with the reply deadline.
func (c *conn) sendLocked(write func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.ReplyTimeout))
	if err := write(); err != nil {
		c.werr = fmt.Errorf("nbd: send reply: %w", err)
		c.abort()
		return c.werr
	}
	return nil
}
