package nbd

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// This file is the client's reader: it decodes replies and hands them to
// the pending calls by handle. Anything the protocol does not allow is an
// ErrProtocol that breaks the client (the spec's hard disconnect).

// Bounds on what a reply may make the client read.
const (
	maxErrorChunk   = chunkErrorMinSize + maxString + 8
	maxStatusChunk  = 4 + 8*(1<<20)
	maxReadSegments = 4096
)

// receive reads replies until the connection fails.
func (c *Client) receive() error {
	var m [4]byte
	for {
		if _, err := io.ReadFull(c.br, m[:]); err != nil {
			return err
		}
		var err error
		switch magic := binary.BigEndian.Uint32(m[:]); magic {
		case magicSimpleReply:
			err = c.recvSimple()
		case magicChunkReply:
			if !c.structured {
				return fmt.Errorf("%w: structured reply without NBD_OPT_STRUCTURED_REPLY", ErrProtocol)
			}
			err = c.recvChunk()
		default:
			err = fmt.Errorf("%w: bad reply magic %#08x", ErrProtocol, magic)
		}
		if err != nil {
			return err
		}
	}
}

func (c *Client) pendingCall(handle uint64) (*call, error) {
	cl := c.lookup(handle)
	if cl == nil {
		return nil, fmt.Errorf("%w: reply to unknown handle %#x", ErrProtocol, handle)
	}
	return cl, nil
}

func (c *Client) recvSimple() error {
	var h [simpleReplySize - 4]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return err
	}
	errno := Errno(binary.BigEndian.Uint32(h[:]))
	cl, err := c.pendingCall(binary.BigEndian.Uint64(h[4:]))
	if err != nil {
		return err
	}
	if errno != 0 {
		c.completeError(cl, &Error{Op: cl.req.Type, Off: int64(cl.req.Offset), Len: int64(cl.req.Length), Errno: errno})
		return nil
	}
	switch cl.req.Type {
	case CmdRead:
		if _, err := io.ReadFull(c.br, cl.buf); err != nil {
			return err
		}
	case CmdNetraidControl:
		var l [4]byte
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(l[:])
		if n > maxControlReply {
			return fmt.Errorf("%w: control reply of %d bytes", ErrProtocol, n)
		}
		cl.resp = make([]byte, n)
		if _, err := io.ReadFull(c.br, cl.resp); err != nil {
			return err
		}
	case CmdBlockStatus:
		return fmt.Errorf("%w: simple reply to a successful block status", ErrProtocol)
	}
	c.complete(cl, nil)
	return nil
}

// completeError ends a call with an error reply; ESHUTDOWN makes the
// client stop, as the spec requires.
func (c *Client) completeError(cl *call, e *Error) {
	if e.Errno == 0 {
		e.Errno = EINVAL // an error chunk must carry one; treat as the spec says
	}
	c.complete(cl, e)
	if e.Errno == ESHUTDOWN {
		c.stopTaking(fmt.Errorf("nbd: export %q: %w", c.export, ErrShutdown))
	}
}

func (c *Client) recvChunk() error {
	var h [chunkHeaderSize - 4]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return err
	}
	flags := binary.BigEndian.Uint16(h[0:])
	typ := binary.BigEndian.Uint16(h[2:])
	length := binary.BigEndian.Uint32(h[12:])
	cl, err := c.pendingCall(binary.BigEndian.Uint64(h[4:]))
	if err != nil {
		return err
	}
	switch {
	case typ == chunkNone:
		if length != 0 || flags&replyFlagDone == 0 {
			return fmt.Errorf("%w: NONE chunk of length %d flags %#x", ErrProtocol, length, flags)
		}
	case typ == chunkOffsetData:
		err = c.recvData(cl, length)
	case typ == chunkOffsetHole:
		err = c.recvHole(cl, length)
	case typ == chunkBlockStatus:
		err = c.recvStatus(cl, length)
	case typ&chunkErrBit != 0:
		err = c.recvError(cl, typ, length)
	default:
		err = fmt.Errorf("%w: unknown chunk type %d", ErrProtocol, typ)
	}
	if err != nil || flags&replyFlagDone == 0 {
		return err
	}
	return c.finish(cl)
}

// finish ends a call at its final chunk, checking the reply was whole.
func (c *Client) finish(cl *call) error {
	if cl.chunkEr != nil {
		if e, ok := cl.chunkEr.(*Error); ok {
			c.completeError(cl, e)
		} else {
			c.complete(cl, cl.chunkEr)
		}
		return nil
	}
	switch {
	case cl.req.Type == CmdRead && cl.covered.total != int64(cl.req.Length):
		return fmt.Errorf("%w: read of %d bytes answered with %d", ErrProtocol, cl.req.Length, cl.covered.total)
	case cl.req.Type == CmdBlockStatus && !cl.status:
		return fmt.Errorf("%w: block status answered without a status chunk", ErrProtocol)
	case cl.req.Type == CmdNetraidControl:
		return fmt.Errorf("%w: control request answered by a structured reply", ErrProtocol)
	}
	c.complete(cl, nil)
	return nil
}

