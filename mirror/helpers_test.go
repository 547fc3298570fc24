package mirror

import (
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/resync"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	rs      = 64 << 10 // region size
	volSize = 64 * rs  // 4 MiB: 64 regions
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// store is a bitmap store: a Mem behind a fault wrapper, which counts the
// store's flushes, fails it and holds its flushes.
type store struct {
	*fault.Device
	mem *blockdev.Mem
}

func newStore() *store {
	mem := blockdev.NewMem(resync.StoreSize(volSize, rs))
	return &store{Device: fault.Wrap(mem), mem: mem}
}

// Crash drops the writes the store has not flushed.
func (s *store) Crash() { s.mem.Crash() }

// rig is a mirror of two Mem legs behind fault wrappers: "local" and the
// remote "peer".
type rig struct {
	t      *testing.T
	m      *Mirror
	bm     *resync.Bitmap
	st     *store
	mem    map[string]*blockdev.Mem
	fault  map[string]*fault.Device
	leg    map[string]*Leg
	mu     sync.Mutex
	failed []string // OnLegFailed calls, by leg name
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, mem: map[string]*blockdev.Mem{}, fault: map[string]*fault.Device{}, leg: map[string]*Leg{}}
	r.st = newStore()
	r.openBitmap()
	m, err := New(volSize, r.bm, Options{Logger: quiet, OnLegFailed: func(l *Leg, err error) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.failed = append(r.failed, l.Name())
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	r.add("local", InSync, true)
	r.add("peer", InSync, false)
	t.Cleanup(func() {
		r.m.Close()
		r.bm.Close()
	})
	return r
}

func (r *rig) openBitmap() {
	bm, err := resync.OpenBitmap(r.st, volSize, rs, resync.BitmapOptions{FlushInterval: time.Hour})
	if err != nil {
		r.t.Fatal(err)
	}
	r.bm = bm
}

// add attaches a fresh zeroed Mem leg under name.
func (r *rig) add(name string, state LegState, local bool) *Leg {
	r.t.Helper()
	mem := blockdev.NewMem(volSize)
	return r.attach(name, fault.Wrap(mem), mem, state, local)
}

func (r *rig) attach(name string, f *fault.Device, mem *blockdev.Mem, state LegState, local bool) *Leg {
	r.t.Helper()
	l, err := r.m.AddLeg(name, f, state, local)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mem[name], r.fault[name], r.leg[name] = mem, f, l
	return l
}

// readd removes the leg called name and attaches its device again, healed,
// as a Resyncing leg: a peer coming back.
func (r *rig) readd(name string) *Leg {
	r.t.Helper()
	if err := r.m.RemoveLeg(r.leg[name]); err != nil {
		r.t.Fatal(err)
	}
	r.fault[name].Heal()
	return r.attach(name, r.fault[name], r.mem[name], Resyncing, r.leg[name].Local())
}

func (r *rig) failedLegs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failed...)
}

func (r *rig) write(off int64, p []byte) {
	r.t.Helper()
	if n, err := r.m.WriteAt(p, off); err != nil || n != len(p) {
		r.t.Fatalf("WriteAt(off %d, len %d) = %d, %v", off, len(p), n, err)
	}
}

func (r *rig) flush() {
	r.t.Helper()
	if err := r.m.Flush(); err != nil {
		r.t.Fatalf("Flush: %v", err)
	}
}

// same fails the test unless the legs hold the same bytes.
func (r *rig) same(a, b string) {
	r.t.Helper()
	x, y := r.mem[a].Bytes(), r.mem[b].Bytes()
	if i := devtest.FirstDiff(x, y); i >= 0 {
		r.t.Fatalf("legs %s and %s differ at byte %d (region %d): %#02x vs %#02x", a, b, i, i/rs, x[i], y[i])
	}
}

func dirty(bm *resync.Bitmap) []int64 {
	var out []int64
	for r, ok := bm.NextDirty(0); ok; r, ok = bm.NextDirty(r + 1) {
		out = append(out, r)
	}
	return out
}

func randBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], rng.Uint64())
	}
	return p[:n]
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) { devtest.WaitFor(t, what, cond) }
