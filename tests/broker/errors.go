package broker

import (
	"errors"
	"fmt"
)

var (
	// ErrNotInstalled: java, the ActiveMQ jar or its configuration is
	// missing (scripts/deps.sh --broker installs them).
	ErrNotInstalled = errors.New("broker: activemq not installed")
	// ErrUnsafeConfig: the configuration cannot be used as it is: it has no
	// single transportConnectors element, keeps state outside the data
	// directory, or turns KahaDB's journal syncs off.
	ErrUnsafeConfig = errors.New("broker: unusable activemq configuration")
	// ErrExited: the broker process exited without being asked to.
	ErrExited = errors.New("broker: process exited")
	// ErrNotReady: the broker did not answer a STOMP CONNECT in time.
	ErrNotReady = errors.New("broker: not ready in time")
	// ErrStopTimeout: the broker did not stop after SIGTERM in time and was
	// killed.
	ErrStopTimeout = errors.New("broker: clean stop timed out")

	// ErrMalformedFrame: bytes on the connection that are not STOMP.
	ErrMalformedFrame = errors.New("broker: malformed STOMP frame")
	// ErrFrameTooLarge: a frame line, header count or body beyond the limits.
	ErrFrameTooLarge = errors.New("broker: STOMP frame too large")
	// ErrProtocol: a well-formed frame that does not belong where it came.
	ErrProtocol = errors.New("broker: STOMP protocol error")
	// ErrNoMessage: Receive's time-out passed with no message.
	ErrNoMessage = errors.New("broker: no message before the time-out")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("broker: client closed")
	// ErrBadBody: a message body without a sequence number.
	ErrBadBody = errors.New("broker: message body without a sequence number")
)

// ServerError is an ERROR frame from the broker. The connection it came on
// is closed.
type ServerError struct {
	Message   string // the frame's message header
	ReceiptID string // the receipt of the frame that failed, if any
	Detail    string // the frame's body (ActiveMQ sends a stack trace)
}

func (e *ServerError) Error() string {
	s := "broker: server error: " + e.Message
	if e.ReceiptID != "" {
		s += fmt.Sprintf(" (receipt %s)", e.ReceiptID)
	}
	return s
}
