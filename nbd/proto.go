package nbd

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// Magic numbers of the fixed newstyle protocol.
const (
	magicNBD         uint64 = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt         uint64 = 0x49484156454f5054 // "IHAVEOPT"
	magicOldstyle    uint64 = 0x0000420281861253
	magicOptReply    uint64 = 0x0003e889045565a9
	magicRequest     uint32 = 0x25609513
	magicSimpleReply uint32 = 0x67446698
	magicChunkReply  uint32 = 0x668e33ef
)

// Handshake flags (server) and client flags.
const (
	flagFixedNewstyle   uint16 = 1 << 0
	flagNoZeroes        uint16 = 1 << 1
	clientFixedNewstyle uint32 = 1 << 0
	clientNoZeroes      uint32 = 1 << 1
	clientKnownFlags           = clientFixedNewstyle | clientNoZeroes
)

// Wire sizes.
const (
	requestSize        = 28 // magic, flags, type, handle, offset, length
	simpleReplySize    = 16 // magic, error, handle
	chunkHeaderSize    = 20 // magic, flags, type, handle, length
	optHeaderSize      = 16 // magic, option, length
	optReplyHeaderSize = 20 // magic, option, reply type, length
	exportNameZeroes   = 124
	// maxString is the protocol's limit on names and messages.
	maxString = 4096
	// maxOptionLen bounds the data of one option the server reads, and of
	// one option reply the client reads.
	maxOptionLen = 64 << 10
)

// TransmissionFlags describe an export to the client.
type TransmissionFlags uint16

// Transmission flags.
const (
	FlagHasFlags        TransmissionFlags = 1 << 0
	FlagReadOnly        TransmissionFlags = 1 << 1
	FlagSendFlush       TransmissionFlags = 1 << 2
	FlagSendFUA         TransmissionFlags = 1 << 3
	FlagRotational      TransmissionFlags = 1 << 4
	FlagSendTrim        TransmissionFlags = 1 << 5
	FlagSendWriteZeroes TransmissionFlags = 1 << 6
	FlagSendDF          TransmissionFlags = 1 << 7
	FlagCanMultiConn    TransmissionFlags = 1 << 8
	FlagSendResize      TransmissionFlags = 1 << 9
	FlagSendCache       TransmissionFlags = 1 << 10
	FlagSendFastZero    TransmissionFlags = 1 << 11
)

// Option is an option of the handshake phase.
type Option uint32

// Options. OptNetraidHello is netraid's own: see the package documentation.
const (
	OptExportName      Option = 1
	OptAbort           Option = 2
	OptList            Option = 3
	OptStartTLS        Option = 5
	OptInfo            Option = 6
	OptGo              Option = 7
	OptStructuredReply Option = 8
	OptListMetaContext Option = 9
	OptSetMetaContext  Option = 10
	OptNetraidHello    Option = 0x4e520001
	OptNetraidAuth     Option = 0x4e520002
)

// Reply is the type of an option reply.
type Reply uint32

// Option reply types. Error replies have bit 31 set.
const (
	RepAck              Reply = 1
	RepServer           Reply = 2
	RepInfo             Reply = 3
	RepMetaContext      Reply = 4
	RepNetraidHello     Reply = 0x4e52
	RepNetraidAuth      Reply = 0x4e53
	repErr              Reply = 1 << 31
	RepErrUnsup               = repErr + 1
	RepErrPolicy              = repErr + 2
	RepErrInvalid             = repErr + 3
	RepErrPlatform            = repErr + 4
	RepErrTLSReqd             = repErr + 5
	RepErrUnknown             = repErr + 6
	RepErrShutdown            = repErr + 7
	RepErrBlockSizeReqd       = repErr + 8
	RepErrTooBig              = repErr + 9
	// RepErrNetraidRefused refuses OptNetraidHello with data for the
	// client: a 32-bit message length, the message, the data.
	RepErrNetraidRefused = repErr + 0x4e52
)

// IsError reports whether r is an error reply.
func (r Reply) IsError() bool { return r&repErr != 0 }

// InfoType is the type of an NBD_REP_INFO reply.
type InfoType uint16

// Information types of NBD_OPT_INFO and NBD_OPT_GO.
const (
	InfoExport      InfoType = 0
	InfoName        InfoType = 1
	InfoDescription InfoType = 2
	InfoBlockSize   InfoType = 3
)

// Command is the type of a transmission request.
type Command uint16

// Commands. CmdNetraidControl is netraid's own: see the package
// documentation.
const (
	CmdRead           Command = 0
	CmdWrite          Command = 1
	CmdDisc           Command = 2
	CmdFlush          Command = 3
	CmdTrim           Command = 4
	CmdCache          Command = 5
	CmdWriteZeroes    Command = 6
	CmdBlockStatus    Command = 7
	CmdNetraidControl Command = 0x4e01
)

