package nbd

import (
	"crypto/sha256"
	"fmt"

	"github.com/netraid/netraid/blockdev"
)

// This file is the Client's blockdev.Device side. Every method checks the
// request locally (closed or broken client, range, the server's minimum
// block size, read-only export) before anything goes on the wire, and
// splits it into requests the server takes.

// usable fails once the client takes no more requests.
func (c *Client) usable(op string) error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("nbd: %s: %w", op, err)
	}
	return nil
}

// check validates a range against the export.
func (c *Client) check(op string, off, n int64) error {
	if err := c.usable(op); err != nil {
		return err
	}
	if err := blockdev.CheckRange(c.size, off, n); err != nil {
		return fmt.Errorf("nbd: %s: %w", op, err)
	}
	if m := int64(c.sizes.min); m > 1 && (off%m != 0 || n%m != 0) {
		return fmt.Errorf("nbd: %s off %d len %d: %w: the export takes multiples of %d",
			op, off, n, blockdev.ErrUnaligned, m)
	}
	return nil
}

// checkWrite also refuses writes to a read-only export.
func (c *Client) checkWrite(op string, off, n int64) error {
	if err := c.check(op, off, n); err != nil {
		return err
	}
	if c.flags&FlagReadOnly != 0 {
		return fmt.Errorf("nbd: %s off %d len %d: %w", op, off, n, blockdev.ErrReadOnly)
	}
	return nil
}

// maxPiece is the largest READ, WRITE or WRITE_ZEROES request.
func (c *Client) maxPiece() int64 {
	if c.sizes.max == 0xffffffff {
		return defaultMaxBlock
	}
	return int64(c.sizes.max)
}

