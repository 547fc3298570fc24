package harness

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/netraid/netraid/node"
)

// PeerPort is the replication port both nodes of a pair listen on.
const PeerPort = 7789

// PairOptions shape a two-node setup.
type PairOptions struct {
	Name     string // volume name, default "vol"
	DiskSize int64  // each loop device, default 128 MiB
	Disks    int    // per node, default 2
	// DisksB overrides B's disk size (to make a smaller peer).
	DiskSizeB int64
	NameB     string // B's volume name, default Name
	Args      []string
	// Disk, if set, makes node ("a" or "b") its i-th disk of size bytes
	// in dir and returns its path; "" takes the usual loop device.
	Disk func(dir, node string, i int, size int64) string
	// Config starts each node from a config file of its own (Node.Config)
	// holding its sockets, disks and replication addresses; Args are
	// still given as flags, over the file.
	Config bool
	// NoStart makes the nodes without starting them: add to their Args
	// (a witness's endpoints, say) and call Pair.Start.
	NoStart bool
}

// Pair is two machines, each with a node on its own loop devices.
type Pair struct {
	t      T
	Dir    string
	MA, MB *Machine
	A, B   *Node
}

// NewPair makes two machines with loop-device disks, creates the volume
// on both, and starts both nodes (secondary) unless o.NoStart. It does
// not promote.
func NewPair(t T, o PairOptions) *Pair {
	t.Helper()
	if o.Name == "" {
		o.Name = "vol"
	}
	if o.NameB == "" {
		o.NameB = o.Name
	}
	if o.DiskSize == 0 {
		o.DiskSize = 128 << 20
	}
	if o.DiskSizeB == 0 {
		o.DiskSizeB = o.DiskSize
	}
	if o.Disks == 0 {
		o.Disks = 2
	}
	dir, err := os.MkdirTemp("", "netraid-pair-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &Pair{t: t, Dir: dir}
	p.MA, p.MB = MachinePair(t)
	mk := func(m *Machine, name, volName string, size int64) *Node {
		var disks []string
		for i := range o.Disks {
			d := ""
			if o.Disk != nil {
				d = o.Disk(dir, name, i, size)
			}
			if d == "" {
				d, _ = LoopDevice(t, dir, fmt.Sprintf("%s-d%d", name, i), size)
			}
			disks = append(disks, d)
		}
		other := p.MB
		if m == p.MB {
			other = p.MA
		}
		self, peer := fmt.Sprintf("%s:%d", m.Addr, PeerPort), fmt.Sprintf("%s:%d", other.Addr, PeerPort)
		otherName := "b"
		if name == "b" {
			otherName = "a"
		}
		var n *Node
		if o.Config {
			n = NewNode(t, name, dir, m, disks, o.Args...)
			n.Config = filepath.Join(dir, name+".toml")
			writeConfig(t, n, volName, self, peer, LinkSecret(t, dir), otherName)
		} else {
			args := append([]string{"--listen-peer", self, "--peer", peer, "--peer-timeout", "2s"}, LinkArgs(t, dir, name, otherName)...)
			n = NewNode(t, name, dir, m, disks, append(args, o.Args...)...)
		}
		n.CLI(append([]string{"create", "--name", volName}, disks...)...)
		return n
	}
	p.A = mk(p.MA, "a", o.Name, o.DiskSize)
	p.B = mk(p.MB, "b", o.NameB, o.DiskSizeB)
	if !o.NoStart {
		p.Start()
	}
	return p
}

// Start starts both nodes, A first, each with its Args as they are now.
func (p *Pair) Start() {
	p.t.Helper()
	p.A.Start()
	p.B.Start()
}

// writeConfig writes a node's config file: what NewPair otherwise gives
// as flags.
func writeConfig(t T, n *Node, volName, self, peer, secret, peerName string) {
	t.Helper()
	q := func(s string) string { return strconv.Quote(s) }
	var disks []string
	for _, d := range n.Disks {
		disks = append(disks, q(d))
	}
	text := fmt.Sprintf(`# node %s of a test pair
control = %s
name = %s

[volume.%s]
disks = [%s]
listen = %s
listen-peer = %s
peer = %s
peer-name = %s
peer-secret = %s
peer-timeout = "2s"
`, n.Name, q(n.Control), q(n.Name), volName, strings.Join(disks, ", "), q(n.Socket), q(self), q(peer), q(peerName), q(secret))
	if err := os.WriteFile(n.Config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WaitInSync waits until primary reports its peer connected, every leg
// up to date and nothing out of sync.
func WaitInSync(t T, primary *Node, timeout time.Duration) node.Status {
	t.Helper()
	return primary.WaitStatus(timeout, "the peer in sync", InSync)
}

// InSync reports whether a primary's status shows a connected peer with
// every leg up to date and nothing out of sync.
func InSync(st node.Status) bool {
	if st.Role != "primary" || st.Peer == nil || st.Peer.State != "connected" || st.OutOfSync != 0 || st.Resync != nil {
		return false
	}
	for _, l := range st.Legs {
		if l.State != "up-to-date" {
			return false
		}
	}
	return len(st.Legs) == 2
}

// superOf reads a disk's superblock through dump-meta.
func superOf(t T, n *Node, disk string) (dataOff, dataSize int64, member int) {
	t.Helper()
	out := n.CLI("dump-meta", "--json", disk)
	var sb struct {
		DataOffset     int64
		MemberDataSize int64
		Member         int
	}
	if err := json.Unmarshal([]byte(out), &sb); err != nil {
		t.Fatalf("dump-meta %s: %v\n%s", disk, err, out)
	}
	return sb.DataOffset, sb.MemberDataSize, sb.Member
}

// DataSums returns, member by member, the SHA-256 of each disk's data
// area (what the stripe holds, not the metadata).
func DataSums(t T, n *Node) map[int][32]byte {
	t.Helper()
	sums := map[int][32]byte{}
	for _, d := range n.Disks {
		off, size, member := superOf(t, n, d)
		f, err := os.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, off, size)); err != nil {
			t.Fatalf("reading %s: %v", d, err)
		}
		f.Close()
		var s [32]byte
		h.Sum(s[:0])
		sums[member] = s
	}
	return sums
}

// SameData fails the test unless the data areas of a's and b's disks are
// byte-identical, member by member.
func SameData(t T, a, b *Node) {
	t.Helper()
	sa, sb := DataSums(t, a), DataSums(t, b)
	if len(sa) != len(sb) {
		t.Fatalf("%s has %d members, %s has %d", a.Name, len(sa), b.Name, len(sb))
	}
	for m, s := range sa {
		if s != sb[m] {
			t.Fatalf("member %d: the data areas of %s and %s differ", m, a.Name, b.Name)
		}
	}
	t.Logf("the data areas of %s and %s are identical (%d members)", a.Name, b.Name, len(sa))
}

// DiskHashes returns the SHA-256 of each whole disk, to show that nothing
// was written to them.
func DiskHashes(t T, disks []string) []string {
	t.Helper()
	var out []string
	for _, d := range disks {
		f, err := os.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		out = append(out, fmt.Sprintf("%x", h.Sum(nil)))
	}
	return out
}

// File returns a path in the pair's directory.
func (p *Pair) File(name string) string { return filepath.Join(p.Dir, name) }

// CorruptData overwrites n bytes at off of member's data area on one of
// node's disks with a pattern, behind netraid's back.
func CorruptData(t T, nd *Node, member int, off, n int64) {
	t.Helper()
	for _, d := range nd.Disks {
		dataOff, _, m := superOf(t, nd, d)
		if m != member {
			continue
		}
		f, err := os.OpenFile(d, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xEE}, int(n)), dataOff+off); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s has no member %d", nd.Name, member)
}

// LinkSecret returns the path of the secret that authenticates the links
// of the pairs made in dir, making it the first time (as 'netraid secret
// new' does: 32 random bytes in hex, mode 0600).
func LinkSecret(t T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "link.secret")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// LinkArgs are the flags that authenticate a node's replication link as
// a user would deploy it: its name, its peer's, and the pair's secret
// (LinkSecret of dir).
func LinkArgs(t T, dir, name, peer string) []string {
	t.Helper()
	return []string{"--name", name, "--peer-name", peer, "--peer-secret", LinkSecret(t, dir)}
}
