package blockdev_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// stuckFlush is a flush function whose calls block until released, and
// which records how many started.
type stuckFlush struct {
	started atomic.Int32
	entered chan int32 // each call's number, as it starts
	release chan error // what the next call to be released returns
}

func newStuckFlush() *stuckFlush {
	return &stuckFlush{entered: make(chan int32, 16), release: make(chan error)}
}

func (s *stuckFlush) flush() error {
	s.entered <- s.started.Add(1)
	return <-s.release
}

func waiting(g *blockdev.FlushGroup) int { return g.Callers() }

// TestFlushGroupAlone: with nothing else going on, a flush runs at once
// and returns its own result.
func TestFlushGroupAlone(t *testing.T) {
	var g blockdev.FlushGroup
	calls := 0
	boom := errors.New("boom")
	if err := g.Do(func() error { calls++; return nil }); err != nil || calls != 1 {
		t.Fatalf("Do = %v after %d calls", err, calls)
	}
	if err := g.Do(func() error { calls++; return boom }); err != boom || calls != 2 {
		t.Fatalf("Do = %v after %d calls, want %v", err, calls, boom)
	}
	if g.Busy() {
		t.Fatal("Busy with nothing running")
	}
}

// TestFlushGroupShares: callers that come while a flush runs are not
// answered by it (it may have started before their writes completed);
// they share one more flush, which starts once the first ended, and get
// its result, not the first's.
func TestFlushGroupShares(t *testing.T) {
	var g blockdev.FlushGroup
	s := newStuckFlush()
	first := make(chan error, 1)
	go func() { first <- g.Do(s.flush) }()
	if n := <-s.entered; n != 1 {
		t.Fatalf("flush %d started first", n)
	}
	if !g.Busy() {
		t.Fatal("not Busy while a flush runs")
	}
	const n = 5
	results := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { results <- g.Do(s.flush) })
	}
	devtest.WaitFor(t, "the callers to wait", func() bool {
		return len(results) == 0 && waiting(&g) == n+1
	})
	firstErr := errors.New("the first flush failed")
	s.release <- firstErr
	if err := <-first; err != firstErr {
		t.Fatalf("the first caller got %v, want its own flush's %v", err, firstErr)
	}
	if m := <-s.entered; m != 2 {
		t.Fatalf("flush %d started second", m)
	}
	select {
	case err := <-results:
		t.Fatalf("a later caller was answered (%v) before the second flush ended", err)
	default:
	}
	s.release <- nil
	wg.Wait()
	for range n {
		if err := <-results; err != nil {
			t.Fatalf("a later caller got %v, want the second flush's nil", err)
		}
	}
	if got := s.started.Load(); got != 2 {
		t.Fatalf("%d flushes for %d callers, want 2", got, n+1)
	}
	if g.Busy() {
		t.Fatal("Busy after every caller returned")
	}
}

// TestFlushGroupChains: a caller that comes while the second round runs
// waits for a third; rounds never run at the same time.
func TestFlushGroupChains(t *testing.T) {
	var g blockdev.FlushGroup
	var running, overlap atomic.Int32
	s := newStuckFlush()
	flush := func() error {
		if running.Add(1) > 1 {
			overlap.Add(1)
		}
		defer running.Add(-1)
		return s.flush()
	}
	errs := make(chan error, 3)
	go func() { errs <- g.Do(flush) }()
	<-s.entered
	go func() { errs <- g.Do(flush) }()
	devtest.WaitFor(t, "the second caller to wait", func() bool { return waiting(&g) == 2 })
	s.release <- nil
	<-s.entered // the second round runs
	go func() { errs <- g.Do(flush) }()
	devtest.WaitFor(t, "the third caller to wait", func() bool { return waiting(&g) == 2 })
	s.release <- nil
	<-s.entered // the third round runs
	s.release <- nil
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if s.started.Load() != 3 || overlap.Load() != 0 {
		t.Fatalf("%d flushes, %d overlapping; want 3, none", s.started.Load(), overlap.Load())
	}
}

// TestFileConcurrentDurableWrites: durable writes and flushes from many
// goroutines at once (the writes that find others in progress go plain
// and share a flush) all succeed, and every block reads back as its last
// write left it.
func TestFileConcurrentDurableWrites(t *testing.T) {
	eachEngine(t, func(t *testing.T, e blockdev.Engine) {
		const writers, rounds, bs = 8, 16, 4096
		f := openFile(t, sparseFile(t, writers*bs), blockdev.FileOptions{Engine: e})
		t.Cleanup(func() { f.Close() })
		var wg sync.WaitGroup
		errs := make(chan error, writers*rounds*2)
		for w := range writers {
			wg.Go(func() {
				buf := blockdev.GetBuffer(bs, bs)
				defer blockdev.PutBuffer(buf)
				for r := range rounds {
					for i := range buf {
						buf[i] = byte(w*rounds + r)
					}
					if _, err := f.WriteAtFUA(buf, int64(w)*bs); err != nil {
						errs <- err
					}
					if r%4 == w%4 {
						if err := f.Flush(); err != nil {
							errs <- err
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got := blockdev.GetBuffer(writers*bs, bs)
		defer blockdev.PutBuffer(got)
		if _, err := f.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		for w := range writers {
			want := byte(w*rounds + rounds - 1)
			for i, b := range got[w*bs : (w+1)*bs] {
				if b != want {
					t.Fatalf("block %d byte %d = %d, want %d (the last write)", w, i, b, want)
				}
			}
		}
	})
}
