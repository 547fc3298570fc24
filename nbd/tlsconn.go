package nbd

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
)

// This file makes a TLS session cheap on the data path. crypto/tls seals
// each record (at most 16 KiB of data) and hands it to the connection
// below with a Write of its own, and reads that connection about a record
// at a time: a 1 MiB request costs 64 write(2) calls, 64 wake-ups of the
// reader on the other side and 64 read(2) calls there. bufferedConn,
// under the tls.Conn, gathers the records of one message and sends them
// with a few large writes, and reads ahead; tlsSession, over it, sends a
// message in as few records as its size allows.

// The buffer sizes: one system call moves 32 records, and a 1 MiB
// message still goes out in parts, so that on two cores the receiver
// opens the first while the sender seals the next (measured with
// BenchmarkStream: 256 KiB and 1 MiB cost more CPU per byte).
const (
	// maxRecordData is the most data one TLS record carries.
	maxRecordData = 16 << 10
	// tlsReadAhead is the most one read(2) of a TLS connection brings.
	tlsReadAhead = 512 << 10
	// tlsWriteBuffer is how many sealed bytes a message gathers before
	// they go out; a larger message takes several writes.
	tlsWriteBuffer = 512 << 10
)

// corkBuffers are the buffers of corked bufferedConns, and readBuffers
// those of bufferedConns reading ahead: a connection holds one only while
// it sends a message, or while a burst of records comes in.
var (
	corkBuffers = sync.Pool{New: func() any {
		b := make([]byte, 0, tlsWriteBuffer)
		return &b
	}}
	readBuffers = sync.Pool{New: func() any { return new([tlsReadAhead]byte) }}
)

// bufferedConn is the connection a TLS session runs on.
//
// Between cork and flush, writes gather in a buffer; otherwise they go
// straight out. The first write that fails breaks it: every later write
// and flush fails with that error, as a tls.Conn does, since the peer may
// have part of a record.
//
// Reads go straight into the caller's buffer until one fills it: the peer
// is sending more than a record, and reads then go through a read-ahead
// buffer, one read(2) for many records, until a read finds less than the
// buffer holds. An idle connection holds no buffer.
//
// Deadlines and Close are those of the connection below.
type bufferedConn struct {
	net.Conn

	// The reader's state: one reader at a time (the tls.Conn's input lock).
	ahead     *[tlsReadAhead]byte // from readBuffers; nil if not reading ahead
	rbuf      []byte              // what ahead holds, not yet read
	rerr      error               // the error of the read that filled ahead
	streaming bool                // the last read filled the buffer it had

	// mu guards the fields below. It is held while writing to Conn, so
	// that records leave in the order they were sealed even when a record
	// written outside a message (an alert, a key update) races a flush.
	mu     sync.Mutex
	corked bool
	buf    *[]byte // sealed records not yet sent; from corkBuffers while corked
	err    error   // the first failed write
}

func newBufferedConn(nc net.Conn) *bufferedConn { return &bufferedConn{Conn: nc} }

func (b *bufferedConn) Read(p []byte) (int, error) {
	if len(b.rbuf) == 0 {
		if err := b.refill(len(p)); err != nil {
			return 0, err
		}
	}
	if len(b.rbuf) == 0 {
		n, err := b.Conn.Read(p)
		b.streaming = n > 0 && n == len(p) && err == nil
		return n, err
	}
	n := copy(p, b.rbuf)
	b.rbuf = b.rbuf[n:]
	return n, nil
}

// refill gives back the empty read-ahead buffer and, if the peer is
// streaming and the reader asks for less than a buffer, fills one with a
// single read. It returns the error of the read that filled the buffer
// last, once that buffer is read.
func (b *bufferedConn) refill(want int) error {
	if b.ahead != nil {
		readBuffers.Put(b.ahead)
		b.ahead = nil
	}
	if err := b.rerr; err != nil {
		b.rerr = nil
		return err
	}
	if !b.streaming || want >= tlsReadAhead {
		return nil
	}
	b.ahead = readBuffers.Get().(*[tlsReadAhead]byte)
	n, err := b.Conn.Read(b.ahead[:])
	b.rbuf, b.rerr, b.streaming = b.ahead[:n], err, n == len(b.ahead)
	if n == 0 {
		return b.refill(want)
	}
	return nil
}

