package resync

import (
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
)

// testStore is a bitmap store: a Mem behind a fault wrapper, which counts
// the store's writes and flushes, fails them and holds flushes.
type testStore struct {
	*fault.Device
	mem *blockdev.Mem
}

func newTestStore(size int64) *testStore {
	mem := blockdev.NewMem(size)
	return &testStore{Device: fault.Wrap(mem), mem: mem}
}

// Crash drops the writes the store has not flushed.
func (s *testStore) Crash() { s.mem.Crash() }

// counts returns how many writes and flushes reached the store, failed
// ones included.
func (s *testStore) counts() (writes, flushes int) {
	return s.Count(fault.Write), s.Count(fault.Flush)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) { devtest.WaitFor(t, what, cond) }
