package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// WitnessOptions shape a witness: the etcd cluster that fences a pair.
type WitnessOptions struct {
	Members int // etcd members, default 3
	// TLS makes the members serve clients over TLS and require a client
	// certificate (Witness.TLS); peers talk among themselves in plain.
	TLS bool
	// Raft timing, defaults 100ms and 1s: quick to elect on a fresh
	// cluster, slow enough that a loaded 2-core machine does not see
	// leader changes it did not cause.
	Heartbeat time.Duration
	Election  time.Duration
}

// Witness is an etcd cluster on network namespaces of its own, reached
// by the machines over a witness network that is apart from their link:
//
//	machine k ── veth ──┐
//	                    ├─ bridge (switch namespace, 10.214.S.254)
//	member i  ── veth ──┘
//
// Machine k has 10.214.S.(1+k) on its witness veth, member i
// 10.214.S.(11+i) in a namespace of its own. The machines' ports on the
// bridge are isolated from each other, so the link stays the machines'
// only path to each other. Each machine's path to etcd, and each
// member's path to everyone, is one bridge port that CutNode and
// CutMember take down: packets then vanish without an error, as behind
// a failed switch, and each side only times out. Data directories live
// on tmpfs (/dev/shm) and go at cleanup with the namespaces; the
// members' logs are printed when the test failed.
type Witness struct {
	t       T
	o       WitnessOptions
	id      string
	Dir     string // data directories, logs and certificates
	Switch  string // namespace of the bridge, the harness's vantage point
	Members []*EtcdMember
	ports   map[*Machine]string // each machine's port on the bridge
	addrs   map[*Machine]string // each machine's address on the witness network
	tls     *WitnessTLS
}

// witnessNet is the first two bytes of the witness network's addresses;
// the third comes from the witness's random id. The addresses exist only
// inside the test's namespaces, apart from the links' 10.213.
const witnessNet = "10.214"

