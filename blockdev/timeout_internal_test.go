package blockdev

import (
	"sync"
	"testing"
	"time"
)

// TestTimeoutReusesWorkers: calls reuse idle workers. A worker that has
// just answered may not be back waiting when the next call comes, so a
// caller can start a second one, but no more than that per caller.
func TestTimeoutReusesWorkers(t *testing.T) {
	w := WithTimeout(NewMem(1<<20), time.Minute)
	p := make([]byte, 4096)
	for i := range 100 {
		if _, err := w.WriteAt(p, int64(i%256)*4096); err != nil {
			t.Fatal(err)
		}
	}
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if started > 2 {
		t.Errorf("100 calls one after another started %d workers, want at most 2", started)
	}
	const callers = 8
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			b := make([]byte, 4096)
			for i := range 50 {
				if _, err := w.ReadAt(b, int64(g*50+i)%256*4096); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	w.mu.Lock()
	started = w.started
	w.mu.Unlock()
	if started > 2*(1+callers) {
		t.Errorf("%d callers started %d workers in all, want at most %d", callers, started, 2*(1+callers))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