// Write sends p, or keeps it for flush while corked.
func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.corked {
		return b.send(p)
	}
	if len(*b.buf)+len(p) > cap(*b.buf) {
		if err := b.sendBuffered(); err != nil {
			return 0, err
		}
		if len(p) > cap(*b.buf) {
			return b.send(p)
		}
	}
	*b.buf = append(*b.buf, p...)
	return len(p), nil
}

// cork holds the writes that follow until flush. The caller pairs cork
// and flush under its own write lock.
func (b *bufferedConn) cork() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.corked = true
	b.buf = corkBuffers.Get().(*[]byte)
}

// flush sends what was written since cork, and ends the cork. An error
// means the stream is broken: the connection must be given up, as after
// a failed write.
func (b *bufferedConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.corked {
		return b.err
	}
	err := b.sendBuffered()
	*b.buf = (*b.buf)[:0]
	corkBuffers.Put(b.buf)
	b.buf, b.corked = nil, false
	return err
}

// sendBuffered writes out the buffer. Called with mu held.
func (b *bufferedConn) sendBuffered() error {
	if b.err != nil {
		return b.err
	}
	p := *b.buf
	*b.buf = p[:0]
	if len(p) == 0 {
		return nil
	}
	_, err := b.send(p)
	return err
}

// send writes p to the connection. Called with mu held.
func (b *bufferedConn) send(p []byte) (int, error) {
	n, err := b.Conn.Write(p)
	if err != nil {
		b.err = err
	}
	return n, err
}

// tlsSession is a TLS session over a bufferedConn.
type tlsSession struct {
	*tls.Conn
	bc *bufferedConn
}

// newTLSSession starts the TLS session of nc, a server's or a client's by
// newTLS (tls.Server or tls.Client); the handshake is left to the caller.
func newTLSSession(nc net.Conn, newTLS func(net.Conn, *tls.Config) *tls.Conn, cfg *tls.Config) *tlsSession {
	bc := newBufferedConn(nc)
	return &tlsSession{Conn: newTLS(bc, cfg), bc: bc}
}

// recordBuffers hold a head and the start of a body, sealed together.
var recordBuffers = sync.Pool{New: func() any { return new([maxRecordData]byte) }}

// writeMessage sends head and body as one message. A message that fits
// in a record is one record; a longer one starts with head and as much
// of body as leaves the rest in full records, and its records go out
// together at flush.
func (s *tlsSession) writeMessage(head, body []byte) error {
	if len(head)+len(body) <= maxRecordData {
		return s.writeJoined(head, body)
	}
	s.bc.cork()
	err := s.sealMessage(head, body)
	if ferr := s.bc.flush(); err == nil {
		err = ferr
	}
	return err
}

// writeMessages sends a batch of messages, each sealed as writeMessage
// seals it, all under one cork: they leave in a few large writes.
func (s *tlsSession) writeMessages(batch []*queuedMsg) error {
	if len(batch) == 1 {
		return s.writeMessage(batch[0].head, batch[0].data)
	}
	s.bc.cork()
	var err error
	for _, q := range batch {
		if err = s.sealMessage(q.head, q.data); err != nil {
			break
		}
	}
	if ferr := s.bc.flush(); err == nil {
		err = ferr
	}
	return err
}

// sealMessage writes one message's records (see writeMessage); the caller
// corks and flushes.
func (s *tlsSession) sealMessage(head, body []byte) error {
	if len(head)+len(body) <= maxRecordData {
		return s.writeJoined(head, body)
	}
	k := len(body) % maxRecordData
	if len(head)+k > maxRecordData {
		k = 0
	}
	if err := s.writeJoined(head, body[:k]); err != nil {
		return err
	}
	_, err := s.Write(body[k:])
	return err
}

// writeJoined writes a and b with one call to Write.
func (s *tlsSession) writeJoined(a, b []byte) error {
	var err error
	switch {
	case len(a) == 0 && len(b) == 0:
	case len(b) == 0:
		_, err = s.Write(a)
	case len(a) == 0:
		_, err = s.Write(b)
	default:
		r := recordBuffers.Get().(*[maxRecordData]byte)
		n := copy(r[:], a)
		n += copy(r[n:], b)
		_, err = s.Write(r[:n])
		recordBuffers.Put(r)
	}
	return err
}

// writeMessage writes one message (an option, a request or a reply: a
// header and its data) whole, with as few system calls as the connection
// allows, and on TLS as few records.
func writeMessage(w io.Writer, head, body []byte) error {
	if s, ok := w.(*tlsSession); ok {
		return s.writeMessage(head, body)
	}
	_, err := writeBuffers(w, [][]byte{head, body})
	return err
}
