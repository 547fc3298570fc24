package broker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestBodySeq(t *testing.T) {
	for _, tt := range []struct{ seq, size, len int }{
		{0, 0, len("netraid-seq:0\n")},
		{42, 1, len("netraid-seq:42\n")},
		{-3, 0, len("netraid-seq:-3\n")},
		{1234567, 4096, 4096},
	} {
		b := Body(tt.seq, tt.size)
		if len(b) != tt.len {
			t.Errorf("Body(%d, %d) is %d bytes, want %d", tt.seq, tt.size, len(b), tt.len)
		}
		got, err := Seq(b)
		if err != nil || got != tt.seq {
			t.Errorf("Seq(Body(%d, %d)) = %d, %v", tt.seq, tt.size, got, err)
		}
	}
	for _, bad := range []string{"", "netraid-seq:", "netraid-seq:12", "netraid-seq:x\n", "seq:1\n", "netraid-seq:1 \n"} {
		if _, err := Seq([]byte(bad)); !errors.Is(err, ErrBadBody) {
			t.Errorf("Seq(%q): %v, want ErrBadBody", bad, err)
		}
	}
}

func TestLost(t *testing.T) {
	got := Lost([]int{5, 1, 2, 3}, map[int]int{2: 1, 3: 2, 9: 1})
	if !slices.Equal(got, []int{1, 5}) {
		t.Fatalf("Lost = %v, want [1 5]", got)
	}
	if got := Lost(nil, nil); got != nil {
		t.Fatalf("Lost(nil, nil) = %v", got)
	}
}

func seqs(first, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = first + i
	}
	return s
}

func drainOK(t *testing.T, ep Endpoint) map[int]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := DrainAll(ctx, ep, "q", 200*time.Millisecond)
	if err != nil {
		t.Fatalf("DrainAll: %v", err)
	}
	return got
}

func TestProducerCountBound(t *testing.T) {
	s := startQueueServer(t, 0)
	p, err := StartProducer(context.Background(), ProducerOptions{
		Endpoint: s.endpoint(), Queue: "q", First: 100, Count: 200, Conns: 3, Size: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Wait()
	if r.Err != nil || len(r.Unknown) != 0 || !slices.Equal(r.Acked, seqs(100, 200)) {
		t.Fatalf("report: err %v, unknown %v, %d acked (%v…)", r.Err, r.Unknown, len(r.Acked), r.Acked[:min(5, len(r.Acked))])
	}
	got := drainOK(t, s.endpoint())
	if lost := Lost(r.Acked, got); len(lost) != 0 || len(got) != 200 {
		t.Fatalf("lost %v, received %d numbers", lost, len(got))
	}
	for n, c := range got {
		if c != 1 {
			t.Fatalf("%d received %d times", n, c)
		}
	}
}

func TestProducerStop(t *testing.T) {
	s := startQueueServer(t, 0)
	p, err := StartProducer(context.Background(), ProducerOptions{Endpoint: s.endpoint(), Queue: "q", Count: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(p.Acked()) < 20 {
		if time.Now().After(deadline) {
			t.Fatal("no 20 acknowledgements in 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := p.Stop()
	if r.Err != nil || len(r.Unknown) != 0 || !slices.Equal(r.Acked, seqs(0, len(r.Acked))) {
		t.Fatalf("report after Stop: err %v, unknown %v, acked %d", r.Err, r.Unknown, len(r.Acked))
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

func TestProducerDurationBound(t *testing.T) {
	s := startQueueServer(t, 0)
	p, err := StartProducer(context.Background(), ProducerOptions{
		Endpoint: s.endpoint(), Queue: "q", Count: 1 << 30, Duration: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Wait(); r.Err != nil || len(r.Unknown) != 0 {
		t.Fatalf("report: %v, unknown %v", r.Err, r.Unknown)
	}
}

// A broker crash in the middle: every acknowledged number survives; the
// one in flight is reported as unknown; the producer's error says why.
func TestProducerCrash(t *testing.T) {
	s := startQueueServer(t, 50)
	p, err := StartProducer(context.Background(), ProducerOptions{Endpoint: s.endpoint(), Queue: "q", Count: 1000, Conns: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Wait()
	if r.Err == nil {
		t.Fatal("no error although the server crashed")
	}
	if len(r.Acked) > 50 || len(r.Unknown) == 0 || len(r.Unknown) > 2 {
		t.Fatalf("acked %d (max 50), unknown %v (1 or 2)", len(r.Acked), r.Unknown)
	}
	for _, n := range r.Unknown {
		if _, found := slices.BinarySearch(r.Acked, n); found {
			t.Fatalf("%d both acknowledged and unknown", n)
		}
	}
	s.recover()
	got := drainOK(t, s.endpoint())
	if lost := Lost(r.Acked, got); len(lost) != 0 {
		t.Fatalf("acknowledged but lost: %v", lost)
	}
}

func TestDrainAllCountsRedeliveries(t *testing.T) {
	s := startQueueServer(t, 0)
	c := dial(t, s.endpoint().Addr)
	for _, n := range []int{1, 2, 2, 3} {
		if err := c.Send("q", Body(n, 0)); err != nil {
			t.Fatal(err)
		}
	}
	// A consumer that takes everything and acknowledges only number 1:
	// the rest comes back to the next one.
	if err := c.Subscribe("q"); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		m, err := c.Receive(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := Seq(m.Body); n == 1 {
			if err := c.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got := drainOK(t, s.endpoint())
	want := map[int]int{2: 2, 3: 1}
	if len(got) != len(want) || got[2] != 2 || got[3] != 1 {
		t.Fatalf("drained %v, want %v", got, want)
	}
	if again := drainOK(t, s.endpoint()); len(again) != 0 {
		t.Fatalf("acknowledged messages came back: %v", again)
	}
}

func TestDrainAllBadBody(t *testing.T) {
	s := startQueueServer(t, 0)
	c := dial(t, s.endpoint().Addr)
	if err := c.Send("q", []byte("not ours")); err != nil {
		t.Fatal(err)
	}
	if _, err := DrainAll(context.Background(), s.endpoint(), "q", time.Second); !errors.Is(err, ErrBadBody) {
		t.Fatalf("DrainAll: %v, want ErrBadBody", err)
	}
}

func TestDrainAllHonoursContext(t *testing.T) {
	s := startQueueServer(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// idle is longer than the context: the context wins.
	if _, err := DrainAll(ctx, s.endpoint(), "q", time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DrainAll: %v, want context.DeadlineExceeded", err)
	}
}