func (c *Client) ReadAt(p []byte, off int64) (int, error) {
	if err := c.check("read", off, int64(len(p))); err != nil || len(p) == 0 {
		return 0, err
	}
	if err := c.split(CmdRead, 0, off, int64(len(p)), c.maxPiece(), p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *Client) WriteAt(p []byte, off int64) (int, error) {
	return c.write("write", p, off, 0)
}

// WriteAtFUA writes p with NBD_CMD_FLAG_FUA, or as a write and a flush if
// the server does not take FUA.
func (c *Client) WriteAtFUA(p []byte, off int64) (int, error) {
	if c.flags&FlagSendFUA != 0 {
		return c.write("write fua", p, off, CmdFlagFUA)
	}
	n, err := c.write("write fua", p, off, 0)
	if err != nil {
		return n, err
	}
	return n, c.Flush()
}

func (c *Client) write(op string, p []byte, off int64, flags CommandFlags) (int, error) {
	if err := c.checkWrite(op, off, int64(len(p))); err != nil || len(p) == 0 {
		return 0, err
	}
	if err := c.split(CmdWrite, flags, off, int64(len(p)), c.maxPiece(), p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush makes every completed write durable on the server (for writes on
// any connection, as CAN_MULTI_CONN says). A server that does not take
// NBD_CMD_FLUSH has no cache to flush. Concurrent flushes share their
// requests (blockdev.FlushGroup): each is answered by a FLUSH sent after
// it was called, and a burst of them costs two round trips, not one each.
func (c *Client) Flush() error {
	if err := c.usable("flush"); err != nil || c.flags&FlagSendFlush == 0 {
		return err
	}
	return c.flushes.Do(c.flush)
}

func (c *Client) flush() error { return c.do(newCall(CmdFlush, 0, 0, 0), nil) }

// Trim discards a range; a no-op if the server does not take trims.
func (c *Client) Trim(off, n int64) error {
	if err := c.checkWrite("trim", off, n); err != nil || n == 0 || c.flags&FlagSendTrim == 0 {
		return err
	}
	return c.split(CmdTrim, 0, off, n, bigPiece, nil)
}

// WriteZeroes zeroes a range with NBD_CMD_WRITE_ZEROES (NO_HOLE unless
// mayTrim), or by writing zeroes if the server does not take it.
func (c *Client) WriteZeroes(off, n int64, mayTrim bool) error {
	if err := c.checkWrite("write zeroes", off, n); err != nil || n == 0 {
		return err
	}
	if c.flags&FlagSendWriteZeroes == 0 {
		zero := blockdev.Zeroes(int(min(n, 1<<20)))
		for n > 0 {
			m := min(n, int64(len(zero)))
			if _, err := c.WriteAt(zero[:m], off); err != nil {
				return err
			}
			off, n = off+m, n-m
		}
		return nil
	}
	var flags CommandFlags
	if !mayTrim {
		flags = CmdFlagNoHole
	}
	return c.split(CmdWriteZeroes, flags, off, n, c.maxPiece(), nil)
}

// Map asks the server's base:allocation context; without one, the whole
// range is reported allocated.
func (c *Client) Map(off, n int64) ([]blockdev.Extent, error) {
	if err := c.check("map", off, n); err != nil || n == 0 {
		return nil, err
	}
	if !c.hasMeta {
		return []blockdev.Extent{{Off: off, Len: n}}, nil
	}
	var out []blockdev.Extent
	for pos, end := off, off+n; pos < end; {
		cl := newCall(CmdBlockStatus, 0, pos, min(end-pos, bigPiece))
		if err := c.do(cl, nil); err != nil {
			return nil, err
		}
		for _, d := range cl.descs {
			l := min(int64(d.length), end-pos)
			if l <= 0 {
				break
			}
			out = appendExtent(out, extentOf(pos, l, d.flags))
			pos += l
		}
	}
	return out, nil
}

// extentOf converts a base:allocation status. A hole that may not read as
// zeroes is reported as allocated data: a blockdev hole always reads
// zeroes.
func extentOf(off, n int64, flags uint32) blockdev.Extent {
	zero := flags&stateZero != 0
	return blockdev.Extent{Off: off, Len: n, Hole: zero && flags&stateHole != 0, Zero: zero}
}

// appendExtent appends e, merging it into the last extent if they match.
func appendExtent(l []blockdev.Extent, e blockdev.Extent) []blockdev.Extent {
	if k := len(l) - 1; k >= 0 && l[k].Hole == e.Hole && l[k].Zero == e.Zero && l[k].Off+l[k].Len == e.Off {
		l[k].Len += e.Len
		return l
	}
	return append(l, e)
}

// Checksum has the server hash the range where the data is, if the
// netraid hello was done; otherwise it reads the range. The server hashes
// the whole range within one request's Timeout, so callers verify large
// devices in pieces of a few MiB.
func (c *Client) Checksum(off, n int64) (blockdev.Sum, error) {
	if err := c.usable("checksum"); err != nil {
		return blockdev.Sum{}, err
	}
	if err := blockdev.CheckRange(c.size, off, n); err != nil {
		return blockdev.Sum{}, fmt.Errorf("nbd: checksum: %w", err)
	}
	if !c.hello {
		return c.readChecksum(off, n)
	}
	cl := newCall(CmdNetraidControl, 0, 0, checksumRequestSize)
	if err := c.do(cl, encodeChecksumRequest(off, n)); err != nil {
		return blockdev.Sum{}, err
	}
	var s blockdev.Sum
	if len(cl.resp) != len(s) {
		return s, fmt.Errorf("%w: checksum reply of %d bytes", ErrProtocol, len(cl.resp))
	}
	copy(s[:], cl.resp)
	return s, nil
}

// readChecksum hashes a range read through the client. Reads are widened
// to the server's minimum block size.
func (c *Client) readChecksum(off, n int64) (blockdev.Sum, error) {
	const chunk = 1 << 20
	m := int64(c.sizes.min)
	h := sha256.New()
	start, end := off/m*m, (off+n+m-1)/m*m
	buf := blockdev.GetBuffer(int(min(end-start, chunk)), 4096)
	defer blockdev.PutBuffer(buf)
	for pos := start; pos < end; {
		k := min(end-pos, chunk)
		if _, err := c.ReadAt(buf[:k], pos); err != nil {
			return blockdev.Sum{}, err
		}
		lo, hi := max(off, pos), min(off+n, pos+k)
		if lo < hi {
			h.Write(buf[lo-pos : hi-pos])
		}
		pos += k
	}
	var s blockdev.Sum
	h.Sum(s[:0])
	return s, nil
}

// Control sends a netraid control request to the server's
// ServerOptions.Control hook and returns its response. Requests starting
// with 'C' are reserved for the server's own operations.
func (c *Client) Control(req []byte) ([]byte, error) {
	if err := c.usable("control"); err != nil {
		return nil, err
	}
	switch {
	case !c.hello:
		return nil, ErrNoHello
	case len(req) > 0 && req[0] == ctlChecksum:
		return nil, fmt.Errorf("%w: control requests starting with %q are reserved", ErrInvalid, ctlChecksum)
	case int64(len(req)) > c.maxPiece():
		return nil, fmt.Errorf("%w: control request of %d bytes, limit %d", ErrTooLarge, len(req), c.maxPiece())
	}
	cl := newCall(CmdNetraidControl, 0, 0, int64(len(req)))
	if err := c.do(cl, req); err != nil {
		return nil, err
	}
	return cl.resp, nil
}
