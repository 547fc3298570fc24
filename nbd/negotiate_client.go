package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// handshake runs the client's side of the fixed newstyle handshake:
// STARTTLS if asked for, the netraid hello if asked for, structured
// replies, the base:allocation context, then NBD_OPT_GO (NBD_OPT_EXPORT_NAME if the server lacks it).
// It ends when ctx does, or after the client's Timeout.
func (c *Client) handshake(ctx context.Context, o ClientOptions) error {
	deadline := time.Now().Add(o.Timeout)
	ctxDeadline, ok := ctx.Deadline()
	if ok && ctxDeadline.Before(deadline) {
		deadline = ctxDeadline
	}
	// STARTTLS replaces c.nc; the deadlines stay on the connection below.
	raw := c.raw
	raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	err := c.negotiate(o)
	if err != nil && c.tls {
		err = tlsRefusal(err)
	}
	if !stop() && err == nil {
		err = context.Cause(ctx)
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return fmt.Errorf("nbd: handshake with export %q: %w", o.Export, context.Cause(ctx))
	case ok && deadline.Equal(ctxDeadline) && errors.Is(err, os.ErrDeadlineExceeded):
		// The socket deadline that came from ctx fired before ctx's timer.
		return fmt.Errorf("nbd: handshake with export %q: %w", o.Export, context.DeadlineExceeded)
	default:
		return fmt.Errorf("nbd: handshake with export %q: %w", o.Export, err)
	}
	c.nc.SetDeadline(time.Time{})
	return nil
}

func (c *Client) negotiate(o ClientOptions) error {
	noZeroes, err := c.greet()
	if err != nil {
		return err
	}
	if o.TLS != nil {
		if err := c.startTLS(o.TLS); err != nil {
			return err
		}
	}
	if o.Auth != nil {
		if err := c.authenticate(o.Auth); err != nil {
			return err
		}
	}
	// The hello first: a server with ServerOptions.HelloFirst answers
	// nothing else before it.
	if o.Hello != nil {
		if err := c.sayHello(o.Export, o.Hello); err != nil {
			return err
		}
	}
	if c.structured, err = c.optAck(OptStructuredReply, nil); err != nil {
		return err
	}
	if c.structured {
		if err := c.selectAllocation(o.Export); err != nil {
			return err
		}
	}
	ok, err := c.optGo(o.Export)
	if err != nil || ok {
		return err
	}
	return c.exportName(o.Export, noZeroes)
}

// greet checks the server's greeting and sends the client flags.
func (c *Client) greet() (noZeroes bool, err error) {
	var g [18]byte
	if _, err := io.ReadFull(c.br, g[:16]); err != nil {
		return false, fmt.Errorf("nbd: read greeting: %w", err)
	}
	switch m1, m2 := binary.BigEndian.Uint64(g[:]), binary.BigEndian.Uint64(g[8:]); {
	case m1 != magicNBD:
		return false, fmt.Errorf("%w: bad greeting magic %#016x", ErrProtocol, m1)
	case m2 == magicOldstyle:
		return false, fmt.Errorf("%w: server speaks oldstyle negotiation", ErrProtocol)
	case m2 != magicOpt:
		return false, fmt.Errorf("%w: bad greeting magic %#016x", ErrProtocol, m2)
	}
	if _, err := io.ReadFull(c.br, g[16:]); err != nil {
		return false, fmt.Errorf("nbd: read greeting: %w", err)
	}
	flags := binary.BigEndian.Uint16(g[16:])
	if flags&flagFixedNewstyle == 0 {
		return false, fmt.Errorf("%w: server lacks fixed newstyle negotiation", ErrProtocol)
	}
	cflags := clientFixedNewstyle
	if flags&flagNoZeroes != 0 {
		cflags |= clientNoZeroes
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], cflags)
	if _, err := c.nc.Write(b[:]); err != nil {
		return false, fmt.Errorf("nbd: send client flags: %w", err)
	}
	return cflags&clientNoZeroes != 0, nil
}