// CommandFlags modify a request.
type CommandFlags uint16

// Command flags.
const (
	CmdFlagFUA      CommandFlags = 1 << 0
	CmdFlagNoHole   CommandFlags = 1 << 1
	CmdFlagDF       CommandFlags = 1 << 2
	CmdFlagReqOne   CommandFlags = 1 << 3
	CmdFlagFastZero CommandFlags = 1 << 4
)

// Structured reply chunk flags and types. Error chunk types have bit 15 set.
const (
	replyFlagDone     uint16 = 1 << 0
	chunkNone         uint16 = 0
	chunkOffsetData   uint16 = 1
	chunkOffsetHole   uint16 = 2
	chunkBlockStatus  uint16 = 5
	chunkErrBit       uint16 = 1 << 15
	chunkError               = chunkErrBit + 1
	chunkErrorOffset         = chunkErrBit + 2
	chunkErrorMinSize        = 6 // errno, message length
)

// The base:allocation metadata context.
const (
	metaBaseAllocation = "base:allocation"
	metaBaseNamespace  = "base:"
	// metaAllocationID is the context ID the server assigns it.
	metaAllocationID uint32 = 1
	stateHole        uint32 = 1 << 0
	stateZero        uint32 = 1 << 1
)

// Errno is an error value of a transmission reply.
type Errno uint32

// Error values the protocol defines.
const (
	EPERM     Errno = 1
	EIO       Errno = 5
	ENOMEM    Errno = 12
	EINVAL    Errno = 22
	ENOSPC    Errno = 28
	EOVERFLOW Errno = 75
	ENOTSUP   Errno = 95
	ESHUTDOWN Errno = 108
)

var errnoNames = map[Errno]string{
	EPERM: "EPERM", EIO: "EIO", ENOMEM: "ENOMEM", EINVAL: "EINVAL",
	ENOSPC: "ENOSPC", EOVERFLOW: "EOVERFLOW", ENOTSUP: "ENOTSUP", ESHUTDOWN: "ESHUTDOWN",
}

func (e Errno) String() string {
	if s, ok := errnoNames[e]; ok {
		return s
	}
	return fmt.Sprintf("errno %d", uint32(e))
}

var commandNames = map[Command]string{
	CmdRead: "read", CmdWrite: "write", CmdDisc: "disc", CmdFlush: "flush",
	CmdTrim: "trim", CmdCache: "cache", CmdWriteZeroes: "write-zeroes",
	CmdBlockStatus: "block-status", CmdNetraidControl: "netraid-control",
}

func (c Command) String() string {
	if s, ok := commandNames[c]; ok {
		return s
	}
	return fmt.Sprintf("command %#x", uint16(c))
}

var optionNames = map[Option]string{
	OptExportName: "export-name", OptAbort: "abort", OptList: "list",
	OptStartTLS: "starttls", OptInfo: "info", OptGo: "go",
	OptStructuredReply: "structured-reply", OptListMetaContext: "list-meta-context",
	OptSetMetaContext: "set-meta-context", OptNetraidHello: "netraid-hello", OptNetraidAuth: "netraid-auth",
}

func (o Option) String() string {
	if s, ok := optionNames[o]; ok {
		return s
	}
	return fmt.Sprintf("option %#x", uint32(o))
}

var replyNames = map[Reply]string{
	RepAck: "ack", RepServer: "server", RepInfo: "info", RepMetaContext: "meta-context",
	RepNetraidHello: "netraid-hello", RepNetraidAuth: "netraid-auth", RepErrUnsup: "unsupported", RepErrPolicy: "policy",
	RepErrInvalid: "invalid", RepErrPlatform: "platform", RepErrTLSReqd: "tls required",
	RepErrUnknown: "unknown export", RepErrShutdown: "shutting down",
	RepErrBlockSizeReqd: "block size required", RepErrTooBig: "too big",
	RepErrNetraidRefused: "netraid-refused",
}

func (r Reply) String() string {
	if s, ok := replyNames[r]; ok {
		return s
	}
	return fmt.Sprintf("reply %#x", uint32(r))
}

// Request is a transmission request header.
type Request struct {
	Flags  CommandFlags
	Type   Command
	Handle uint64
	Offset uint64
	Length uint32
}

// hasPayload reports whether Length bytes of data follow the header.
func (r *Request) hasPayload() bool {
	return r.Type == CmdWrite || r.Type == CmdNetraidControl
}

// end returns Offset+Length without overflow, and false if it would pass
// 2^63.
func (r *Request) end() (int64, bool) {
	const maxOff = 1<<63 - 1
	if r.Offset > maxOff-uint64(r.Length) {
		return 0, false
	}
	return int64(r.Offset) + int64(r.Length), true
}

