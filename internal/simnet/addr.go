package simnet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// NetworkName is what the addresses of a simulated network report as
// their network.
const NetworkName = "sim"

// ErrHostDown is the error of every call made on behalf of a process
// that crashed or was killed: its connections and listeners, and its
// Dial and Listen until the host is restarted.
var ErrHostDown = errors.New("simnet: host is down")

// Addr is a host and port of a simulated network.
type Addr struct {
	Host string
	Port int
}

var _ net.Addr = Addr{}

// Network is NetworkName.
func (a Addr) Network() string { return NetworkName }

// String is "host:port".
func (a Addr) String() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// Ephemeral ports, as Linux hands them out by default.
const (
	firstEphemeral = 32768
	lastEphemeral  = 60999
)

// checkNetwork accepts the networks a TCP caller names.
func checkNetwork(network string) error {
	switch network {
	case "tcp", "tcp4", "tcp6", NetworkName:
		return nil
	}
	return net.UnknownNetworkError(network)
}

// splitAddr parses "host:port"; host may be empty.
func splitAddr(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, &net.AddrError{Err: "invalid port", Addr: addr}
	}
	return host, port, nil
}

// isLoopback reports whether host names the caller's own host.
func isLoopback(host string) bool {
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// isWildcard reports whether a listening host means every address.
func isWildcard(host string) bool {
	switch host {
	case "", "0.0.0.0", "::":
		return true
	}
	return false
}

// opError wraps err as package net does.
func opError(op string, src, dst net.Addr, err error) error {
	return &net.OpError{Op: op, Net: NetworkName, Source: src, Addr: dst, Err: err}
}

// sysErr is a system call's errno, as package net reports it.
func sysErr(call string, errno syscall.Errno) error { return os.NewSyscallError(call, errno) }

// checkHostName panics on a name that cannot be a host of an address.
func checkHostName(name string) {
	if name == "" || isLoopback(name) || isWildcard(name) || net.ParseIP(name) != nil {
		panic(fmt.Sprintf("simnet: %q cannot name a host", name))
	}
	for _, r := range name {
		if r == ':' || r == '[' || r == ']' || r == ' ' {
			panic(fmt.Sprintf("simnet: %q cannot name a host: it holds %q", name, r))
		}
	}
}