// sendOption sends one option.
func (c *Client) sendOption(opt Option, data []byte) error {
	var h [optHeaderSize]byte
	putOptHeader(h[:], opt, uint32(len(data)))
	if err := writeMessage(c.nc, h[:], data); err != nil {
		return fmt.Errorf("nbd: send option %v: %w", opt, err)
	}
	return nil
}

// readReply reads one reply to opt.
func (c *Client) readReply(opt Option) (Reply, []byte, error) {
	var h [optReplyHeaderSize]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, fmt.Errorf("nbd: read reply to option %v: %w", opt, err)
	}
	if m := binary.BigEndian.Uint64(h[:]); m != magicOptReply {
		return 0, nil, fmt.Errorf("%w: bad option reply magic %#016x", ErrProtocol, m)
	}
	if got := Option(binary.BigEndian.Uint32(h[8:])); got != opt {
		return 0, nil, fmt.Errorf("%w: reply to option %v while %v is pending", ErrProtocol, got, opt)
	}
	typ := Reply(binary.BigEndian.Uint32(h[12:]))
	n := binary.BigEndian.Uint32(h[16:])
	if n > maxOptionLen {
		return 0, nil, fmt.Errorf("%w: option reply of %d bytes", ErrProtocol, n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return 0, nil, fmt.Errorf("nbd: read reply to option %v: %w", opt, err)
	}
	return typ, data, nil
}

// optAck sends an option answered by a lone ACK: true if acknowledged,
// false if the server does not support it.
func (c *Client) optAck(opt Option, data []byte) (bool, error) {
	if err := c.sendOption(opt, data); err != nil {
		return false, err
	}
	typ, msg, err := c.readReply(opt)
	switch {
	case err != nil:
		return false, err
	case typ == RepAck:
		return true, nil
	case typ == RepErrUnsup:
		return false, nil
	}
	return false, replyError(opt, typ, msg)
}

// replyError is the error of an unexpected or error reply.
func replyError(opt Option, typ Reply, msg []byte) error {
	if !typ.IsError() {
		return fmt.Errorf("%w: unexpected reply %v to option %v", ErrProtocol, typ, opt)
	}
	return &OptionError{Option: opt, Reply: typ, Msg: string(msg)}
}

// selectAllocation asks for base:allocation. A server without metadata
// contexts is fine: Map then reports everything allocated.
func (c *Client) selectAllocation(export string) error {
	const opt = OptSetMetaContext
	q := metaRequest{name: export, queries: []string{metaBaseAllocation}}
	if err := c.sendOption(opt, q.encode()); err != nil {
		return err
	}
	for {
		typ, data, err := c.readReply(opt)
		switch {
		case err != nil:
			return err
		case typ == RepMetaContext && len(data) >= 4:
			if string(data[4:]) == metaBaseAllocation {
				c.metaID, c.hasMeta = binary.BigEndian.Uint32(data), true
			}
		case typ == RepAck:
			return nil
		case typ.IsError():
			c.hasMeta = false
			if typ == RepErrUnknown {
				return replyError(opt, typ, data)
			}
			return nil
		default:
			return fmt.Errorf("%w: unexpected reply %v to option %v", ErrProtocol, typ, opt)
		}
	}
}

