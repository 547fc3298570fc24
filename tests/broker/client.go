package broker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// DefaultTimeout bounds each exchange of a Client with the broker (a SEND
// and its RECEIPT, the rest of a frame once its first byte came) unless the
// Endpoint sets another.
const DefaultTimeout = 30 * time.Second

// maxQueued bounds the MESSAGE frames a Client holds while it waits for a
// receipt; the broker's prefetch keeps it far lower.
const maxQueued = 1 << 16

// Message is a MESSAGE frame delivered to a subscription.
type Message struct {
	Destination  string
	ID           string // message-id
	Ack          string // the ack header, to be echoed by Ack (STOMP 1.2)
	Subscription string
	Redelivered  bool // ActiveMQ's redelivered header
	Headers      map[string]string
	Body         []byte
}

// Client is a STOMP 1.2 connection. It starts no goroutine: every call
// reads and writes the connection itself, under deadlines. It is not safe
// for concurrent use.
type Client struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
	server  string
	seq     uint64    // receipt and subscription ids
	queued  []Message // MESSAGE frames read while waiting for a receipt
	err     error     // sticky: set once the connection failed or closed
}

// Dial connects to the STOMP server at addr (host:port) from the caller's
// network namespace.
func Dial(ctx context.Context, addr string) (*Client, error) {
	return Endpoint{Addr: addr}.Dial(ctx)
}

// connect sends CONNECT on conn and reads CONNECTED. It owns conn: on error
// conn is closed.
func connect(ctx context.Context, conn net.Conn, timeout time.Duration) (*Client, error) {
	c := &Client{conn: conn, r: newReader(conn), timeout: timeout}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	conn.SetDeadline(time.Now().Add(timeout))
	f, err := c.handshake()
	if !stop() { // ctx ended: the connection's deadline may be in the past
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("broker: connect to %s: %w", conn.RemoteAddr(), err)
	}
	conn.SetDeadline(time.Time{})
	c.server = f.value("server")
	return c, nil
}

func (c *Client) handshake() (frame, error) {
	err := c.write(frame{command: "CONNECT", headers: []header{
		{"accept-version", "1.2"}, {"host", "localhost"}, {"heart-beat", "0,0"},
	}})
	if err != nil {
		return frame{}, err
	}
	f, err := readFrame(c.r)
	switch {
	case err != nil:
		return f, err
	case f.command == "ERROR":
		return f, serverError(f)
	case f.command != "CONNECTED":
		return f, fmt.Errorf("%w: %s in answer to CONNECT", ErrProtocol, f.command)
	case f.value("version") != "1.2":
		return f, fmt.Errorf("%w: server speaks STOMP %q, not 1.2", ErrProtocol, f.value("version"))
	}
	return f, nil
}

// Server is the server header of the CONNECTED frame (ActiveMQ/5.17.2).
func (c *Client) Server() string { return c.server }

// Send sends body to the queue as a persistent message and returns once
// the broker acknowledged it with a RECEIPT: the broker has stored it.
func (c *Client) Send(queue string, body []byte) error {
	id, err := c.SendAsync(queue, body)
	if err != nil {
		return err
	}
	return c.AwaitReceipt(id)
}

// SendAsync sends body to the queue as a persistent message that asks for
// a receipt, and returns the receipt's id without waiting for it, so that
// a producer can keep several messages in flight on one connection. The
// message is stored once AwaitReceipt(id) returned nil. Receipts come in
// the order the frames were sent: await them in that order.
func (c *Client) SendAsync(queue string, body []byte) (string, error) {
	if err := c.usable(); err != nil {
		return "", err
	}
	id := c.next("r")
	err := c.write(frame{command: "SEND", headers: []header{
		{"destination", "/queue/" + queue},
		{"persistent", "true"},
		{"receipt", id},
		{"content-length", strconv.Itoa(len(body))},
	}, body: body})
	if err != nil {
		return "", c.fail(fmt.Errorf("broker: send to %s: %w", queue, err))
	}
	return id, nil
}

// AwaitReceipt waits for the RECEIPT of id, a receipt SendAsync returned,
// keeping the MESSAGE frames that arrive meanwhile for Receive. A receipt
// for another id (one awaited out of order) fails the connection.
func (c *Client) AwaitReceipt(id string) error {
	if err := c.usable(); err != nil {
		return err
	}
	return c.awaitReceipt(id)
}

// Subscribe subscribes to the queue with client-individual
// acknowledgement, and returns once the broker confirmed it.
func (c *Client) Subscribe(queue string) error {
	if err := c.usable(); err != nil {
		return err
	}
	id := c.next("r")
	err := c.write(frame{command: "SUBSCRIBE", headers: []header{
		{"id", c.next("sub")},
		{"destination", "/queue/" + queue},
		{"ack", "client-individual"},
		{"receipt", id},
	}})
	if err != nil {
		return c.fail(fmt.Errorf("broker: subscribe to %s: %w", queue, err))
	}
	return c.awaitReceipt(id)
}

