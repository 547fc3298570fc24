package nbd

import (
	"fmt"

	"github.com/netraid/netraid/blockdev"
)

// session is what the checks of a request need to know about its
// connection; it is fixed at the end of the handshake.
type session struct {
	size       int64
	readOnly   bool
	structured bool
	metaAlloc  bool   // base:allocation was selected for this export
	hello      bool   // the netraid hello was done for this export
	maxRequest uint32 // largest READ, WRITE or control payload
	fastZero   bool   // the device zeroes without writing (a Zeroer)
}

// allowedFlags lists the command flags valid for each command. FUA is
// valid for all (the spec says servers must accept it anywhere).
var allowedFlags = map[Command]CommandFlags{
	CmdRead:           CmdFlagFUA | CmdFlagDF,
	CmdWrite:          CmdFlagFUA,
	CmdFlush:          CmdFlagFUA,
	CmdTrim:           CmdFlagFUA,
	CmdCache:          CmdFlagFUA,
	CmdWriteZeroes:    CmdFlagFUA | CmdFlagNoHole | CmdFlagFastZero,
	CmdBlockStatus:    CmdFlagFUA | CmdFlagReqOne,
	CmdNetraidControl: CmdFlagFUA,
}

// checkRequest validates a request before any I/O or allocation, so that
// a bad one is refused with the right error and costs nothing. The error
// value of the reply comes from errnoOf: writes past the end are ENOSPC,
// other ranges EINVAL, writes to a read-only export EPERM, oversized
// payloads and unknown commands or flags EINVAL, and FAST_ZERO on a device
// that cannot zero fast ENOTSUP.
func checkRequest(req *Request, s *session) error {
	allowed, known := allowedFlags[req.Type]
	if !known {
		return fmt.Errorf("%w: unknown command %v", ErrInvalid, req.Type)
	}
	if !s.structured {
		allowed &^= CmdFlagDF
	}
	if extra := req.Flags &^ allowed; extra != 0 {
		return fmt.Errorf("%w: flags %#x not valid for %v", ErrInvalid, uint16(extra), req.Type)
	}
	end, ok := req.end()
	inRange := ok && end <= s.size
	writes := req.Type == CmdWrite || req.Type == CmdWriteZeroes || req.Type == CmdTrim
	switch {
	case writes && s.readOnly:
		return fmt.Errorf("%w: %v on a read-only export", blockdev.ErrReadOnly, req.Type)
	case req.Length > s.maxRequest && (req.Type == CmdRead || req.hasPayload()):
		return fmt.Errorf("%w: %v of %d bytes, limit %d", ErrTooLarge, req.Type, req.Length, s.maxRequest)
	case req.Type == CmdNetraidControl && !s.hello:
		return ErrNoHello
	case req.Type == CmdBlockStatus && !s.metaAlloc:
		return fmt.Errorf("%w: block status without a negotiated metadata context", ErrInvalid)
	case req.Type == CmdBlockStatus && req.Length == 0:
		return fmt.Errorf("%w: block status of zero length", ErrInvalid)
	case req.Type == CmdFlush && (req.Offset != 0 || req.Length != 0):
		return fmt.Errorf("%w: flush with offset %d length %d", ErrInvalid, req.Offset, req.Length)
	case req.Type == CmdFlush || req.Type == CmdNetraidControl || inRange:
	case req.Type == CmdWrite || req.Type == CmdWriteZeroes:
		return fmt.Errorf("%w: %v off %d len %d past the end of a %d-byte export",
			blockdev.ErrNoSpace, req.Type, req.Offset, req.Length, s.size)
	default:
		return fmt.Errorf("%w: %v off %d len %d, export size %d",
			blockdev.ErrOutOfRange, req.Type, req.Offset, req.Length, s.size)
	}
	if req.Type == CmdWriteZeroes && req.Flags&CmdFlagFastZero != 0 && !s.fastZero {
		return errFastZero
	}
	return nil
}

