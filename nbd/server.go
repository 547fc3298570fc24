package nbd

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// ServerOptions configure a Server. Zero values take the defaults.
type ServerOptions struct {
	Logger *slog.Logger
	// MaxRequest is the largest READ, WRITE or control payload (default
	// 32 MiB, at most 1 GiB). It is advertised as the maximum block size.
	MaxRequest int
	// NegotiationTimeout bounds the whole handshake (default 10s).
	NegotiationTimeout time.Duration
	// ReplyTimeout bounds the sending of one reply; a client that does not
	// read its replies for that long is disconnected (default 30s).
	ReplyTimeout time.Duration
	// IdleTimeout closes a connection in transmission that sends no
	// request for that long: a peer whose link died without a word.
	// Zero: no limit.
	IdleTimeout time.Duration
	// MaxInflight bounds the requests one connection has in progress
	// (default 64).
	MaxInflight int
	// MaxInflightBytes bounds the payload and read buffers one connection
	// holds (default 4*MaxRequest, at least MaxRequest).
	MaxInflightBytes int
	// MemoryBudget bounds the request and reply buffers of all
	// connections together, in bytes (default 512 MiB; raised to at least
	// 64 KiB per MaxConnections plus twice MaxRequest). Half of it is
	// split among MaxConnections as a reserve each connection fills
	// without waiting for any other, the other half is lent beyond
	// reserves, to the connections that borrow least first. A request the
	// budget cannot hold waits, and its connection's reader stops
	// reading: beyond the budget, requests slow down; they do not fail.
	MemoryBudget int64
	// PayloadTimeout bounds the reading of a request's payload once its
	// header has arrived: a client that stalls in the middle of a
	// request is disconnected (default 30s).
	PayloadTimeout time.Duration
	// MaxConnections bounds the connections in transmission (default
	// 256). A client that opens an export when all are taken displaces
	// the connection idle longest (no request in flight), from the
	// client that holds the most connections (its certificate, else its
	// address), the newcomer counted; if every one is busy, the open is
	// refused with NBD_REP_ERR_POLICY.
	MaxConnections int
	// MaxHandshakes bounds the connections in their handshake (default
	// MaxConnections). A new connection when all are taken displaces the
	// handshake the server heard from least recently (accept, client
	// flags, options): connections in transmission are never displaced
	// by connections that have not negotiated.
	MaxHandshakes int
	// MaxConnectionsPerCert bounds, under TLS, the connections in
	// transmission that present one client certificate (default
	// MaxConnections/4, at least 1). A connection beyond it displaces the
	// idle longest of that certificate's own, or is refused if all are
	// busy.
	MaxConnectionsPerCert int
	// TLS, if not nil, lets a client upgrade with NBD_OPT_STARTTLS; the
	// negotiation starts again under TLS. It must hold a certificate; it
	// decides whether client certificates are required.
	TLS *tls.Config
	// TLSRequired answers every option but NBD_OPT_STARTTLS and
	// NBD_OPT_ABORT with NBD_REP_ERR_TLS_REQD until TLS is on (the
	// protocol's FORCEDTLS mode): no export is listed, opened or
	// described in plaintext. Without TLS, no client gets in.
	TLSRequired bool
	// Hello answers the netraid hello (OptNetraidHello). Nil: the option
	// is unsupported. An error refuses the client with its text. ctx
	// carries the connection's ConnInfo (ConnFromContext).
	Hello func(ctx context.Context, export string, req []byte) (resp []byte, err error)
	// Control answers netraid control requests other than checksums, on
	// connections that did the hello. Nil: such requests fail with EINVAL.
	// ctx carries the connection's ConnInfo (ConnFromContext).
	Control func(ctx context.Context, export string, req []byte) (resp []byte, err error)
	// HelloFirst refuses every option but NBD_OPT_STARTTLS, NBD_OPT_ABORT
	// and the netraid hello with NBD_REP_ERR_POLICY and a text that names
	// nothing, until a hello was accepted on the connection (after
	// STARTTLS, again): no export is listed, described or opened for a
	// caller that has not said who it is. NBD_OPT_EXPORT_NAME ends the
	// connection.
	HelloFirst bool
	// Auth, if set, must authenticate the client before anything but
	// STARTTLS and ABORT is answered (HelloFirst's hello included): each
	// OptNetraidAuth's data goes to it, with a slot of state of the
	// connection's own; resp is answered with RepNetraidAuth, done says
	// the client is authenticated. An error answers NBD_REP_ERR_POLICY
	// with a text that says nothing but that, and ends the connection.
	// Every other option before it is refused the same way.
	Auth func(ctx context.Context, state *any, req []byte) (resp []byte, done bool, err error)
}

const (
	defaultMaxRequest         = 32 << 20
	maxMaxRequest             = 1 << 30
	defaultNegotiationTimeout = 10 * time.Second
	defaultReplyTimeout       = 30 * time.Second
	defaultServerInflight     = 64
	defaultPayloadTimeout     = 30 * time.Second
	defaultMaxConnections     = 256
	defaultMemoryBudget       = 512 << 20
)