// authenticate runs the netraid authentication with auth.
func (c *Client) authenticate(auth func([]byte) ([]byte, error)) error {
	const opt = OptNetraidAuth
	req, err := auth(nil)
	for err == nil && req != nil {
		if err := c.sendOption(opt, req); err != nil {
			return err
		}
		typ, data, rerr := c.readReply(opt)
		switch {
		case rerr != nil:
			return rerr
		case typ == RepErrTLSReqd:
			return replyError(opt, typ, data)
		case typ != RepNetraidAuth:
			return fmt.Errorf("%w: the server answered %v: %s", ErrAuth, typ, data)
		}
		req, err = auth(data)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return nil
}

// sayHello does the netraid hello.
func (c *Client) sayHello(export string, hello []byte) error {
	const opt = OptNetraidHello
	if err := c.sendOption(opt, encodeHello(export, hello)); err != nil {
		return err
	}
	typ, data, err := c.readReply(opt)
	switch {
	case err != nil:
		return err
	case typ == RepNetraidHello:
		c.hello, c.helloReply = true, data
		return nil
	case typ == RepErrTLSReqd:
		// Not a refusal of the hello: the server speaks to no one
		// before TLS.
		return replyError(opt, typ, data)
	case typ == RepErrNetraidRefused:
		msg, attached, err := parseRefusal(data)
		if err != nil {
			return fmt.Errorf("%w: refusal of the netraid hello: %w", ErrProtocol, err)
		}
		return &HelloError{Export: export, Reply: typ, Msg: msg, Data: attached}
	case typ.IsError():
		return &HelloError{Export: export, Reply: typ, Msg: string(data)}
	}
	return fmt.Errorf("%w: unexpected reply %v to option %v", ErrProtocol, typ, opt)
}

// optGo opens the export with NBD_OPT_GO, asking for block sizes. It
// returns false if the server does not support the option.
func (c *Client) optGo(export string) (bool, error) {
	const opt = OptGo
	q := infoRequest{name: export, infos: []InfoType{InfoBlockSize}}
	if err := c.sendOption(opt, q.encode()); err != nil {
		return false, err
	}
	c.sizes = blockSizes{min: 1, preferred: 4096, max: 0xffffffff}
	gotExport := false
	for {
		typ, data, err := c.readReply(opt)
		switch {
		case err != nil:
			return false, err
		case typ == RepInfo:
			if err := c.info(data, &gotExport); err != nil {
				return false, err
			}
		case typ == RepAck && gotExport:
			return true, nil
		case typ == RepAck:
			return false, fmt.Errorf("%w: NBD_OPT_GO acknowledged without NBD_INFO_EXPORT", ErrProtocol)
		case typ == RepErrUnsup:
			return false, nil
		default:
			return false, replyError(opt, typ, data)
		}
	}
}

// info takes in one NBD_REP_INFO; unknown types are ignored.
func (c *Client) info(data []byte, gotExport *bool) error {
	if len(data) < 2 {
		return fmt.Errorf("%w: info reply of %d bytes", ErrProtocol, len(data))
	}
	switch t := InfoType(binary.BigEndian.Uint16(data)); t {
	case InfoExport:
		if len(data) != 12 {
			return fmt.Errorf("%w: export info of %d bytes", ErrProtocol, len(data))
		}
		*gotExport = true
		return c.setExport(binary.BigEndian.Uint64(data[2:]), TransmissionFlags(binary.BigEndian.Uint16(data[10:])))
	case InfoBlockSize:
		if len(data) != 14 {
			return fmt.Errorf("%w: block size info of %d bytes", ErrProtocol, len(data))
		}
		s := blockSizes{
			min:       binary.BigEndian.Uint32(data[2:]),
			preferred: binary.BigEndian.Uint32(data[6:]),
			max:       binary.BigEndian.Uint32(data[10:]),
		}
		if err := s.valid(); err != nil {
			return err
		}
		c.sizes = s
	}
	return nil
}

func (c *Client) setExport(size uint64, flags TransmissionFlags) error {
	if size > math.MaxInt64 || flags&FlagHasFlags == 0 {
		return fmt.Errorf("%w: export size %d flags %#x", ErrProtocol, size, uint16(flags))
	}
	c.size, c.flags = int64(size), flags
	return nil
}

// exportName opens the export the old way, for servers without
// NBD_OPT_GO; they close the connection on an unknown name.
func (c *Client) exportName(export string, noZeroes bool) error {
	if err := c.sendOption(OptExportName, []byte(export)); err != nil {
		return err
	}
	n := 10
	if !noZeroes {
		n += exportNameZeroes
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %q (server closed the connection)", ErrUnknownExport, export)
		}
		return fmt.Errorf("nbd: read export info: %w", err)
	}
	c.sizes = blockSizes{min: 1, preferred: 4096, max: defaultMaxBlock}
	return c.setExport(binary.BigEndian.Uint64(b), TransmissionFlags(binary.BigEndian.Uint16(b[8:])))
}
