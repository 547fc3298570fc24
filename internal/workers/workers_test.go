package workers

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReuse: functions one after another reuse the first worker, except
// when it has not yet gone back to waiting: at most two in all.
func TestReuse(t *testing.T) {
	p := New(time.Minute)
	defer func() { p.Close(); p.Wait() }()
	for range 200 {
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
	}
	if n := p.Started(); n > 2 {
		t.Errorf("200 functions one after another started %d workers, want at most 2", n)
	}
}

// TestConcurrent: every function runs, concurrent ones on workers of their
// own, and no more workers start than functions ran at once (twice over,
// for workers on their way back).
func TestConcurrent(t *testing.T) {
	p := New(time.Minute)
	const callers, each = 8, 100
	var ran atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				done := make(chan struct{})
				p.Go(func() { ran.Add(1); close(done) })
				<-done
			}
		})
	}
	wg.Wait()
	p.Close()
	p.Wait()
	if got := ran.Load(); got != callers*each {
		t.Fatalf("ran %d functions, want %d", got, callers*each)
	}
	if n := p.Started(); n > 2*callers {
		t.Errorf("%d callers started %d workers, want at most %d", callers, n, 2*callers)
	}
}

// TestBlockedWorkerDoesNotBlockGo: a function that blocks holds only its
// worker; the next function runs on another.
func TestBlockedWorkerDoesNotBlockGo(t *testing.T) {
	p := New(time.Minute)
	release := make(chan struct{})
	p.Go(func() { <-release })
	done := make(chan struct{})
	p.Go(func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a function waited behind a blocked one")
	}
	p.Close()
	close(release)
	p.Wait()
}

// TestIdleWorkersLeave: a worker with nothing to do ends by itself.
func TestIdleWorkersLeave(t *testing.T) {
	p := New(time.Millisecond)
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	waited := make(chan struct{})
	go func() { p.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("an idle worker did not leave without Close")
	}
	p.Close()
}
