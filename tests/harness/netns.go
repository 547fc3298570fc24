package harness

import (
	"fmt"
)

// Machine is a network namespace standing in for a machine, joined to its
// peer by a veth pair. Files are shared with the host; the network is not.
type Machine struct {
	Name string // namespace name
	Veth string // its end of the link
	Addr string // its address on the link
}

// MachinePair makes two machines, a and b, joined by one veth link with the
// addresses 10.213.N.1 and 10.213.N.2 (only inside the two namespaces),
// removed at cleanup.
func MachinePair(t T) (a, b *Machine) {
	t.Helper()
	id := Unique("")
	a = &Machine{Name: "nra" + id, Veth: "va" + id}
	b = &Machine{Name: "nrb" + id, Veth: "vb" + id}
	// A byte of the random id picks the subnet, so parallel runs differ.
	var sub byte
	fmt.Sscanf(id[:2], "%x", &sub)
	a.Addr = fmt.Sprintf("10.213.%d.1", sub)
	b.Addr = fmt.Sprintf("10.213.%d.2", sub)
	for _, m := range []*Machine{a, b} {
		Run(t, "ip", "netns", "add", m.Name)
		name := m.Name
		t.Cleanup(func() { Try("ip", "netns", "delete", name) })
		Run(t, "ip", "-n", m.Name, "link", "set", "lo", "up")
	}
	Run(t, "ip", "link", "add", a.Veth, "netns", a.Name, "type", "veth", "peer", "name", b.Veth, "netns", b.Name)
	for _, m := range []*Machine{a, b} {
		Run(t, "ip", "-n", m.Name, "addr", "add", m.Addr+"/24", "dev", m.Veth)
		Run(t, "ip", "-n", m.Name, "link", "set", m.Veth, "up")
	}
	return a, b
}

// LinkDown cuts the machine's link, as a pulled cable would.
func (m *Machine) LinkDown(t T) {
	t.Helper()
	Run(t, "ip", "-n", m.Name, "link", "set", m.Veth, "down")
}

// LinkUp restores the machine's link.
func (m *Machine) LinkUp(t T) {
	t.Helper()
	Run(t, "ip", "-n", m.Name, "link", "set", m.Veth, "up")
}