// encode writes the header into b[:requestSize].
func (r *Request) encode(b []byte) {
	_ = b[requestSize-1]
	binary.BigEndian.PutUint32(b[0:], magicRequest)
	binary.BigEndian.PutUint16(b[4:], uint16(r.Flags))
	binary.BigEndian.PutUint16(b[6:], uint16(r.Type))
	binary.BigEndian.PutUint64(b[8:], r.Handle)
	binary.BigEndian.PutUint64(b[16:], r.Offset)
	binary.BigEndian.PutUint32(b[24:], r.Length)
}

// decodeRequest parses a request header. A bad magic number is a
// protocol error: the stream cannot be resynchronised.
func decodeRequest(b []byte) (Request, error) {
	if len(b) < requestSize {
		return Request{}, fmt.Errorf("%w: short request header (%d bytes)", ErrProtocol, len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != magicRequest {
		return Request{}, fmt.Errorf("%w: bad request magic %#08x", ErrProtocol, m)
	}
	return Request{
		Flags:  CommandFlags(binary.BigEndian.Uint16(b[4:])),
		Type:   Command(binary.BigEndian.Uint16(b[6:])),
		Handle: binary.BigEndian.Uint64(b[8:]),
		Offset: binary.BigEndian.Uint64(b[16:]),
		Length: binary.BigEndian.Uint32(b[24:]),
	}, nil
}

// requestReader decodes the stream of requests a client sends.
type requestReader struct {
	r   io.Reader
	hdr [requestSize]byte
}

// next reads and decodes one request header. It returns io.EOF only if the
// stream ended cleanly between requests.
func (rr *requestReader) next() (Request, error) {
	if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
		return Request{}, err
	}
	return decodeRequest(rr.hdr[:])
}

// payload reads a request's data into p. A stream that ends early yields
// io.ErrUnexpectedEOF.
func (rr *requestReader) payload(p []byte) error {
	_, err := io.ReadFull(rr.r, p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// discard skips n bytes of payload without buffering them.
func (rr *requestReader) discard(n int64) error {
	m, err := io.CopyN(io.Discard, rr.r, n)
	if err == io.EOF || (err == nil && m < n) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// putSimpleReply writes a simple reply header into b[:simpleReplySize].
func putSimpleReply(b []byte, errno Errno, handle uint64) {
	_ = b[simpleReplySize-1]
	binary.BigEndian.PutUint32(b[0:], magicSimpleReply)
	binary.BigEndian.PutUint32(b[4:], uint32(errno))
	binary.BigEndian.PutUint64(b[8:], handle)
}

// putChunkHeader writes a structured reply chunk header into
// b[:chunkHeaderSize].
func putChunkHeader(b []byte, flags, typ uint16, handle uint64, length uint32) {
	_ = b[chunkHeaderSize-1]
	binary.BigEndian.PutUint32(b[0:], magicChunkReply)
	binary.BigEndian.PutUint16(b[4:], flags)
	binary.BigEndian.PutUint16(b[6:], typ)
	binary.BigEndian.PutUint64(b[8:], handle)
	binary.BigEndian.PutUint32(b[16:], length)
}

// putOptHeader writes an option header into b[:optHeaderSize].
func putOptHeader(b []byte, opt Option, length uint32) {
	_ = b[optHeaderSize-1]
	binary.BigEndian.PutUint64(b[0:], magicOpt)
	binary.BigEndian.PutUint32(b[8:], uint32(opt))
	binary.BigEndian.PutUint32(b[12:], length)
}

// putOptReplyHeader writes an option reply header into
// b[:optReplyHeaderSize].
func putOptReplyHeader(b []byte, opt Option, typ Reply, length uint32) {
	_ = b[optReplyHeaderSize-1]
	binary.BigEndian.PutUint64(b[0:], magicOptReply)
	binary.BigEndian.PutUint32(b[8:], uint32(opt))
	binary.BigEndian.PutUint32(b[12:], uint32(typ))
	binary.BigEndian.PutUint32(b[16:], length)
}

// writeBuffers writes bufs in order with as few system calls as the
// connection allows (writev on TCP and unix sockets). Empty buffers are
// dropped: on some connections (net.Pipe) an empty write waits for a read.
func writeBuffers(w io.Writer, bufs [][]byte) (int64, error) {
	nb := make(net.Buffers, 0, len(bufs))
	for _, b := range bufs {
		if len(b) > 0 {
			nb = append(nb, b)
		}
	}
	return writeVec(w, nb)
}

// vecWriter is a connection with a writev of its own (sockConn).
type vecWriter interface {
	writeVec(bufs net.Buffers) (int64, error)
}

// writeVec writes bufs to w with writev where w has one, and consumes
// bufs as net.Buffers.WriteTo does.
func writeVec(w io.Writer, bufs net.Buffers) (int64, error) {
	if v, ok := w.(vecWriter); ok {
		return v.writeVec(bufs)
	}
	return bufs.WriteTo(w)
}