func (o ServerOptions) withDefaults() ServerOptions {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.MaxRequest <= 0 {
		o.MaxRequest = defaultMaxRequest
	}
	o.MaxRequest = min(o.MaxRequest, maxMaxRequest)
	if o.NegotiationTimeout <= 0 {
		o.NegotiationTimeout = defaultNegotiationTimeout
	}
	if o.ReplyTimeout <= 0 {
		o.ReplyTimeout = defaultReplyTimeout
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = defaultServerInflight
	}
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = 4 * o.MaxRequest
	}
	o.MaxInflightBytes = max(o.MaxInflightBytes, o.MaxRequest)
	if o.PayloadTimeout <= 0 {
		o.PayloadTimeout = defaultPayloadTimeout
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = defaultMaxConnections
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = o.MaxConnections
	}
	if o.MaxConnectionsPerCert <= 0 {
		o.MaxConnectionsPerCert = max(o.MaxConnections/4, 1)
	}
	if o.MemoryBudget <= 0 {
		o.MemoryBudget = defaultMemoryBudget
	}
	o.MemoryBudget = max(o.MemoryBudget, minMemoryBudget(o.MaxConnections, o.MaxRequest))
	return o
}

// Export is a device served under a name. The device must take any
// offset and length, as blockdev.Aligned makes any device do: the server
// advertises a minimum block size of 1.
type Export struct {
	Name        string
	Description string
	Dev         blockdev.Device
	ReadOnly    bool
	// RequireHello: only a client that did the netraid hello for this
	// export may open it (the replication link).
	RequireHello bool
	// Attach, if set, is called when a connection opens the export
	// (NBD_OPT_GO or NBD_OPT_EXPORT_NAME), with the connection's context:
	// ConnFromContext works in it, and it is cancelled when the
	// connection ends. The device it returns serves that connection alone
	// and must be of Dev's size; Dev still describes the export (size,
	// flags, NBD_OPT_INFO) and is what Shutdown flushes. An error refuses
	// the open: NBD_REP_ERR_POLICY with the error's text for NBD_OPT_GO,
	// the connection closed for NBD_OPT_EXPORT_NAME. The server never
	// closes the device returned; it may drop it unused if the open fails
	// after Attach (the server is shutting down).
	Attach func(ctx context.Context) (blockdev.Device, error)
}

// export is a registered Export and its live state.
type export struct {
	Export
	clients int // connections in transmission phase; guarded by Server.mu
}

// Stats are a server's counters.
type Stats struct {
	Connections      int64 // open now, in handshake or transmission
	TotalConnections int64 // accepted since the server started
	Requests         int64 // transmission requests received
	BytesRead        int64 // bytes read from exports for clients
	BytesWritten     int64 // bytes written to exports by clients
	Errors           int64 // error replies sent
	// Commands counts the requests and their bytes by command
	// (Command.String, "other" for an unknown command); Errnos the error
	// replies by error value (Errno.String, "other"). Every key is there,
	// zero or not.
	Commands map[string]CommandStats
	Errnos   map[string]int64
	// InFlight is how many requests the server holds now, read or
	// running, not yet answered; InFlightBytes the payload and read
	// bytes they hold.
	InFlight, InFlightBytes int64
	// Refused counts connections the connection limits closed: displaced
	// in their handshake or idle in transmission, or refused an export
	// because every connection was busy.
	Refused int64
	// TLSRefused counts connections closed in the handshake over TLS: a
	// failed TLS handshake (no certificate, another CA, …), or a client
	// that would not start TLS on a server that requires it.
	TLSRefused int64
	// FailedHandshakes counts the other handshakes that ended without an
	// export: protocol errors, unknown exports, time-outs.
	FailedHandshakes int64
	// BufferBytes is what request and reply buffers hold now, by
	// MemoryBudget's count; PeakBufferBytes the most they held.
	BufferBytes, PeakBufferBytes int64
	// BufferWaits counts requests that waited for MemoryBudget.
	BufferWaits int64
}

// Server serves exports over NBD. Its methods are safe for concurrent use.
type Server struct {
	opts ServerOptions
	log  *slog.Logger

	mu        sync.Mutex
	exports   []*export // in the order they were added; the first is the default
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	shutdown  bool
	idle      chan struct{} // closed when shut down and no connection is left
	// Connections in conns that are not displaced, in handshake and in
	// transmission (admission.go).
	handshakes, attached int
	capLogged            time.Time // when the limits were last logged

	mem       *memBudget
	memLogged atomic.Int64  // when the budget was last logged full (UnixNano)
	clock     atomic.Uint64 // orders what the server hears (conn.heard)

	lastID atomic.Uint64 // the ID of the last connection accepted

	counts                         counters // by command and by error value
	nconns, total, errors, refused atomic.Int64
	tlsRefused, failedHandshakes   atomic.Int64
}

