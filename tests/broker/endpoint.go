package broker

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Endpoint says where a broker's STOMP connector is and how to reach it.
type Endpoint struct {
	Addr    string        // host:port
	Netns   string        // network namespace to connect from ("": the caller's)
	Timeout time.Duration // per-exchange time-out of its clients (0: DefaultTimeout)
}

// Dial connects to the endpoint and completes the STOMP handshake; ctx
// bounds both.
func (e Endpoint) Dial(ctx context.Context) (*Client, error) {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	conn, err := e.dialTCP(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: dial %s: %w", e, err)
	}
	return connect(ctx, conn, timeout)
}

func (e Endpoint) dialTCP(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	if e.Netns == "" {
		return d.DialContext(ctx, "tcp", e.Addr)
	}
	// A socket belongs to the namespace it was made in. An IP literal
	// makes the dialer create exactly one socket, on this thread.
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("host %q must be an IP address to dial from a network namespace", host)
	}
	var conn net.Conn
	err = inNetns(e.Netns, func() error {
		var err error
		conn, err = d.DialContext(ctx, "tcp", e.Addr)
		return err
	})
	if err != nil && conn != nil {
		conn.Close()
		conn = nil
	}
	return conn, err
}

// String is the address, with the namespace if any: "10.0.0.1:61613@ns".
func (e Endpoint) String() string {
	if e.Netns == "" {
		return e.Addr
	}
	return e.Addr + "@" + e.Netns
}

// freePort returns a TCP port free on host in the namespace netns, chosen
// by the kernel.
func freePort(netns, host string) (int, error) {
	var port int
	listen := func() error {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return err
		}
		port = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	}
	var err error
	if netns == "" {
		err = listen()
	} else {
		err = inNetns(netns, listen)
	}
	if err != nil {
		return 0, fmt.Errorf("broker: pick a free port on %s: %w", host, err)
	}
	return port, nil
}
