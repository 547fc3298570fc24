package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// errAbortOption ends a handshake the client aborted with NBD_OPT_ABORT.
var errAbortOption = errors.New("nbd: client aborted the handshake")

// negotiation is the server's side of one fixed newstyle handshake.
type negotiation struct {
	c          *conn
	ctx        context.Context // ends at the negotiation deadline
	noZeroes   bool
	fixed      bool // the client speaks fixed newstyle: TLS is possible
	tls        bool // STARTTLS succeeded
	toldTLS    bool // an option was refused for want of TLS
	structured bool
	meta       *export // export base:allocation was selected for, if any
	hello      *export // export the netraid hello was done for, if any
	authed     bool    // ServerOptions.Auth said the client is authenticated
	authState  any     // Auth's state of this connection
}

// negotiate runs the handshake under the negotiation deadline. It returns
// nil once the connection is in transmission phase.
func (c *conn) negotiate() error {
	deadline := time.Now().Add(c.s.opts.NegotiationTimeout)
	if !c.setHandshakeDeadline(deadline) {
		return ErrShutdown
	}
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	n := &negotiation{c: c, ctx: ctx}
	if err := n.greet(); err != nil {
		return err
	}
	for {
		opt, data, err := n.readOption()
		if err != nil && n.toldTLS {
			return fmt.Errorf("%w: the client left without starting TLS: %w", ErrTLSRequired, err)
		}
		if err != nil {
			return err
		}
		done, err := n.option(opt, data)
		if done || err != nil {
			return err
		}
	}
}

// greet sends the server's greeting and checks the client's flags.
func (n *negotiation) greet() error {
	var b [18]byte
	binary.BigEndian.PutUint64(b[0:], magicNBD)
	binary.BigEndian.PutUint64(b[8:], magicOpt)
	binary.BigEndian.PutUint16(b[16:], flagFixedNewstyle|flagNoZeroes)
	if _, err := n.c.nc.Write(b[:]); err != nil {
		return fmt.Errorf("nbd: send greeting: %w", err)
	}
	var f [4]byte
	if _, err := io.ReadFull(n.c.rr.r, f[:]); err != nil {
		return fmt.Errorf("nbd: read client flags: %w", err)
	}
	n.c.s.hear(n.c)
	flags := binary.BigEndian.Uint32(f[:])
	if flags&^clientKnownFlags != 0 {
		return fmt.Errorf("%w: unknown client flags %#x", ErrProtocol, flags)
	}
	n.noZeroes = flags&clientNoZeroes != 0
	n.fixed = flags&clientFixedNewstyle != 0
	if n.c.s.opts.TLSRequired && !n.fixed {
		// TLS needs fixed newstyle (the protocol's TLS section).
		return fmt.Errorf("%w: the client does not speak fixed newstyle, so it cannot start TLS", ErrTLSRequired)
	}
	return nil
}

// readOption reads one option. An option longer than maxOptionLen is
// answered with NBD_REP_ERR_TOO_BIG and ends the connection: the server
// will not read that much before knowing who the client is.
func (n *negotiation) readOption() (Option, []byte, error) {
	var h [optHeaderSize]byte
	if _, err := io.ReadFull(n.c.rr.r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("nbd: read option: %w", err)
	}
	if m := binary.BigEndian.Uint64(h[:]); m != magicOpt {
		return 0, nil, fmt.Errorf("%w: bad option magic %#016x", ErrProtocol, m)
	}
	opt := Option(binary.BigEndian.Uint32(h[8:]))
	length := binary.BigEndian.Uint32(h[12:])
	if length > maxOptionLen {
		if opt != OptExportName {
			n.replyErr(opt, RepErrTooBig, fmt.Sprintf("option data of %d bytes, limit %d", length, maxOptionLen))
		}
		return 0, nil, fmt.Errorf("%w: option %v with %d bytes of data", ErrProtocol, opt, length)
	}
	data := make([]byte, length)
	if _, err := io.ReadFull(n.c.rr.r, data); err != nil {
		return 0, nil, fmt.Errorf("nbd: read option %v data: %w", opt, err)
	}
	n.c.s.hear(n.c)
	return opt, data, nil
}

