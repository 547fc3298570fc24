package fault

import (
	"errors"
	"fmt"
	"sync"

	"github.com/netraid/netraid/blockdev"
)

// ErrInjected is what an armed Injector fails every I/O of a member with.
var ErrInjected = errors.New("fault: injected I/O error")

// Injector keeps one Device per member of a volume, for a daemon run
// with fault injection (drills and trials): WrapData wraps each member's
// data area as the volume assembles it (and a replacement's), Inject arms
// or heals a member. It is the hook a node is given; the node knows no
// more of faults than that.
type Injector struct {
	mu   sync.Mutex
	devs map[int]*Device
}

// NewInjector returns an Injector with no member wrapped yet.
func NewInjector() *Injector { return &Injector{devs: map[int]*Device{}} }

// WrapData wraps member's data area; a later call for the same member (a
// replaced disk) replaces the wrapper Inject acts on.
func (i *Injector) WrapData(member int, d blockdev.Device) blockdev.Device {
	f := Wrap(d)
	i.mu.Lock()
	i.devs[member] = f
	i.mu.Unlock()
	return f
}

// Inject makes every I/O on member's data area fail with ErrInjected, or,
// with heal, work again.
func (i *Injector) Inject(member int, heal bool) error {
	i.mu.Lock()
	f := i.devs[member]
	i.mu.Unlock()
	if f == nil {
		return fmt.Errorf("fault: member %d has no injector", member)
	}
	if heal {
		f.Heal()
		return nil
	}
	f.FailAll(Any, ErrInjected)
	return nil
}

// Member returns member's wrapper, or nil, for tests that arm other
// faults (hangs, torn writes) on it.
func (i *Injector) Member(member int) *Device {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.devs[member]
}
