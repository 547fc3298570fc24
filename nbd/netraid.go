package nbd

import (
	"encoding/binary"
	"fmt"

	"github.com/netraid/netraid/blockdev"
)

// The netraid extension, between two netraid nodes (see doc.go):
//
//   - OptNetraidHello: option data is a 32-bit name length, the export
//     name, then the caller's hello bytes. The server answers with one
//     reply of type RepNetraidHello carrying ServerOptions.Hello's
//     response, or NBD_REP_ERR_POLICY with the hook's error text.
//   - CmdNetraidControl: like WRITE, Length bytes of request follow the
//     header. The successful reply is a simple reply header, a 32-bit
//     response length and the response; a failure is an ordinary error
//     reply. The first byte of a request names its operation: ctlChecksum
//     is answered by the server itself, anything else goes to
//     ServerOptions.Control.

// Control operations the server answers itself.
const (
	// ctlChecksum: 'C', 64-bit offset, 64-bit length; the response is the
	// 32-byte blockdev.Sum of that range of the export.
	ctlChecksum byte = 'C'
)

const (
	checksumRequestSize = 17
	// maxControlReply bounds the response a client accepts.
	maxControlReply = maxMaxRequest
)

func encodeChecksumRequest(off, n int64) []byte {
	b := make([]byte, checksumRequestSize)
	b[0] = ctlChecksum
	binary.BigEndian.PutUint64(b[1:], uint64(off))
	binary.BigEndian.PutUint64(b[9:], uint64(n))
	return b
}

func parseChecksumRequest(b []byte) (off, n int64, err error) {
	if len(b) != checksumRequestSize || b[0] != ctlChecksum {
		return 0, 0, fmt.Errorf("%w: checksum request of %d bytes", ErrInvalid, len(b))
	}
	off = int64(binary.BigEndian.Uint64(b[1:]))
	n = int64(binary.BigEndian.Uint64(b[9:]))
	return off, n, nil
}

// hookError carries the text of a Control hook's error. It deliberately
// does not unwrap, so errnoOf answers EIO as the control command defines.
type hookError struct{ msg string }

func (e *hookError) Error() string { return e.msg }

// doControl answers a netraid control request. Its payload is a pooled
// buffer: the Control hook must not keep it after returning.
func (c *conn) doControl(req *Request, r *inflight) error {
	p := r.payload
	if len(p) > 0 && p[0] == ctlChecksum {
		off, n, err := parseChecksumRequest(p)
		if err != nil {
			return err
		}
		sum, err := blockdev.Checksum(c.dev, off, n)
		if err != nil {
			return err
		}
		c.replyControl(req, sum[:])
		return nil
	}
	hook := c.s.opts.Control
	if hook == nil {
		return fmt.Errorf("%w: this server takes no control requests", ErrInvalid)
	}
	resp, err := hook(c.ctx, c.exp.Name, p)
	if err != nil {
		return &hookError{msg: fmt.Sprintf("control: %v", err)}
	}
	if len(resp) > int(c.sess.maxRequest) {
		return &hookError{msg: fmt.Sprintf("control: response of %d bytes, limit %d", len(resp), c.sess.maxRequest)}
	}
	c.replyControl(req, resp)
	return nil
}