// option answers one option; done is true when transmission begins.
func (n *negotiation) option(opt Option, data []byte) (done bool, err error) {
	if opt != OptAbort && n.c.s.isShutdown() {
		return false, n.replyErr(opt, RepErrShutdown, "server is shutting down")
	}
	if n.c.s.opts.TLSRequired && !n.tls && opt != OptStartTLS && opt != OptAbort {
		return n.tlsRequired(opt)
	}
	if n.c.s.opts.Auth != nil && !n.authed && opt != OptStartTLS && opt != OptAbort && opt != OptNetraidAuth {
		if opt == OptExportName {
			return true, fmt.Errorf("%w: NBD_OPT_EXPORT_NAME before authentication", ErrAuth)
		}
		return false, n.replyErr(opt, RepErrPolicy, "authenticate first")
	}
	if n.c.s.opts.HelloFirst && n.hello == nil && opt != OptStartTLS && opt != OptAbort && opt != OptNetraidHello && opt != OptNetraidAuth {
		if opt == OptExportName {
			return true, fmt.Errorf("%w: NBD_OPT_EXPORT_NAME before the netraid hello", ErrNoHello)
		}
		return false, n.replyErr(opt, RepErrPolicy, "say the netraid hello first")
	}
	switch opt {
	case OptExportName:
		return true, n.exportName(data)
	case OptAbort:
		n.reply(opt, RepAck, nil)
		return true, errAbortOption
	case OptList:
		return false, n.list(data)
	case OptInfo, OptGo:
		return n.info(opt, data)
	case OptStructuredReply:
		if len(data) != 0 {
			return false, n.replyErr(opt, RepErrInvalid, "structured reply option takes no data")
		}
		n.structured = true
		return false, n.reply(opt, RepAck, nil)
	case OptListMetaContext, OptSetMetaContext:
		return false, n.metaContext(opt, data)
	case OptNetraidHello:
		return false, n.netraidHello(data)
	case OptNetraidAuth:
		return n.netraidAuth(data)
	case OptStartTLS:
		return false, n.startTLS(data)
	}
	return false, n.replyErr(opt, RepErrUnsup, "")
}

// reply sends one option reply.
func (n *negotiation) reply(opt Option, typ Reply, data []byte) error {
	var h [optReplyHeaderSize]byte
	putOptReplyHeader(h[:], opt, typ, uint32(len(data)))
	if err := writeMessage(n.c.nc, h[:], data); err != nil {
		return fmt.Errorf("nbd: send reply to option %v: %w", opt, err)
	}
	return nil
}

// replyErr sends an error reply with a message.
func (n *negotiation) replyErr(opt Option, typ Reply, msg string) error {
	return n.reply(opt, typ, []byte(msg))
}

func (n *negotiation) list(data []byte) error {
	if len(data) != 0 {
		return n.replyErr(OptList, RepErrInvalid, "list option takes no data")
	}
	for _, e := range n.c.s.exportList() {
		if err := n.reply(OptList, RepServer, encodeServer(e.Name, e.Description)); err != nil {
			return err
		}
	}
	return n.reply(OptList, RepAck, nil)
}

// info answers NBD_OPT_INFO and NBD_OPT_GO; GO that succeeds enters
// transmission.
func (n *negotiation) info(opt Option, data []byte) (bool, error) {
	q, err := parseInfoRequest(data)
	if err != nil {
		return false, n.replyErr(opt, RepErrInvalid, err.Error())
	}
	e := n.c.s.lookup(q.name)
	if e == nil {
		return false, n.replyErr(opt, RepErrUnknown, fmt.Sprintf("no export named %q", q.name))
	}
	if opt == OptGo && n.hello != nil && n.hello != e {
		return false, n.replyErr(opt, RepErrPolicy, fmt.Sprintf("netraid hello was for export %q", n.hello.Name))
	}
	if opt == OptGo && e.RequireHello && n.hello != e {
		return false, n.replyErr(opt, RepErrPolicy, fmt.Sprintf("export %q is a netraid replication link: only a netraid primary that said hello may open it", e.Name))
	}
	var dev blockdev.Device
	if opt == OptGo {
		if dev, err = n.device(e); err != nil {
			return false, n.replyErr(opt, RepErrPolicy, errorMessage(err))
		}
	}
	sizes := n.c.s.blockSizes(e)
	if err := n.reply(opt, RepInfo, encodeInfoExport(uint64(e.Dev.Size()), transmissionFlags(e, n.structured))); err != nil {
		return false, err
	}
	for _, t := range q.infos {
		var p []byte
		switch t {
		case InfoName:
			p = encodeInfoString(InfoName, e.Name)
		case InfoDescription:
			p = encodeInfoString(InfoDescription, e.Description)
		case InfoBlockSize:
			p = sizes.encode()
		default:
			continue
		}
		if err := n.reply(opt, RepInfo, p); err != nil {
			return false, err
		}
	}
	if opt == OptInfo {
		return false, n.reply(opt, RepAck, nil)
	}
	return true, n.enter(opt, e, dev)
}

