package nbd

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file encodes and parses the data of options and option replies.
// Parsers return errors wrapping ErrProtocol; the server answers them with
// NBD_REP_ERR_INVALID.

// checkString enforces the protocol's rules for names and messages.
func checkString(what, s string) error {
	switch {
	case len(s) > maxString:
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrProtocol, what, len(s), maxString)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not UTF-8", ErrProtocol, what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s contains NUL", ErrProtocol, what)
	}
	return nil
}

// optReader consumes an option's data front to back.
type optReader struct {
	b   []byte
	err error
}

func (r *optReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: option data too short for %s", ErrProtocol, what)
	}
}

func (r *optReader) u16(what string) uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *optReader) u32(what string) uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

// str reads a string of n bytes.
func (r *optReader) str(what string, n uint32) string {
	if r.err != nil || uint64(len(r.b)) < uint64(n) {
		r.fail(what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	if err := checkString(what, s); err != nil && r.err == nil {
		r.err = err
	}
	return s
}

// string reads a 32-bit length and that many bytes (appendString).
func (r *optReader) string(what string) string { return r.str(what, r.u32(what+" length")) }

// done fails if data is left over.
func (r *optReader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d bytes of trailing option data", ErrProtocol, len(r.b))
	}
	return r.err
}

// infoRequest is the data of NBD_OPT_INFO and NBD_OPT_GO.
type infoRequest struct {
	name  string
	infos []InfoType
}

func (q *infoRequest) encode() []byte {
	b := appendString(nil, q.name)
	b = binary.BigEndian.AppendUint16(b, uint16(len(q.infos)))
	for _, t := range q.infos {
		b = binary.BigEndian.AppendUint16(b, uint16(t))
	}
	return b
}

func parseInfoRequest(b []byte) (infoRequest, error) {
	r := optReader{b: b}
	var q infoRequest
	q.name = r.string("export name")
	n := r.u16("information request count")
	for range n {
		t := InfoType(r.u16("information request"))
		if r.err == nil {
			q.infos = append(q.infos, t)
		}
	}
	return q, r.done()
}

// wants reports whether the client asked for information type t.
func (q *infoRequest) wants(t InfoType) bool {
	for _, x := range q.infos {
		if x == t {
			return true
		}
	}
	return false
}

// maxMetaQueries bounds the queries of one meta context option.
const maxMetaQueries = 64

// metaRequest is the data of NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT.
type metaRequest struct {
	name    string
	queries []string
}

func (q *metaRequest) encode() []byte {
	b := appendString(nil, q.name)
	b = binary.BigEndian.AppendUint32(b, uint32(len(q.queries)))
	for _, s := range q.queries {
		b = appendString(b, s)
	}
	return b
}

// parseMetaRequest parses a meta context option. Too many queries is
// errTooManyQueries, which the server answers with NBD_REP_ERR_TOO_BIG.
func parseMetaRequest(b []byte) (metaRequest, error) {
	r := optReader{b: b}
	var q metaRequest
	q.name = r.string("export name")
	n := r.u32("query count")
	if r.err == nil && n > maxMetaQueries {
		return q, fmt.Errorf("%w: %d queries, limit %d", errTooManyQueries, n, maxMetaQueries)
	}
	for range n {
		s := r.string("query")
		if r.err == nil {
			q.queries = append(q.queries, s)
		}
	}
	return q, r.done()
}

// encodeInfoExport is the payload of an NBD_INFO_EXPORT reply.
func encodeInfoExport(size uint64, flags TransmissionFlags) []byte {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 12), uint16(InfoExport))
	b = binary.BigEndian.AppendUint64(b, size)
	return binary.BigEndian.AppendUint16(b, uint16(flags))
}

// encodeInfoString is the payload of an NBD_INFO_NAME or
// NBD_INFO_DESCRIPTION reply.
func encodeInfoString(t InfoType, s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(t)), s...)
}

// blockSizes are an export's block size constraints.
type blockSizes struct {
	min, preferred, max uint32
}

func (s blockSizes) encode() []byte {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 14), uint16(InfoBlockSize))
	b = binary.BigEndian.AppendUint32(b, s.min)
	b = binary.BigEndian.AppendUint32(b, s.preferred)
	return binary.BigEndian.AppendUint32(b, s.max)
}

// valid checks the rules of the "Block size constraints" section.
func (s blockSizes) valid() error {
	pow2 := func(v uint32) bool { return v != 0 && v&(v-1) == 0 }
	switch {
	case !pow2(s.min) || s.min > 64<<10:
		return fmt.Errorf("%w: minimum block size %d", ErrProtocol, s.min)
	case !pow2(s.preferred) || s.preferred < max(s.min, 512):
		return fmt.Errorf("%w: preferred block size %d", ErrProtocol, s.preferred)
	case s.max != 0xffffffff && (s.max%s.min != 0 || s.max < s.min):
		return fmt.Errorf("%w: maximum block size %d", ErrProtocol, s.max)
	}
	return nil
}

// encodeServer is the payload of an NBD_REP_SERVER reply.
func encodeServer(name, description string) []byte {
	return append(appendString(nil, name), description...)
}

// encodeMetaContext is the payload of an NBD_REP_META_CONTEXT reply.
func encodeMetaContext(id uint32, name string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, id), name...)
}

// encodeHello is the data of OptNetraidHello: the export name, then the
// caller's bytes.
func encodeHello(export string, payload []byte) []byte { return encodeNamed(export, payload) }

func parseHello(b []byte) (export string, payload []byte, err error) {
	return parseNamed(b, "export name")
}

// encodeRefusal is the data of a RepErrNetraidRefused reply: the message,
// then the data the server's hook attached.
func encodeRefusal(msg string, data []byte) []byte { return encodeNamed(msg, data) }

func parseRefusal(b []byte) (msg string, data []byte, err error) {
	return parseNamed(b, "refusal message")
}

// encodeNamed is s as appendString writes it, then rest.
func encodeNamed(s string, rest []byte) []byte { return append(appendString(nil, s), rest...) }

// appendString appends s with its 32-bit length in front, the protocol's
// way of writing a name or a string; optReader.string reads it back.
func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func parseNamed(b []byte, what string) (s string, rest []byte, err error) {
	r := optReader{b: b}
	s = r.string(what)
	if r.err != nil {
		return "", nil, r.err
	}
	return s, r.b, nil
}
