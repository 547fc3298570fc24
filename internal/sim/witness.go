package sim

import (
	"sync"
	"time"

	"github.com/netraid/netraid/witness"
)

// WitnessHost is the witness's name on the simulated network: a
// partition between a node and it (Net.Partition(node, WitnessHost))
// cuts the node from the witness.
const WitnessHost = "w"

// DefaultLeaseTTL is the nodes' lease in the witness in the simulation.
const DefaultLeaseTTL = time.Second

// witnessNet is a cluster's network with the witness on it: the paths
// to the witness are cut by partitions with WitnessHost, and by the
// host's pause, crash or kill; the rest goes to the network below.
type witnessNet struct {
	Net
	w *witness.Memory

	mu     sync.Mutex
	parted map[string]bool // partitioned from the witness
	paused map[string]bool
}

func newWitnessNet(nw Net, w *witness.Memory) *witnessNet {
	return &witnessNet{Net: nw, w: w, parted: map[string]bool{}, paused: map[string]bool{}}
}

// other returns the node of a pair with the witness in it, or "".
func other(a, b string) string {
	switch WitnessHost {
	case a:
		return b
	case b:
		return a
	}
	return ""
}

// apply cuts or heals host's path to the witness as its faults say.
// Callers hold s.mu.
func (s *witnessNet) applyLocked(host string) {
	if s.parted[host] || s.paused[host] {
		s.w.Cut(host)
	} else {
		s.w.Heal(host)
	}
}

func (s *witnessNet) Partition(a, b string) {
	host := other(a, b)
	if host == "" {
		s.Net.Partition(a, b)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parted[host] = true
	s.applyLocked(host)
}

func (s *witnessNet) Heal(a, b string) {
	host := other(a, b)
	if host == "" {
		s.Net.Heal(a, b)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.parted, host)
	s.applyLocked(host)
}

// Reset and Delay of a path to the witness change nothing: its
// requests have no connection to reset, and a delay short of the
// request time-out is only slower.
func (s *witnessNet) Reset(a, b string) {
	if other(a, b) == "" {
		s.Net.Reset(a, b)
	}
}

func (s *witnessNet) Delay(a, b string, d time.Duration) {
	if other(a, b) == "" {
		s.Net.Delay(a, b, d)
	}
}

func (s *witnessNet) Pause(host string) {
	s.Net.Pause(host)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused[host] = true
	s.applyLocked(host)
}

func (s *witnessNet) Resume(host string) {
	s.Net.Resume(host)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.paused, host)
	s.applyLocked(host)
}

func (s *witnessNet) Crash(host string) {
	s.Net.Crash(host)
	s.w.Kill(host)
}

func (s *witnessNet) Kill(host string) {
	s.Net.Kill(host)
	s.w.Kill(host)
}

func (s *witnessNet) Restart(host string) {
	s.Net.Restart(host)
	s.w.Revive(host)
}

// HealWitness heals every path to the witness and starts it if stopped.
func (c *Cluster) HealWitness() {
	wn, ok := c.Net.(*witnessNet)
	if !ok {
		return
	}
	for _, name := range c.Names {
		wn.Heal(name, WitnessHost)
	}
	c.Witness.Start()
}