// exportName answers NBD_OPT_EXPORT_NAME, which cannot fail politely: an
// unknown export ends the connection.
func (n *negotiation) exportName(data []byte) error {
	name := string(data)
	if err := checkString("export name", name); err != nil {
		return err
	}
	e := n.c.s.lookup(name)
	if e == nil {
		return fmt.Errorf("%w: %q", ErrUnknownExport, name)
	}
	if e.RequireHello && n.hello != e {
		return fmt.Errorf("%w: export %q needs the netraid hello", ErrNoHello, name)
	}
	dev, err := n.device(e)
	if err != nil {
		return fmt.Errorf("nbd: export %q refused: %w", name, err)
	}
	return n.enter(OptExportName, e, dev)
}

// device returns the device that serves the connection on e:
// Export.Attach's, or e.Dev.
func (n *negotiation) device(e *export) (blockdev.Device, error) {
	if e.Attach == nil {
		return e.Dev, nil
	}
	d, err := e.Attach(n.c.ctx)
	switch {
	case err != nil:
		return nil, err
	case d == nil:
		return nil, fmt.Errorf("export %q: Attach returned no device", e.Name)
	case d.Size() != e.Dev.Size():
		return nil, fmt.Errorf("export %q: Attach returned a device of %d bytes for an export of %d", e.Name, d.Size(), e.Dev.Size())
	}
	return d, nil
}

// enter moves the connection into transmission on e, served by dev, and
// sends the last reply of the handshake.
func (n *negotiation) enter(opt Option, e *export, dev blockdev.Device) error {
	c := n.c
	// Clear the handshake deadline first: once attached, only drain may
	// set a read deadline, and it must not be undone.
	c.nc.SetDeadline(time.Time{})
	if err := c.s.attach(c, e); err != nil {
		if opt != OptExportName {
			typ := RepErrShutdown
			switch {
			case errors.Is(err, ErrUnknownExport):
				typ = RepErrUnknown
			case errors.Is(err, errServerFull), errors.Is(err, errCertFull):
				typ = RepErrPolicy
			}
			c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.ReplyTimeout))
			n.replyErr(opt, typ, err.Error())
		}
		return err
	}
	c.dev = dev
	c.structured = n.structured
	c.align = max(blockdev.BlockSize(dev), 4096)
	_, zeroer := dev.(blockdev.Zeroer)
	c.sess = session{
		size:       e.Dev.Size(),
		readOnly:   e.ReadOnly,
		structured: n.structured,
		metaAlloc:  n.meta == e,
		hello:      n.hello == e,
		maxRequest: uint32(c.s.opts.MaxRequest),
		fastZero:   zeroer,
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.ReplyTimeout))
	if opt == OptGo {
		return n.reply(opt, RepAck, nil)
	}
	b := make([]byte, 10, 10+exportNameZeroes)
	binary.BigEndian.PutUint64(b, uint64(e.Dev.Size()))
	binary.BigEndian.PutUint16(b[8:], uint16(transmissionFlags(e, n.structured)))
	if !n.noZeroes {
		b = b[:10+exportNameZeroes]
	}
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("nbd: send export info: %w", err)
	}
	return nil
}

// transmissionFlags advertises what the server does for e. Flush is
// device-wide by the Device contract, so CAN_MULTI_CONN always holds.
func transmissionFlags(e *export, structured bool) TransmissionFlags {
	f := FlagHasFlags | FlagSendFlush | FlagSendFUA | FlagSendTrim | FlagSendWriteZeroes |
		FlagSendFastZero | FlagCanMultiConn | FlagSendCache
	if structured {
		f |= FlagSendDF
	}
	if e.ReadOnly {
		f |= FlagReadOnly
	}
	return f
}