// Receive returns the next message of any subscription, or ErrNoMessage
// if none came within timeout; the connection stays usable after that.
func (c *Client) Receive(timeout time.Duration) (Message, error) {
	if err := c.usable(); err != nil {
		return Message{}, err
	}
	if len(c.queued) > 0 {
		m := c.queued[0]
		c.queued = c.queued[1:]
		return m, nil
	}
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		// Wait for the first byte under the caller's time-out: a time-out
		// here has consumed nothing. Heart-beat EOLs are skipped.
		b, err := c.r.Peek(1)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return Message{}, ErrNoMessage
		}
		if err != nil {
			return Message{}, c.fail(fmt.Errorf("broker: receive: %w", err))
		}
		if b[0] == '\n' || b[0] == '\r' {
			c.r.ReadByte()
			continue
		}
		break
	}
	c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	f, err := readFrame(c.r)
	if err != nil {
		return Message{}, c.fail(fmt.Errorf("broker: receive: %w", err))
	}
	switch f.command {
	case "MESSAGE":
		return toMessage(f), nil
	case "ERROR":
		return Message{}, c.fail(serverError(f))
	default:
		return Message{}, c.fail(fmt.Errorf("%w: unexpected %s", ErrProtocol, f.command))
	}
}

// Ack acknowledges one message (client-individual). It does not wait for
// the broker: a later receipt (another Send, Subscribe, or Close) orders
// after it.
func (c *Client) Ack(m Message) error {
	if err := c.usable(); err != nil {
		return err
	}
	if m.Ack == "" {
		return fmt.Errorf("%w: message %s has no ack header", ErrProtocol, m.ID)
	}
	if err := c.write(frame{command: "ACK", headers: []header{{"id", m.Ack}}}); err != nil {
		return c.fail(fmt.Errorf("broker: ack %s: %w", m.ID, err))
	}
	return nil
}

// Close disconnects gracefully, waiting for the broker's receipt of the
// DISCONNECT (so that earlier ACKs were processed), and closes the
// connection. Messages received but not acknowledged are redelivered.
func (c *Client) Close() error {
	if errors.Is(c.err, ErrClosed) {
		return nil
	}
	var err error
	if c.err == nil {
		id := c.next("r")
		err = c.write(frame{command: "DISCONNECT", headers: []header{{"receipt", id}}})
		if err == nil {
			err = c.awaitReceipt(id)
		}
	}
	c.conn.Close()
	c.err = ErrClosed
	c.queued = nil
	return err
}

func (c *Client) usable() error { return c.err }

// fail records err as the connection's fate and closes it.
func (c *Client) fail(err error) error {
	if c.err == nil {
		c.err = err
		c.conn.Close()
	}
	return err
}

func (c *Client) next(prefix string) string {
	c.seq++
	return prefix + "-" + strconv.FormatUint(c.seq, 10)
}

func (c *Client) write(f frame) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.conn.Write(appendFrame(nil, f))
	return err
}

// awaitReceipt reads frames until the RECEIPT for id, keeping the MESSAGE
// frames that arrive meanwhile for Receive.
func (c *Client) awaitReceipt(id string) error {
	c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	for {
		f, err := readFrame(c.r)
		if err != nil {
			return c.fail(fmt.Errorf("broker: waiting for receipt %s: %w", id, err))
		}
		switch f.command {
		case "RECEIPT":
			if got := f.value("receipt-id"); got != id {
				return c.fail(fmt.Errorf("%w: receipt %q while waiting for %q", ErrProtocol, got, id))
			}
			return nil
		case "MESSAGE":
			if len(c.queued) == maxQueued {
				return c.fail(fmt.Errorf("%w: over %d messages queued while waiting for a receipt", ErrProtocol, maxQueued))
			}
			c.queued = append(c.queued, toMessage(f))
		case "ERROR":
			return c.fail(serverError(f))
		default:
			return c.fail(fmt.Errorf("%w: unexpected %s while waiting for receipt %s", ErrProtocol, f.command, id))
		}
	}
}

func toMessage(f frame) Message {
	m := Message{
		Destination:  f.value("destination"),
		ID:           f.value("message-id"),
		Ack:          f.value("ack"),
		Subscription: f.value("subscription"),
		Redelivered:  f.value("redelivered") == "true",
		Headers:      make(map[string]string, len(f.headers)),
		Body:         f.body,
	}
	for i := len(f.headers) - 1; i >= 0; i-- { // the first occurrence wins
		m.Headers[f.headers[i].name] = f.headers[i].value
	}
	return m
}

func serverError(f frame) error {
	return &ServerError{Message: f.value("message"), ReceiptID: f.value("receipt-id"), Detail: string(f.body)}
}
