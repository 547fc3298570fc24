package nbd

import (
	"context"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// TestConformance runs the Device suite on a Client talking to a Server
// that serves a blockdev.Mem, over a unix socket and over TCP.
func TestConformance(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
				hello := func(context.Context, string, []byte) ([]byte, error) { return nil, nil }
				ts := startServer(t, network, ServerOptions{Hello: hello}, Export{Name: "mem", Dev: blockdev.NewMem(size)})
				return ts.dial(t, ClientOptions{Export: "mem", Hello: []byte{}})
			}, devtest.Options{Unaligned: true, TrimZeroes: true})
		})
	}
}

// TestConformanceSmallRequests makes the client split every request into
// many pieces in flight together, without the netraid hello (so Checksum
// reads through the client) and with the server's sparse map.
func TestConformanceSmallRequests(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		ts := startServer(t, "unix", ServerOptions{MaxRequest: 16 << 10, MaxInflight: 4},
			Export{Name: "mem", Dev: newSparse(size)})
		return ts.dial(t, ClientOptions{Export: "mem", MaxInflight: 8})
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}