// blockSizes are e's constraints: a minimum of 1, since the server
// takes any offset and length (the device reads-modify-writes what is not
// aligned: blockdev.Aligned does, and every netraid device is one); the
// device's logical block size, at least 4 KiB, preferred; MaxRequest at
// most.
func (s *Server) blockSizes(e *export) blockSizes {
	preferred := uint32(4096)
	if b, ok := e.Dev.(blockdev.BlockSizer); ok {
		if v := b.BlockSize(); v > 4096 && v <= 64<<10 && v&(v-1) == 0 {
			preferred = uint32(v)
		}
	}
	return blockSizes{min: 1, preferred: preferred, max: uint32(s.opts.MaxRequest)}
}

// metaContext answers NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT; base:allocation is the only context.
func (n *negotiation) metaContext(opt Option, data []byte) error {
	if opt == OptSetMetaContext {
		n.meta = nil // replaced even if this one fails
	}
	q, err := parseMetaRequest(data)
	switch {
	case errors.Is(err, errTooManyQueries):
		return n.replyErr(opt, RepErrTooBig, err.Error())
	case err != nil:
		return n.replyErr(opt, RepErrInvalid, err.Error())
	case !n.structured:
		return n.replyErr(opt, RepErrInvalid, "negotiate structured replies first")
	}
	e := n.c.s.lookup(q.name)
	if e == nil {
		return n.replyErr(opt, RepErrUnknown, fmt.Sprintf("no export named %q", q.name))
	}
	match := opt == OptListMetaContext && len(q.queries) == 0
	for _, s := range q.queries {
		match = match || s == metaBaseAllocation || (opt == OptListMetaContext && s == metaBaseNamespace)
	}
	if match {
		id := uint32(0)
		if opt == OptSetMetaContext {
			id, n.meta = metaAllocationID, e
		}
		if err := n.reply(opt, RepMetaContext, encodeMetaContext(id, metaBaseAllocation)); err != nil {
			return err
		}
	}
	return n.reply(opt, RepAck, nil)
}

// netraidAuth answers OptNetraidAuth through ServerOptions.Auth; a
// failure ends the connection.
func (n *negotiation) netraidAuth(data []byte) (bool, error) {
	const opt = OptNetraidAuth
	hook := n.c.s.opts.Auth
	switch {
	case hook == nil:
		return false, n.replyErr(opt, RepErrUnsup, "this server takes no authentication")
	case n.authed:
		return false, n.replyErr(opt, RepErrInvalid, "already authenticated")
	}
	resp, done, err := hook(n.ctx, &n.authState, data)
	if err != nil {
		n.replyErr(opt, RepErrPolicy, "authentication failed")
		return true, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	if len(resp) > maxOptionLen {
		n.replyErr(opt, RepErrPolicy, "authentication failed")
		return true, fmt.Errorf("%w: a reply of %d bytes", ErrAuth, len(resp))
	}
	n.authed = done
	return false, n.reply(opt, RepNetraidAuth, resp)
}

// netraidHello answers OptNetraidHello through ServerOptions.Hello.
func (n *negotiation) netraidHello(data []byte) error {
	const opt = OptNetraidHello
	hook := n.c.s.opts.Hello
	if hook == nil {
		return n.replyErr(opt, RepErrUnsup, "this server takes no netraid hello")
	}
	name, payload, err := parseHello(data)
	if err != nil {
		return n.replyErr(opt, RepErrInvalid, err.Error())
	}
	e := n.c.s.lookup(name)
	if e == nil {
		return n.replyErr(opt, RepErrUnknown, fmt.Sprintf("no export named %q", name))
	}
	n.hello = nil
	resp, err := hook(n.ctx, e.Name, payload)
	var refusal *HelloRefusal
	switch {
	case errors.As(err, &refusal):
		data := encodeRefusal(errorMessage(err), refusal.Data)
		if len(data) > maxOptionLen {
			return n.replyErr(opt, RepErrPolicy, errorMessage(err))
		}
		return n.reply(opt, RepErrNetraidRefused, data)
	case err != nil:
		return n.replyErr(opt, RepErrPolicy, errorMessage(err))
	case len(resp) > maxOptionLen:
		return n.replyErr(opt, RepErrTooBig, fmt.Sprintf("hello reply of %d bytes, limit %d", len(resp), maxOptionLen))
	}
	n.hello = e
	return n.reply(opt, RepNetraidHello, resp)
}
