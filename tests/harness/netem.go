package harness

import (
	"fmt"
	"strings"
	"time"
)

// SlowLink slows what the machine sends on its link: netem adds delay
// where the kernel has it; a kernel without netem (CONFIG_NET_SCH_NETEM)
// gets a token bucket (tbf) limiting the rate to fallbackRate instead, so
// that replication still slows down. It returns what it applied, for the
// log. Removing the namespace removes the shaping; FastLink removes it
// before.
func (m *Machine) SlowLink(t T, delay time.Duration, fallbackRate string) string {
	t.Helper()
	netem := []string{"netem", "delay", fmt.Sprintf("%dms", delay.Milliseconds())}
	if _, err := m.tc("replace", netem...); err == nil {
		return "netem delay " + delay.String()
	} else if !strings.Contains(err.Error(), "unknown") {
		t.Fatal(err)
	}
	// Queued packets wait at most 500ms, then are dropped: TCP slows down too.
	tbf := []string{"tbf", "rate", fallbackRate, "burst", "32kb", "latency", "500ms"}
	if _, err := m.tc("replace", tbf...); err != nil {
		t.Fatal(err)
	}
	return "tbf rate " + fallbackRate + " (no netem in this kernel)"
}

// FastLink removes what SlowLink applied.
func (m *Machine) FastLink(t T) {
	t.Helper()
	if _, err := m.tc("del"); err != nil && !strings.Contains(err.Error(), "handle of zero") {
		t.Fatal(err)
	}
}

func (m *Machine) tc(op string, qdisc ...string) (string, error) {
	args := append([]string{"-n", m.Name, "qdisc", op, "dev", m.Veth, "root"}, qdisc...)
	return Try("tc", args...)
}