// span checks that [off, off+n) lies in a READ's range and is not yet
// covered, and returns its index in the call's buffer.
func (cl *call) span(off uint64, n uint32) (int64, error) {
	if cl.req.Type != CmdRead || n == 0 || off < cl.req.Offset || off-cl.req.Offset > uint64(cl.req.Length) ||
		uint64(n) > uint64(cl.req.Length)-(off-cl.req.Offset) {
		return 0, fmt.Errorf("%w: content chunk off %d len %d outside %v off %d len %d",
			ErrProtocol, off, n, cl.req.Type, cl.req.Offset, cl.req.Length)
	}
	i := int64(off - cl.req.Offset)
	if !cl.covered.add(i, int64(n)) {
		return 0, fmt.Errorf("%w: content chunk off %d len %d overlaps another or is one too many", ErrProtocol, off, n)
	}
	return i, nil
}

func (c *Client) recvData(cl *call, length uint32) error {
	if length < 9 {
		return fmt.Errorf("%w: OFFSET_DATA chunk of length %d", ErrProtocol, length)
	}
	var b [8]byte
	if _, err := io.ReadFull(c.br, b[:]); err != nil {
		return err
	}
	n := length - 8
	i, err := cl.span(binary.BigEndian.Uint64(b[:]), n)
	if err != nil {
		return err
	}
	_, err = io.ReadFull(c.br, cl.buf[i:i+int64(n)])
	return err
}

func (c *Client) recvHole(cl *call, length uint32) error {
	if length != 12 {
		return fmt.Errorf("%w: OFFSET_HOLE chunk of length %d", ErrProtocol, length)
	}
	var b [12]byte
	if _, err := io.ReadFull(c.br, b[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(b[8:])
	i, err := cl.span(binary.BigEndian.Uint64(b[:]), n)
	if err != nil {
		return err
	}
	clear(cl.buf[i : i+int64(n)])
	return nil
}

func (c *Client) recvStatus(cl *call, length uint32) error {
	if cl.req.Type != CmdBlockStatus || cl.status || length < 12 || (length-4)%8 != 0 || length > maxStatusChunk {
		return fmt.Errorf("%w: unexpected block status chunk of length %d", ErrProtocol, length)
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(c.br, b); err != nil {
		return err
	}
	if id := binary.BigEndian.Uint32(b); id != c.metaID {
		return fmt.Errorf("%w: block status for context %d, negotiated %d", ErrProtocol, id, c.metaID)
	}
	for p := b[4:]; len(p) > 0; p = p[8:] {
		d := descriptor{length: binary.BigEndian.Uint32(p), flags: binary.BigEndian.Uint32(p[4:])}
		if d.length == 0 {
			return fmt.Errorf("%w: block status descriptor of length 0", ErrProtocol)
		}
		cl.descs = append(cl.descs, d)
	}
	cl.status = true
	return nil
}

func (c *Client) recvError(cl *call, typ uint16, length uint32) error {
	if length < chunkErrorMinSize || length > maxErrorChunk {
		return fmt.Errorf("%w: error chunk of length %d", ErrProtocol, length)
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(c.br, b); err != nil {
		return err
	}
	errno := Errno(binary.BigEndian.Uint32(b))
	msgLen := uint32(binary.BigEndian.Uint16(b[4:]))
	if msgLen > length-chunkErrorMinSize || (typ == chunkErrorOffset && length-chunkErrorMinSize-msgLen != 8) {
		return fmt.Errorf("%w: error chunk message of %d bytes in %d", ErrProtocol, msgLen, length)
	}
	if cl.chunkEr == nil {
		cl.chunkEr = &Error{Op: cl.req.Type, Off: int64(cl.req.Offset), Len: int64(cl.req.Length), Errno: errno,
			Msg: string(b[chunkErrorMinSize : chunkErrorMinSize+msgLen])}
	}
	return nil
}

// rangeSet is the disjoint, sorted set of byte ranges a READ's chunks
// have covered, adjacent ranges merged.
type rangeSet struct {
	r     []segment
	total int64
}

type segment struct{ off, end int64 }

// add inserts [off, off+n), which must not overlap what is there; false if
// it does, or if the set would hold more than maxReadSegments ranges.
func (s *rangeSet) add(off, n int64) bool {
	end := off + n
	i, _ := slices.BinarySearchFunc(s.r, off, func(g segment, o int64) int {
		switch {
		case g.off < o:
			return -1
		case g.off > o:
			return 1
		}
		return 0
	})
	if (i > 0 && s.r[i-1].end > off) || (i < len(s.r) && s.r[i].off < end) {
		return false
	}
	joinPrev := i > 0 && s.r[i-1].end == off
	joinNext := i < len(s.r) && s.r[i].off == end
	if !joinPrev && !joinNext && len(s.r) == maxReadSegments {
		return false
	}
	s.total += n
	switch {
	case joinPrev && joinNext:
		s.r[i-1].end = s.r[i].end
		s.r = slices.Delete(s.r, i, i+1)
	case joinPrev:
		s.r[i-1].end = end
	case joinNext:
		s.r[i].off = off
	default:
		s.r = slices.Insert(s.r, i, segment{off, end})
	}
	return true
}
