package nbd

import (
	"encoding/binary"
	"log/slog"
)

// This file writes transmission replies: simple replies, or structured
// reply chunks once NBD_OPT_STRUCTURED_REPLY was negotiated. Every reply is
// one call to send, so replies of concurrent requests never interleave.

// replyOK answers a request that carries no data. A simple reply is valid
// for any command but READ even with structured replies.
func (c *conn) replyOK(req *Request) {
	var h [simpleReplySize]byte
	putSimpleReply(h[:], 0, req.Handle)
	c.send(h[:], nil)
}

// replyData answers a READ. With structured replies the data goes in one
// OFFSET_DATA chunk (so NBD_CMD_FLAG_DF always holds) marked final: it was
// read whole before the header goes out, so no error can follow.
func (c *conn) replyData(req *Request, data []byte) {
	if !c.structured {
		var h [simpleReplySize]byte
		putSimpleReply(h[:], 0, req.Handle)
		c.send(h[:], data)
		return
	}
	if len(data) == 0 {
		var h [chunkHeaderSize]byte
		putChunkHeader(h[:], replyFlagDone, chunkNone, req.Handle, 0)
		c.send(h[:], nil)
		return
	}
	var h [chunkHeaderSize + 8]byte
	putChunkHeader(h[:], replyFlagDone, chunkOffsetData, req.Handle, uint32(8+len(data)))
	binary.BigEndian.PutUint64(h[chunkHeaderSize:], req.Offset)
	c.send(h[:], data)
}

// replyBlockStatus answers a BLOCK_STATUS for the base:allocation context.
func (c *conn) replyBlockStatus(req *Request, descs []descriptor) {
	b := make([]byte, chunkHeaderSize+4+8*len(descs))
	putChunkHeader(b, replyFlagDone, chunkBlockStatus, req.Handle, uint32(4+8*len(descs)))
	p := b[chunkHeaderSize:]
	binary.BigEndian.PutUint32(p, metaAllocationID)
	for i, d := range descs {
		binary.BigEndian.PutUint32(p[4+8*i:], d.length)
		binary.BigEndian.PutUint32(p[8+8*i:], d.flags)
	}
	c.send(b, nil)
}

// replyControl answers a netraid control request: a simple reply header,
// then the 32-bit length of the response and the response.
func (c *conn) replyControl(req *Request, resp []byte) {
	var h [simpleReplySize + 4]byte
	putSimpleReply(h[:], 0, req.Handle)
	binary.BigEndian.PutUint32(h[simpleReplySize:], uint32(len(resp)))
	c.send(h[:], resp)
}

// replyError answers a request with the error value errnoOf gives err,
// and with err's text in an NBD_REPLY_TYPE_ERROR chunk when structured
// replies are on.
func (c *conn) replyError(req *Request, err error) {
	errno := errnoOf(err)
	c.s.errors.Add(1)
	c.s.counts.errno(errno).Add(1)
	if c.log.Enabled(c.ctx, slog.LevelDebug) {
		c.log.Debug("error reply", "op", req.Type, "off", req.Offset, "len", req.Length, "errno", errno, "err", err)
	}
	if !c.structured {
		var h [simpleReplySize]byte
		putSimpleReply(h[:], errno, req.Handle)
		c.send(h[:], nil)
		return
	}
	msg := errorMessage(err)
	b := make([]byte, chunkHeaderSize+chunkErrorMinSize+len(msg))
	putChunkHeader(b, replyFlagDone, chunkError, req.Handle, uint32(chunkErrorMinSize+len(msg)))
	binary.BigEndian.PutUint32(b[chunkHeaderSize:], uint32(errno))
	binary.BigEndian.PutUint16(b[chunkHeaderSize+4:], uint16(len(msg)))
	copy(b[chunkHeaderSize+chunkErrorMinSize:], msg)
	c.send(b, nil)
}
