package nbd

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/netraid/netraid/blockdev"
)

// Sentinel errors. Callers test with errors.Is.
var (
	// ErrProtocol: the peer broke the protocol; the connection is closed.
	ErrProtocol = errors.New("nbd: protocol error")
	// ErrUnknownExport: no export of that name.
	ErrUnknownExport = errors.New("nbd: unknown export")
	// ErrExportExists: AddExport of a name already in use.
	ErrExportExists = errors.New("nbd: export already exists")
	// ErrServerClosed: the server was shut down.
	ErrServerClosed = errors.New("nbd: server closed")
	// ErrShutdown: the server answered ESHUTDOWN or NBD_REP_ERR_SHUTDOWN.
	ErrShutdown = errors.New("nbd: server is shutting down")
	// ErrInvalid: the server answered EINVAL.
	ErrInvalid = errors.New("nbd: invalid request")
	// ErrRemoteIO: the server answered EIO (or an error value without a
	// closer meaning).
	ErrRemoteIO = errors.New("nbd: remote I/O error")
	// ErrBroken: the client's connection failed; Client.Err says why.
	ErrBroken = errors.New("nbd: connection broken")
	// ErrNoHello: a netraid control request on a connection that did not
	// do the netraid hello.
	ErrNoHello = errors.New("nbd: no netraid hello on this connection")
	// ErrAuth: the netraid authentication (ServerOptions.Auth,
	// ClientOptions.Auth) failed, or an option came before it.
	ErrAuth = errors.New("nbd: authentication failed")
	// ErrTooLarge: a control request or reply larger than the limit.
	ErrTooLarge = errors.New("nbd: request too large")

	errTooManyQueries = errors.New("nbd: too many meta context queries")
	// errFastZero answers a FAST_ZERO request the device cannot do fast.
	errFastZero = fmt.Errorf("nbd: device cannot zero faster than it writes: %w", errors.ErrUnsupported)
)

// errnoOf maps an error to the error value of a reply. It is the only place
// that does: every error reply the server sends goes through it.
func errnoOf(err error) Errno {
	var sys syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrShutdown), errors.Is(err, ErrServerClosed), errors.Is(err, blockdev.ErrClosed):
		return ESHUTDOWN
	case errors.Is(err, blockdev.ErrReadOnly):
		return EPERM
	case errors.Is(err, blockdev.ErrNoSpace):
		return ENOSPC
	case errors.Is(err, blockdev.ErrOutOfRange), errors.Is(err, blockdev.ErrUnaligned),
		errors.Is(err, ErrInvalid), errors.Is(err, ErrNoHello), errors.Is(err, ErrTooLarge):
		return EINVAL
	case errors.Is(err, errors.ErrUnsupported):
		return ENOTSUP
	case errors.As(err, &sys):
		switch sys {
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG:
			return ENOSPC
		case syscall.EPERM, syscall.EACCES, syscall.EROFS:
			return EPERM
		case syscall.EINVAL:
			return EINVAL
		}
	}
	// blockdev.ErrTimeout, ErrRemoteIO and everything else.
	return EIO
}

// errorMessage is the text of a structured error reply: err's text,
// truncated to the protocol's string limit on a rune boundary.
func errorMessage(err error) string {
	s := strings.ToValidUTF8(strings.ReplaceAll(err.Error(), "\x00", ""), "?")
	if len(s) <= maxString {
		return s
	}
	s = s[:maxString]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Error is an error reply from the server to one request.
type Error struct {
	Op    Command
	Off   int64
	Len   int64
	Errno Errno
	// Msg is the server's message; empty unless structured replies were
	// negotiated.
	Msg string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("nbd: %v off %d len %d: server replied %v", e.Op, e.Off, e.Len, e.Errno)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Unwrap maps the error value to the sentinel a caller tests for:
// blockdev.ErrReadOnly, blockdev.ErrNoSpace, ErrInvalid,
// errors.ErrUnsupported, ErrShutdown or ErrRemoteIO.
func (e *Error) Unwrap() error {
	switch e.Errno {
	case EPERM:
		return blockdev.ErrReadOnly
	case ENOSPC:
		return blockdev.ErrNoSpace
	case EINVAL:
		return ErrInvalid
	case ENOTSUP:
		return errors.ErrUnsupported
	case ESHUTDOWN:
		return ErrShutdown
	}
	return ErrRemoteIO
}

// OptionError is an error reply to an option during the handshake.
type OptionError struct {
	Option Option
	Reply  Reply
	Msg    string
}

func (e *OptionError) Error() string {
	s := fmt.Sprintf("nbd: option %v: server replied %v", e.Option, e.Reply)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Unwrap returns ErrUnknownExport, ErrShutdown or ErrTLSRequired for
// those replies.
func (e *OptionError) Unwrap() error {
	switch e.Reply {
	case RepErrUnknown:
		return ErrUnknownExport
	case RepErrShutdown:
		return ErrShutdown
	case RepErrTLSReqd:
		return ErrTLSRequired
	}
	return nil
}

// HelloError is the server's refusal of the netraid hello: its
// ServerOptions.Hello returned an error (Reply is RepErrPolicy and Msg its
// text; RepErrNetraidRefused with the data of a *HelloRefusal), or it has
// no Hello hook (RepErrUnsup).
type HelloError struct {
	Export string
	Reply  Reply
	Msg    string
	// Data is what the server's hook attached to its refusal (a
	// HelloRefusal's Data); nil if it attached nothing.
	Data []byte
}

// HelloRefusal is an error a ServerOptions.Hello hook returns to refuse the
// client and still tell it something it can act on: the client's
// HelloError carries Data, next to the error's text.
type HelloRefusal struct {
	Err  error
	Data []byte
}

func (e *HelloRefusal) Error() string { return e.Err.Error() }
func (e *HelloRefusal) Unwrap() error { return e.Err }

// Unwrap makes a hello for an export the server does not have an
// ErrUnknownExport.
func (e *HelloError) Unwrap() error {
	if e.Reply == RepErrUnknown {
		return ErrUnknownExport
	}
	return nil
}

func (e *HelloError) Error() string {
	s := fmt.Sprintf("nbd: hello for export %q refused (%v)", e.Export, e.Reply)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}
