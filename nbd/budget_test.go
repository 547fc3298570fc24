package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
)

func TestBufferCost(t *testing.T) {
	for _, c := range []struct {
		n    int
		want int64
	}{
		{0, 0}, {1, 4096}, {4096, 4096}, {4097, 8192}, {64 << 10, 64 << 10},
		{(64 << 10) + 1, 128 << 10}, {8 << 20, 8 << 20}, {(8 << 20) + 1, (8 << 20) + 1 + 4096}, {32 << 20, (32 << 20) + 4096},
	} {
		if got := bufferCost(c.n); got != c.want {
			t.Errorf("bufferCost(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

func TestMemBudgetSplit(t *testing.T) {
	b := newMemBudget(64<<20, 16)
	if b.reserve != 2<<20 || b.shared != 32<<20 {
		t.Fatalf("64 MiB for 16: reserve %d shared %d, want 2 MiB and 32 MiB", b.reserve, b.shared)
	}
	// The least budget gives each connection the least reserve, and
	// lends a request of the largest size.
	for _, conns := range []int{1, 256, 4096} {
		b = newMemBudget(minMemoryBudget(conns, 32<<20), conns)
		if b.reserve < minReserve || b.shared < bufferCost(32<<20) || int64(conns)*b.reserve+b.shared > minMemoryBudget(conns, 32<<20) {
			t.Fatalf("the least budget for %d: reserve %d shared %d", conns, b.reserve, b.shared)
		}
	}
	if o := (ServerOptions{MemoryBudget: 1}).withDefaults(); o.MemoryBudget != minMemoryBudget(o.MaxConnections, o.MaxRequest) {
		t.Fatalf("a budget of 1 byte became %d", o.MemoryBudget)
	}
}

// acquireAsync starts an acquire; the channel yields its result.
func acquireAsync(ctx context.Context, b *memBudget, a *memAccount, n int64) chan error {
	ch := make(chan error, 1)
	go func() { ch <- b.acquire(ctx, a, n) }()
	return ch
}

func waiting(t *testing.T, b *memBudget, n int) {
	t.Helper()
	waitFor(t, "waiters", func() bool { return queued(b) == n })
}

func queued(b *memBudget) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

func granted(t *testing.T, ch chan error) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("acquire: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("acquire was not granted")
	}
}

// TestMemBudgetReserveAndShare: a connection fills its reserve without
// waiting, whatever the others hold; beyond it, requests wait for the
// shared part and are served to the connection that borrows least.
func TestMemBudgetReserveAndShare(t *testing.T) {
	ctx := context.Background()
	b := &memBudget{reserve: 100, shared: 1000}
	var hog, hog2, small, late memAccount
	if err := b.acquire(ctx, &hog, 1100); err != nil { // its reserve and all the shared part
		t.Fatal(err)
	}
	if err := b.acquire(ctx, &small, 60); err != nil { // within the reserve
		t.Fatal(err)
	}
	if err := b.acquire(ctx, &small, 40); err != nil { // the reserve's rest
		t.Fatal(err)
	}
	hogMore := acquireAsync(ctx, b, &hog, 10)
	waiting(t, b, 1)
	if err := b.acquire(ctx, &hog2, 100); err != nil { // reserve: no waiting behind others
		t.Fatal(err)
	}
	smallMore := acquireAsync(ctx, b, &small, 300) // would borrow 300
	waiting(t, b, 2)
	lateMore := acquireAsync(ctx, b, &late, 150) // would borrow 50
	waiting(t, b, 3)
	// Grants happen in release, so the queue tells at once who got in.
	// 300 come back: small, which borrows nothing, goes before hog, which
	// came first but borrows 700; late, next in order, does not fit.
	b.release(&hog, 300)
	granted(t, smallMore)
	if n := queued(b); n != 2 {
		t.Fatalf("%d waiting after 300 came back, want late and hog", n)
	}
	// 100 more: late, which borrows nothing, then hog.
	b.release(&hog, 100)
	granted(t, lateMore)
	granted(t, hogMore)
	if st := b.stats(); st.held != b.reserve*4+b.lent || st.waits != 3 || st.peak > 4*b.reserve+b.shared {
		t.Fatalf("stats %+v lent %d", st, b.lent)
	}
}

// TestMemBudgetCancel: a waiter whose connection ends leaves the queue
// and lets the next one go.
func TestMemBudgetCancel(t *testing.T) {
	b := &memBudget{reserve: 0, shared: 100}
	var a, big, next memAccount
	if err := b.acquire(context.Background(), &a, 100); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bigCh := acquireAsync(ctx, b, &big, 80)
	waiting(t, b, 1)
	nextCh := acquireAsync(context.Background(), b, &next, 30)
	waiting(t, b, 2)
	b.release(&a, 40) // 40 free: big is first in order and does not fit
	if n := queued(b); n != 2 {
		t.Fatalf("%d waiting, want big and next", n)
	}
	cancel()
	if err := <-bigCh; err == nil {
		t.Fatal("a cancelled acquire succeeded")
	}
	granted(t, nextCh)
	if b.held != 90 || b.lent != 90 || big.held != 0 {
		t.Fatalf("held %d lent %d, the cancelled one %d", b.held, b.lent, big.held)
	}
}

// TestMemBudgetBound: under random concurrent use by as many accounts as
// the budget is split for, each with a reader that acquires and handlers
// that release (as a connection has), what is held never exceeds the
// budget, and everything comes back.
func TestMemBudgetBound(t *testing.T) {
	const conns, total = 8, 8 << 20
	b := newMemBudget(total, conns)
	var wg sync.WaitGroup
	for i := range conns {
		held := make(chan int64, 16)
		var a memAccount
		wg.Go(func() { // the handlers
			for n := range held {
				b.release(&a, n)
			}
		})
		wg.Go(func() { // the reader
			defer close(held)
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for range 2000 {
				n := bufferCost(1 + r.IntN(2<<20))
				if err := b.acquire(context.Background(), &a, n); err != nil {
					t.Error(err)
					return
				}
				held <- n
			}
		})
	}
	wg.Wait()
	st := b.stats()
	if st.peak > total || st.held != 0 || b.lent != 0 {
		t.Fatalf("peak %d (budget %d), left held %d lent %d", st.peak, total, st.held, b.lent)
	}
	t.Logf("peak %d of %d, %d waits", st.peak, total, st.waits)
}

// TestMemoryBudgetHogs: clients that fill the budget with reads whose
// replies they never take do not starve a well-behaved client, the
// buffers held stay within the budget, and the hogs' requests wait
// rather than fail: once they read, every one is answered.
func TestMemoryBudgetHogs(t *testing.T) {
	const (
		maxConns = 8
		budget   = 8 << 20 // 512 KiB reserved per connection, 4 MiB shared
		readSize = 1 << 20
		reads    = 8
		hogs     = 6
	)
	dev := blockdev.NewMem(16 << 20)
	data := pattern(9, 16<<20)
	dev.WriteAt(data, 0)
	ts := startServer(t, "unix", ServerOptions{MaxConnections: maxConns, MaxRequest: readSize, MemoryBudget: budget, ReplyTimeout: time.Hour},
		Export{Name: "x", Dev: dev})
	var hogConns []*raw
	for h := range hogs {
		r := ts.raw(t)
		r.open("x", false, false)
		for i := range reads {
			r.request(CmdRead, 0, uint64(i), uint64((h+i)%16)*readSize, readSize, nil)
		}
		hogConns = append(hogConns, r)
	}
	waitFor(t, "the hogs to exhaust the budget", func() bool { return ts.Stats().BufferWaits > 0 })
	good := startWellBehaved(t, ts, "x", 15<<20)
	waitFor(t, "the well-behaved client to make progress", func() bool { return ts.Stats().Requests >= hogs*reads+100 })
	if err := good.stop(); err != nil {
		t.Fatalf("the well-behaved client: %v", err)
	}
	st := ts.Stats()
	t.Logf("peak %d bytes of buffers (budget %d), %d waits", st.PeakBufferBytes, budget, st.BufferWaits)
	if st.PeakBufferBytes > budget {
		t.Fatalf("buffers peaked at %d bytes, budget %d", st.PeakBufferBytes, budget)
	}
	// Every hog reads at once: a read larger than a connection's reserve
	// waits for what the others borrow, so a hog read alone may wait for
	// one that does not read yet (the budget promises progress to
	// requests within a reserve, and to the rest once buffers come back).
	errs := make(chan error, hogs)
	for h, r := range hogConns {
		go func() { errs <- readHog(r.nc, h, reads, readSize, data) }()
	}
	for range hogs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// The last buffers go back just after their replies are written.
	waitFor(t, "every buffer back", func() bool { st := ts.Stats(); return st.BufferBytes == 0 && st.InFlight == 0 })
	if st := ts.Stats(); st.Errors != 0 {
		t.Fatalf("after the hogs read: %+v", st)
	}
}

// readHog reads the replies to hog h's reads of readSize each from nc,
// and checks each is a success with the data at its offset.
func readHog(nc net.Conn, h, reads, readSize int, data []byte) error {
	for range reads {
		nc.SetReadDeadline(time.Now().Add(testWait))
		hdr := make([]byte, simpleReplySize)
		if _, err := io.ReadFull(nc, hdr); err != nil {
			return fmt.Errorf("hog %d: reply header: %w", h, err)
		}
		if e := binary.BigEndian.Uint32(hdr[4:]); e != 0 {
			return fmt.Errorf("hog %d: a read failed with errno %d", h, e)
		}
		i := binary.BigEndian.Uint64(hdr[8:])
		off := (uint64(h) + i) % 16 * uint64(readSize)
		got := make([]byte, readSize)
		if _, err := io.ReadFull(nc, got); err != nil {
			return fmt.Errorf("hog %d: read %d's data: %w", h, i, err)
		}
		if !bytes.Equal(got, data[off:off+uint64(readSize)]) {
			return fmt.Errorf("hog %d read %d: wrong data", h, i)
		}
	}
	return nil
}