// NewServer returns a server with no exports.
func NewServer(o ServerOptions) *Server {
	o = o.withDefaults()
	s := &Server{
		opts:      o,
		log:       o.Logger,
		conns:     map[*conn]struct{}{},
		listeners: map[net.Listener]struct{}{},
		idle:      make(chan struct{}),
		mem:       newMemBudget(o.MemoryBudget, o.MaxConnections),
	}
	s.mem.onWait = s.logBudget
	return s
}

// logBudget logs, at most once a second, that requests wait for the
// memory budget.
func (s *Server) logBudget() {
	now, last := time.Now(), s.memLogged.Load()
	if now.UnixNano()-last < int64(time.Second) || !s.memLogged.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	m := s.mem.stats()
	s.log.Warn("memory budget reached: requests wait", "budget", s.opts.MemoryBudget, "held", m.held, "waits", m.waits)
}

// AddExport registers e. The server never closes e.Dev.
func (s *Server) AddExport(e Export) error {
	if e.Dev == nil {
		return fmt.Errorf("nbd: export %q has no device", e.Name)
	}
	if err := checkString("export name", e.Name); err != nil {
		return err
	}
	if err := checkString("export description", e.Description); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return ErrServerClosed
	}
	if s.find(e.Name) != nil {
		return fmt.Errorf("%w: %q", ErrExportExists, e.Name)
	}
	s.exports = append(s.exports, &export{Export: e})
	return nil
}

// RemoveExport unregisters an export, so that no new client can open it,
// and drops its clients as DropClients does.
func (s *Server) RemoveExport(name string) error {
	s.mu.Lock()
	e := s.find(name)
	if e != nil {
		s.exports = deleteExport(s.exports, e)
	}
	s.mu.Unlock()
	if e == nil {
		return fmt.Errorf("%w: %q", ErrUnknownExport, name)
	}
	s.drop(e)
	return nil
}

func deleteExport(l []*export, e *export) []*export {
	for i, x := range l {
		if x == e {
			return append(l[:i:i], l[i+1:]...)
		}
	}
	return l
}

// find returns the export of that name, nil if none. Called with mu held.
func (s *Server) find(name string) *export {
	for _, e := range s.exports {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// lookup resolves a client's export name: "" is the first export, unless
// an export is really named "".
func (s *Server) lookup(name string) *export {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.find(name); e != nil || name != "" || len(s.exports) == 0 {
		return e
	}
	return s.exports[0]
}

// exportList returns the registered exports.
func (s *Server) exportList() []*export {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*export(nil), s.exports...)
}

// Clients returns how many connections are in transmission phase on the
// named export.
func (s *Server) Clients(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.find(name); e != nil {
		return e.clients
	}
	return 0
}

// DropClients disconnects every client of the named export at once,
// without answering their outstanding requests, and waits until the
// requests already handed to the device have returned. It returns how
// many connections it dropped.
func (s *Server) DropClients(name string) int {
	s.mu.Lock()
	e := s.find(name)
	s.mu.Unlock()
	if e == nil {
		return 0
	}
	return s.drop(e)
}

func (s *Server) drop(e *export) int {
	victims := s.connsWhere(func(c *conn) bool { return c.exp == e })
	for _, c := range victims {
		c.abort()
	}
	for _, c := range victims {
		<-c.done
	}
	return len(victims)
}

// connsWhere returns the connections that match.
func (s *Server) connsWhere(match func(*conn) bool) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var l []*conn
	for c := range s.conns {
		if match(c) {
			l = append(l, c)
		}
	}
	return l
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	m := s.mem.stats()
	cmds, errnos := s.counts.snapshot()
	var requests int64
	for _, c := range cmds {
		requests += c.Requests
	}
	n, bytes := s.inFlight()
	return Stats{
		Commands:         cmds,
		Errnos:           errnos,
		InFlight:         n,
		InFlightBytes:    bytes,
		BufferBytes:      m.held,
		PeakBufferBytes:  m.peak,
		BufferWaits:      m.waits,
		Connections:      s.nconns.Load(),
		TotalConnections: s.total.Load(),
		Requests:         requests,
		BytesRead:        cmds[CmdRead.String()].Bytes,
		BytesWritten:     cmds[CmdWrite.String()].Bytes,
		Errors:           s.errors.Load(),
		Refused:          s.refused.Load(),
		TLSRefused:       s.tlsRefused.Load(),
		FailedHandshakes: s.failedHandshakes.Load(),
	}
}

// inFlight sums the requests the connections hold now and their bytes.
// It costs the data path nothing: it reads each connection's own counts.
func (s *Server) inFlight() (n, bytes int64) {
	for _, c := range s.connsWhere(func(*conn) bool { return true }) {
		c.mu.Lock()
		n += int64(c.inflight)
		bytes += int64(c.inflightBytes)
		c.mu.Unlock()
	}
	return n, bytes
}
