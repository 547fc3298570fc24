package sim

import (
	"context"
	"net"
	"time"

	"github.com/netraid/netraid/internal/simnet"
)

// SimNet adapts a simnet.Network to Net.
type SimNet struct{ N *simnet.Network }

// NewSimNet returns a fresh simulated network.
func NewSimNet() *SimNet { return &SimNet{N: simnet.New(simnet.Options{})} }

func (s *SimNet) Dialer(host string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return s.N.Host(host).Dial
}

func (s *SimNet) Listener(host string) func(network, addr string) (net.Listener, error) {
	return s.N.Host(host).Listen
}

func (s *SimNet) Partition(a, b string)              { s.N.Partition(a, b) }
func (s *SimNet) Heal(a, b string)                   { s.N.Heal(a, b) }
func (s *SimNet) Reset(a, b string)                  { s.N.Reset(a, b) }
func (s *SimNet) Delay(a, b string, d time.Duration) { s.N.Delay(a, b, d) }
func (s *SimNet) Pause(host string)                  { s.N.Host(host).Pause() }
func (s *SimNet) Resume(host string)                 { s.N.Host(host).Resume() }
func (s *SimNet) Crash(host string)                  { s.N.Host(host).Crash() }
func (s *SimNet) Kill(host string)                   { s.N.Host(host).Kill() }
func (s *SimNet) Restart(host string)                { s.N.Host(host).Restart() }
