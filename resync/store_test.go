package resync

import (
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// testStore wraps a Mem as a bitmap store: it counts writes and flushes,
// can fail writes, and can hold flushes until released.
type testStore struct {
	*blockdev.Mem
	mu      sync.Mutex
	writes  int
	flushes int
	fail    error
	gate    chan struct{} // while non-nil, Flush waits for it to close
	inFlush int           // flushes waiting at the gate
}

func newTestStore(size int64) *testStore { return &testStore{Mem: blockdev.NewMem(size)} }

func (s *testStore) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	s.writes++
	err := s.fail
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return s.Mem.WriteAt(p, off)
}

func (s *testStore) Flush() error {
	s.mu.Lock()
	gate := s.gate
	if gate != nil {
		s.inFlush++
	}
	s.mu.Unlock()
	if gate != nil {
		<-gate
		s.mu.Lock()
		s.inFlush--
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.flushes++
	s.mu.Unlock()
	return s.Mem.Flush()
}

func (s *testStore) counts() (writes, flushes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.flushes
}

// hold makes flushes wait until the returned function is called.
func (s *testStore) hold() (release func()) {
	g := make(chan struct{})
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.gate = nil
		s.mu.Unlock()
		close(g)
	}
}

func (s *testStore) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