// NewWitness makes the witness network, attaches the machines to it, and
// starts the etcd members in parallel; it returns when every member
// answers a health check (a quorum read), and logs how long that took.
// Cleanup kills the members it started and removes the namespaces and
// the data. Machines are attached in order: for MachinePair's a and b,
// pass a then b.
func NewWitness(t T, o WitnessOptions, machines ...*Machine) *Witness {
	t.Helper()
	RequireRoot(t, "ip", "etcd", "etcdctl")
	if o.Members == 0 {
		o.Members = 3
	}
	if o.Members < 1 || o.Members > 9 {
		t.Fatalf("witness: %d members: give 1 to 9", o.Members)
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 100 * time.Millisecond
	}
	if o.Election == 0 {
		o.Election = time.Second
	}
	start := time.Now()
	w := &Witness{t: t, o: o, id: Unique(""), ports: map[*Machine]string{}, addrs: map[*Machine]string{}}
	w.Switch = "nrs" + w.id
	sweepWitnessDirs()
	dir, err := os.MkdirTemp(shmDir(), witnessDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	w.Dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	w.network(machines)
	if o.TLS {
		w.tls = makeWitnessTLS(t, dir, w.memberAddrs())
	}
	w.Members = make([]*EtcdMember, o.Members)
	for i := range w.Members {
		w.Members[i] = w.member(i)
	}
	t.Cleanup(w.cleanup)
	for _, m := range w.Members {
		if err := m.start(); err != nil {
			t.Fatal(err)
		}
	}
	w.waitHealthy(w.Members, 2*time.Minute)
	t.Logf("witness: %d etcd member(s) up in %v, endpoints %s", o.Members, time.Since(start).Round(time.Millisecond), w.endpoints(w.Members))
	return w
}

// shmDir is where the members' data lives: tmpfs, so that etcd's fsyncs
// cost nothing on a busy machine.
func shmDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

const witnessDirPrefix = "netraid-witness-"

// sweepWitnessDirs removes the data that witnesses of test processes
// that died without their cleanups left on tmpfs, where it holds memory
// (etcd preallocates 128 MB of log per member). A directory is removed
// only when the process named in its owner file no longer exists.
func sweepWitnessDirs() {
	dirs, _ := filepath.Glob(filepath.Join(shmDir(), witnessDirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			continue // being made, or not ours
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}

// subnet is the witness network's /24, from the random id.
func (w *Witness) subnet() string {
	var sub byte
	fmt.Sscanf(w.id[2:4], "%x", &sub)
	return fmt.Sprintf("%s.%d", witnessNet, sub)
}

// network makes the switch namespace with its bridge, plugs in each
// machine, and makes one namespace per member, plugged in too.
func (w *Witness) network(machines []*Machine) {
	t := w.t
	t.Helper()
	br := "br" + w.id
	w.addNetns(w.Switch)
	Run(t, "ip", "-n", w.Switch, "link", "add", br, "type", "bridge", "forward_delay", "0")
	Run(t, "ip", "-n", w.Switch, "addr", "add", w.subnet()+".254/24", "dev", br)
	Run(t, "ip", "-n", w.Switch, "link", "set", br, "up")
	for k, m := range machines {
		if _, dup := w.ports[m]; dup {
			t.Fatalf("witness: machine %s given twice", m.Name)
		}
		port, addr := fmt.Sprintf("sm%d%s", k, w.id), fmt.Sprintf("%s.%d", w.subnet(), 1+k)
		w.plug(m.Name, fmt.Sprintf("wm%d%s", k, w.id), port, addr, true)
		w.ports[m], w.addrs[m] = port, addr
	}
}

// addNetns makes a namespace with its loopback up, deleted at cleanup.
func (w *Witness) addNetns(name string) {
	w.t.Helper()
	Run(w.t, "ip", "netns", "add", name)
	w.t.Cleanup(func() { Try("ip", "netns", "delete", name) })
	Run(w.t, "ip", "-n", name, "link", "set", "lo", "up")
}

// plug joins namespace ns to the bridge by a veth: its end, named inner,
// gets addr; the bridge's end is port. An isolated port reaches only
// ports that are not isolated (the members).
func (w *Witness) plug(ns, inner, port, addr string, isolated bool) {
	t := w.t
	t.Helper()
	Run(t, "ip", "link", "add", inner, "netns", ns, "type", "veth", "peer", "name", port, "netns", w.Switch)
	Run(t, "ip", "-n", w.Switch, "link", "set", port, "master", "br"+w.id)
	if isolated {
		Run(t, "ip", "-n", w.Switch, "link", "set", port, "type", "bridge_slave", "isolated", "on")
	}
	Run(t, "ip", "-n", w.Switch, "link", "set", port, "up")
	Run(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", inner)
	Run(t, "ip", "-n", ns, "link", "set", inner, "up")
}

func (w *Witness) memberAddrs() []string {
	var addrs []string
	for i := range w.o.Members {
		addrs = append(addrs, fmt.Sprintf("%s.%d", w.subnet(), 11+i))
	}
	return addrs
}

// Endpoints returns the etcd client URLs as machine m reaches them,
// comma-separated (for `netraid serve --etcd`).
func (w *Witness) Endpoints(m *Machine) string {
	w.t.Helper()
	w.port(m)
	return w.endpoints(w.Members)
}

func (w *Witness) endpoints(ms []*EtcdMember) string {
	var urls []string
	for _, m := range ms {
		urls = append(urls, m.ClientURL)
	}
	return strings.Join(urls, ",")
}

// Addr returns machine m's address on the witness network (not on its
// link).
func (w *Witness) Addr(m *Machine) string {
	w.t.Helper()
	w.port(m)
	return w.addrs[m]
}

func (w *Witness) port(m *Machine) string {
	w.t.Helper()
	p, ok := w.ports[m]
	if !ok {
		w.t.Fatalf("witness: machine %s is not attached to it", m.Name)
	}
	return p
}

// CutNode cuts machine m off from every etcd member; its link to the
// other machine is untouched.
func (w *Witness) CutNode(m *Machine) {
	w.t.Helper()
	Run(w.t, "ip", "-n", w.Switch, "link", "set", w.port(m), "down")
}

// HealNode restores what CutNode cut.
func (w *Witness) HealNode(m *Machine) {
	w.t.Helper()
	Run(w.t, "ip", "-n", w.Switch, "link", "set", w.port(m), "up")
}

// CutMember cuts member i off from the machines and the other members
// (a partitioned member; StopMember is a dead one).
func (w *Witness) CutMember(i int) {
	w.t.Helper()
	Run(w.t, "ip", "-n", w.Switch, "link", "set", w.Members[i].port, "down")
	w.Members[i].cut = true
}

// HealMember restores what CutMember cut.
func (w *Witness) HealMember(i int) {
	w.t.Helper()
	Run(w.t, "ip", "-n", w.Switch, "link", "set", w.Members[i].port, "up")
	w.Members[i].cut = false
}

// Reaches reports whether machine m can open a TCP connection to
// addr:port, or is refused by a live host there: either way a packet came
// back. It waits at most 5s for an answer.
func (m *Machine) Reaches(addr string, port int) bool {
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", addr, port)
	argv := NetnsArgv(m.Name, "timeout", "5", "bash", "-c", script)
	out, err := Try(argv[0], argv[1:]...)
	return err == nil || strings.Contains(out+err.Error(), "Connection refused")
}