// exec runs a checked request and sends its reply if it succeeds.
func (c *conn) exec(req *Request, r *inflight) error {
	d := c.dev
	off, n := int64(req.Offset), int64(req.Length)
	switch req.Type {
	case CmdRead:
		return c.doRead(req)
	case CmdWrite:
		return c.doWrite(req, r)
	case CmdFlush:
		return c.doFlush(req)
	case CmdTrim:
		return c.durable(req, blockdev.Trim(d, off, n))
	case CmdWriteZeroes:
		mayTrim := req.Flags&CmdFlagNoHole == 0
		return c.durable(req, blockdev.WriteZeroes(d, off, n, mayTrim))
	case CmdCache:
		// A hint; the range was checked, and there is no cache to fill.
		c.replyOK(req)
		return nil
	case CmdBlockStatus:
		return c.doBlockStatus(req)
	case CmdNetraidControl:
		return c.doControl(req, r)
	}
	return fmt.Errorf("%w: command %v", ErrInvalid, req.Type)
}

func (c *conn) doRead(req *Request) error {
	buf, err := blockdev.ReadBuffer(c.dev, int(req.Length), int64(req.Offset))
	if err != nil {
		return err
	}
	defer blockdev.PutBuffer(buf)
	c.s.counts.cmd(CmdRead).bytes.Add(int64(len(buf)))
	c.replyData(req, buf)
	return nil
}

// doWrite applies a write; its payload is given back before the reply
// goes out.
func (c *conn) doWrite(req *Request, r *inflight) error {
	d, off, p := c.dev, int64(req.Offset), r.payload
	if req.Flags&CmdFlagFUA != 0 {
		if _, err := blockdev.WriteFUA(d, p, off); err != nil {
			return err
		}
	} else {
		if _, err := d.WriteAt(p, off); err != nil {
			return err
		}
		c.writes.Add(1)
	}
	c.s.counts.cmd(CmdWrite).bytes.Add(int64(len(p)))
	r.free()
	c.replyOK(req)
	return nil
}

func (c *conn) doFlush(req *Request) error {
	w := c.writes.Load()
	if err := c.dev.Flush(); err != nil {
		return err
	}
	c.markFlushed(w)
	c.replyOK(req)
	return nil
}

// markFlushed records that the first w writes are durable.
func (c *conn) markFlushed(w uint64) {
	for {
		old := c.flushed.Load()
		if old >= w || c.flushed.CompareAndSwap(old, w) {
			return
		}
	}
}

// durable finishes a trim or write-zeroes: FUA asks for a flush.
func (c *conn) durable(req *Request, err error) error {
	if err != nil {
		return err
	}
	if req.Flags&CmdFlagFUA != 0 {
		if err := c.dev.Flush(); err != nil {
			return err
		}
	} else {
		c.writes.Add(1)
	}
	c.s.counts.cmd(req.Type).bytes.Add(int64(req.Length))
	c.replyOK(req)
	return nil
}

func (c *conn) doBlockStatus(req *Request) error {
	off, n := int64(req.Offset), int64(req.Length)
	ext, err := blockdev.Map(c.dev, off, n)
	if err != nil {
		return err
	}
	descs := statusDescriptors(ext, off, n, req.Flags&CmdFlagReqOne != 0)
	c.replyBlockStatus(req, descs)
	return nil
}

// descriptor is one extent of a block status reply.
type descriptor struct {
	length, flags uint32
}

// maxDescriptors bounds one block status reply; the client asks again
// for the rest.
const maxDescriptors = 1 << 14

// statusDescriptors turns a device's map of [off, off+n) into block status
// descriptors: clipped to the range, neighbours with equal flags merged,
// at most one if one is set, at most maxDescriptors. A map that is not
// contiguous from off is cut at the first gap; if nothing usable is left,
// the whole range is reported allocated, which is always true enough.
func statusDescriptors(ext []blockdev.Extent, off, n int64, one bool) []descriptor {
	var out []descriptor
	pos, end := off, off+n
	for _, e := range ext {
		if e.Off > pos || e.Len <= 0 || e.Off+e.Len <= pos || pos >= end {
			break
		}
		l := min(e.Off+e.Len, end) - pos
		var f uint32
		if e.Hole {
			f |= stateHole | stateZero
		}
		if e.Zero {
			f |= stateZero
		}
		if k := len(out) - 1; k >= 0 && out[k].flags == f {
			out[k].length += uint32(l)
		} else {
			if len(out) == maxDescriptors {
				break
			}
			out = append(out, descriptor{length: uint32(l), flags: f})
		}
		pos += l
	}
	if len(out) == 0 {
		return []descriptor{{length: uint32(n)}}
	}
	if one {
		out = out[:1]
	}
	return out
}
