package nbd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
)

// TestCombinerBatchesWhileWriting: messages sent while the writer is in
// its write go out together in its next one, in the order they queued,
// each sender returns only after its message was written, and a batch's
// error is every one of its senders'.
func TestCombinerBatchesWhileWriting(t *testing.T) {
	var w combiner
	var mu sync.Mutex
	var batches [][]string
	written := map[string]bool{}
	entered, release := make(chan struct{}), make(chan struct{})
	errBatch := errors.New("the second batch failed")
	write := func(batch []*queuedMsg) error {
		mu.Lock()
		var b []string
		for _, q := range batch {
			for _, p := range [][]byte{q.head, q.data} {
				if len(p) > 0 {
					b = append(b, string(p))
					written[string(p)] = true
				}
			}
		}
		batches = append(batches, b)
		n := len(batches)
		mu.Unlock()
		if n == 1 {
			close(entered)
			<-release
			return nil
		}
		return errBatch
	}

	first := make(chan error, 1)
	go func() { first <- w.send([]byte("h0"), []byte("d0"), write) }()
	<-entered
	const n = 5
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		go func() {
			head := fmt.Sprintf("h%d", i)
			err := w.send([]byte(head), nil, write)
			mu.Lock()
			if !written[head] {
				t.Errorf("send of %s returned before its message was written", head)
			}
			mu.Unlock()
			errs <- err
		}()
		// Queue in order, one at a time.
		devtest.WaitFor(t, "the message to queue", func() bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			return len(w.queue) == i
		})
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the first batch's sender: %v", err)
	}
	for range n {
		if err := <-errs; !errors.Is(err, errBatch) {
			t.Fatalf("a sender of the second batch got %v, want %v", err, errBatch)
		}
	}
	want := [][]string{{"h0", "d0"}, {"h1", "h2", "h3", "h4", "h5"}}
	if fmt.Sprint(batches) != fmt.Sprint(want) {
		t.Fatalf("batches %q, want %q", batches, want)
	}
	if w.writing || len(w.queue) != 0 {
		t.Fatalf("after the last batch: writing %v, %d queued", w.writing, len(w.queue))
	}
}

// TestClientConcurrentWrites: many goroutines writing through one client
// at once (their requests combine into shared writev's, or under one TLS
// cork) each land whole at their own offsets, payloads unmixed; blocks
// of several TLS records among them, and reads of them (the server's
// replies combine the same way) return what was written.
func TestClientConcurrentWrites(t *testing.T) {
	var pki *testPKI
	for _, tc := range []struct {
		network string
		tls     bool
	}{{"unix", false}, {"tcp", false}, {"tcp", true}} {
		name := tc.network
		if tc.tls {
			name += "-tls"
			if pki == nil {
				pki = newTestPKI(t)
			}
		}
		t.Run(name, func(t *testing.T) {
			const writers, each, size = 8, 48, 4096
			const big = 5 * size // four records and a bit, on TLS
			mem := blockdev.NewMem(writers * each * big)
			so, co := ServerOptions{}, ClientOptions{Export: "m"}
			if tc.tls {
				so.TLS, co.TLS = pki.server(t, "a"), pki.client(t, "alice")
			}
			ts := startServer(t, tc.network, so, Export{Name: "m", Dev: mem})
			c := ts.dial(t, co)
			if c.TLS() != tc.tls {
				t.Fatalf("the client is on TLS: %v, want %v", c.TLS(), tc.tls)
			}
			// Block k is at k*big; odd ones are big, even ones one page.
			length := func(k int) int { return size + (k%2)*(big-size) }
			var wg sync.WaitGroup
			for g := range writers {
				wg.Go(func() {
					for i := range each {
						k := g*each + i
						if _, err := c.WriteAt(numbered(k, length(k)), int64(k*big)); err != nil {
							t.Errorf("write %d: %v", k, err)
							return
						}
						got := make([]byte, length(k))
						if _, err := c.ReadAt(got, int64(k*big)); err != nil || !bytes.Equal(got, numbered(k, length(k))) {
							t.Errorf("read back block %d: %v", k, err)
							return
						}
					}
				})
			}
			wg.Wait()
			all := mem.Bytes()
			for k := range writers * each {
				if got := all[k*big : k*big+length(k)]; !bytes.Equal(got, numbered(k, length(k))) {
					t.Fatalf("block %d does not hold what was written to it", k)
				}
			}
		})
	}
}

// numbered is a pattern that starts with k, so that no two blocks of the
// test are alike.
func numbered(k, n int) []byte {
	b := pattern(byte(k), n)
	binary.BigEndian.PutUint32(b, uint32(k))
	return b
}
