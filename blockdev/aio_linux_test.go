package blockdev_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// TestFileEngineAuto: the zero FileOptions take native AIO where the
// kernel sets it up, and say so.
func TestFileEngineAuto(t *testing.T) {
	f := openFile(t, sparseFile(t, 1<<20), blockdev.FileOptions{})
	t.Cleanup(func() { f.Close() })
	want := blockdev.EngineAIO
	if err := blockdev.AIOAvailable(); err != nil {
		want = blockdev.EngineSync
	}
	if got := f.Engine(); got != want {
		t.Fatalf("Engine() = %v, want %v", got, want)
	}
}

func TestParseEngine(t *testing.T) {
	for _, e := range engines {
		if got, err := blockdev.ParseEngine(e.String()); err != nil || got != e {
			t.Errorf("ParseEngine(%q) = %v, %v", e.String(), got, err)
		}
	}
	if _, err := blockdev.ParseEngine("uring"); err == nil {
		t.Error("ParseEngine(uring) succeeded")
	}
}

// TestAIOManyInFlight writes and reads back, from many goroutines at once,
// more transfers than the AIO context holds, plain and vectored, each to
// its own range; every range must read back what its writer wrote.
func TestAIOManyInFlight(t *testing.T) {
	eachEngine(t, func(t *testing.T, e blockdev.Engine) {
		const writers, per = 300, 8192
		f := openFile(t, sparseFile(t, writers*per), blockdev.FileOptions{Engine: e})
		t.Cleanup(func() { f.Close() })
		run := func(fn func(i int, off int64) error) {
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for i := range writers {
				wg.Go(func() {
					if err := fn(i, int64(i*per)); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		}
		run(func(i int, off int64) error {
			b := blockdev.GetBuffer(per, 4096)
			defer blockdev.PutBuffer(b)
			devtest.FillPattern(b, int64(i+1), off)
			var err error
			if i%2 == 0 {
				_, err = f.WriteAt(b, off)
			} else {
				_, err = f.WriteAtv([][]byte{b[:per/2], b[per/2:]}, off)
			}
			return err
		})
		run(func(i int, off int64) error {
			b := blockdev.GetBuffer(per, 4096)
			defer blockdev.PutBuffer(b)
			var err error
			if i%3 == 0 {
				_, err = f.ReadAtv([][]byte{b[:per/2], b[per/2:]}, off)
			} else {
				_, err = f.ReadAt(b, off)
			}
			if err != nil {
				return err
			}
			if !bytes.Equal(b, devtest.Pattern(int64(i+1), off, per)) {
				return fmt.Errorf("range %d read back other data", i)
			}
			return nil
		})
	})
}

// TestAIOCloseRacesTransfers closes a File while goroutines keep reading
// and writing it: each call either succeeds or fails with ErrClosed, and
// Close leaves no goroutine behind once they are done (TestMain checks).
func TestAIOCloseRacesTransfers(t *testing.T) {
	eachEngine(t, func(t *testing.T, e blockdev.Engine) {
		const workers, rounds = 16, 200
		f := openFile(t, sparseFile(t, workers*4096), blockdev.FileOptions{Engine: e})
		var wg sync.WaitGroup
		started := make(chan struct{}, workers)
		errs := make(chan error, workers)
		for i := range workers {
			wg.Go(func() {
				b := blockdev.GetBuffer(4096, 4096)
				defer blockdev.PutBuffer(b)
				started <- struct{}{}
				for r := range rounds {
					var err error
					if r%2 == 0 {
						_, err = f.WriteAt(b, int64(i*4096))
					} else {
						_, err = f.ReadAt(b, int64(i*4096))
					}
					if errors.Is(err, blockdev.ErrClosed) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		for range workers {
			<-started
		}
		if err := f.Close(); err != nil {
			t.Fatalf("Close with transfers in flight: %v", err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("transfer racing Close failed with something other than ErrClosed: %v", err)
		}
		b := blockdev.GetBuffer(4096, 4096)
		defer blockdev.PutBuffer(b)
		if _, err := f.ReadAt(b, 0); !errors.Is(err, blockdev.ErrClosed) {
			t.Fatalf("ReadAt after Close = %v, want ErrClosed", err)
		}
	})
}
