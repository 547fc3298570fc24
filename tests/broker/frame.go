package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// STOMP 1.2 frames: the codec, apart from any connection.
//
//	COMMAND EOL *( header EOL ) EOL body NUL *( EOL )
//
// EOL is LF or CR LF. Header names and values are escaped (\\ \n \r \c)
// except in CONNECT and CONNECTED frames. The body runs for content-length
// bytes when that header is present, else up to the first NUL.

// Limits on what a peer may send.
const (
	maxLine    = 64 << 10 // a command or header line; also the reader's buffer size
	maxHeaders = 256
	maxBody    = 64 << 20
)

type header struct{ name, value string }

type frame struct {
	command string
	headers []header
	body    []byte
}

// get returns the first value of the header name, as STOMP 1.2 says a
// repeated header's first occurrence wins.
func (f *frame) get(name string) (string, bool) {
	for _, h := range f.headers {
		if h.name == name {
			return h.value, true
		}
	}
	return "", false
}

func (f *frame) value(name string) string {
	v, _ := f.get(name)
	return v
}

// escaped reports whether the command's headers are escaped.
func escaped(command string) bool {
	return command != "CONNECT" && command != "CONNECTED"
}

var headerEscaper = strings.NewReplacer(`\`, `\\`, "\r", `\r`, "\n", `\n`, ":", `\c`)

// appendFrame encodes f. Callers that send a body add content-length.
func appendFrame(dst []byte, f frame) []byte {
	esc := escaped(f.command)
	dst = append(dst, f.command...)
	dst = append(dst, '\n')
	for _, h := range f.headers {
		name, value := h.name, h.value
		if esc {
			name, value = headerEscaper.Replace(name), headerEscaper.Replace(value)
		}
		dst = append(dst, name...)
		dst = append(dst, ':')
		dst = append(dst, value...)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, f.body...)
	return append(dst, 0)
}

// newReader returns a reader whose buffer holds the longest line allowed.
func newReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, maxLine) }

// readFrame reads one frame, skipping the EOLs (heart-beats) before it.
// It returns io.EOF only for an end of stream between frames.
func readFrame(r *bufio.Reader) (frame, error) {
	var f frame
	for f.command == "" {
		line, err := readLine(r)
		if err == io.EOF {
			return f, err
		}
		if err != nil {
			return f, truncated(err)
		}
		f.command = line
	}
	if !validCommand(f.command) {
		return f, fmt.Errorf("%w: bad command %q", ErrMalformedFrame, f.command)
	}
	for {
		line, err := readLine(r)
		if err != nil {
			return f, truncated(err)
		}
		if line == "" {
			break
		}
		if len(f.headers) == maxHeaders {
			return f, fmt.Errorf("%w: more than %d headers", ErrFrameTooLarge, maxHeaders)
		}
		h, err := parseHeader(line, escaped(f.command))
		if err != nil {
			return f, err
		}
		f.headers = append(f.headers, h)
	}
	body, err := readBody(r, &f)
	if err != nil {
		return f, err
	}
	f.body = body
	return f, nil
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: line longer than %d bytes", ErrFrameTooLarge, r.Size())
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	return string(line), nil
}

func truncated(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrMalformedFrame, err)
	}
	return err
}

func parseHeader(line string, esc bool) (header, error) {
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return header{}, fmt.Errorf("%w: header line %q without a colon", ErrMalformedFrame, line)
	}
	if !esc {
		return header{name, value}, nil
	}
	var err error
	if name, err = unescape(name); err != nil {
		return header{}, err
	}
	if value, err = unescape(value); err != nil {
		return header{}, err
	}
	return header{name, value}, nil
}

// unescape undoes STOMP 1.2 header escaping; an undefined escape is an error.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("%w: header ends in a backslash", ErrMalformedFrame)
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'c':
			b.WriteByte(':')
		default:
			return "", fmt.Errorf("%w: undefined escape \\%c", ErrMalformedFrame, s[i])
		}
	}
	return b.String(), nil
}

func readBody(r *bufio.Reader, f *frame) ([]byte, error) {
	if cl, ok := f.get("content-length"); ok {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: content-length %q", ErrMalformedFrame, cl)
		}
		if n > maxBody {
			return nil, fmt.Errorf("%w: content-length %d", ErrFrameTooLarge, n)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, truncated(err)
		}
		nul, err := r.ReadByte()
		if err != nil {
			return nil, truncated(err)
		}
		if nul != 0 {
			return nil, fmt.Errorf("%w: no NUL after %d body bytes", ErrMalformedFrame, n)
		}
		return body, nil
	}
	var body []byte
	for {
		chunk, err := r.ReadSlice(0)
		if len(body)+len(chunk) > maxBody+1 {
			return nil, fmt.Errorf("%w: body over %d bytes", ErrFrameTooLarge, maxBody)
		}
		body = append(body, chunk...)
		if err == nil {
			return body[:len(body)-1], nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, truncated(err)
		}
	}
}

// validCommand reports whether s is a STOMP command: upper-case letters.
func validCommand(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return s != ""
}
