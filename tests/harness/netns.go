package harness

import (
	"fmt"
	"path/filepath"
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

// ThirdMachine makes a machine joined to m only, by a veth of its own
// with addresses 10.215.N.1 (m) and 10.215.N.2 (the new machine): a host
// on m's network that is not m's peer. Removed at cleanup.
func ThirdMachine(t T, m *Machine) *Machine {
	t.Helper()
	id := Unique("")
	c := &Machine{Name: "nrc" + id, Veth: "vc" + id}
	var sub byte
	fmt.Sscanf(id[:2], "%x", &sub)
	mAddr := fmt.Sprintf("10.215.%d.1", sub)
	c.Addr = fmt.Sprintf("10.215.%d.2", sub)
	Run(t, "ip", "netns", "add", c.Name)
	name := c.Name
	t.Cleanup(func() { Try("ip", "netns", "delete", name) })
	Run(t, "ip", "-n", c.Name, "link", "set", "lo", "up")
	mv := "vm" + id
	Run(t, "ip", "link", "add", c.Veth, "netns", c.Name, "type", "veth", "peer", "name", mv, "netns", m.Name)
	Run(t, "ip", "-n", c.Name, "addr", "add", c.Addr+"/24", "dev", c.Veth)
	Run(t, "ip", "-n", c.Name, "link", "set", c.Veth, "up")
	Run(t, "ip", "-n", m.Name, "addr", "add", mAddr+"/24", "dev", mv)
	Run(t, "ip", "-n", m.Name, "link", "set", mv, "up")
	// The new machine reaches m's link address through m.
	Run(t, "ip", "-n", c.Name, "route", "add", m.Addr+"/32", "via", mAddr)
	return c
}

// NetnsArgv is argv run in network namespace name: nsenter into its
// network namespace only. (`ip netns exec` also makes a mount namespace
// of its own, a copy of every mount at that moment: a long-running
// process started so keeps the filesystems mounted then alive after they
// are unmounted here, and their devices busy.)
func NetnsArgv(name string, argv ...string) []string {
	path := name
	if filepath.Base(name) == name {
		path = filepath.Join("/run/netns", name)
	}
	return append([]string{"nsenter", "--net=" + path, "--"}, argv...)
}
