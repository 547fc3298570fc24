package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/node"
)

func TestProgressBar(t *testing.T) {
	for _, tt := range []struct {
		f     float64
		width int
		want  string
	}{
		{0, 4, "[....]"}, {1, 4, "[####]"}, {0.5, 4, "[##..]"}, {0.49, 10, "[#####.....]"},
		{-1, 3, "[...]"}, {2, 3, "[###]"}, {0.999, 10, "[##########]"},
	} {
		if got := progressBar(tt.f, tt.width); got != tt.want {
			t.Errorf("progressBar(%v, %d) = %q, want %q", tt.f, tt.width, got, tt.want)
		}
	}
}

func resyncing(done int64) node.Status {
	return node.Status{
		Volume: "vol", Role: "primary", DiskState: "up-to-date",
		Peer:      &node.PeerStatus{State: "connected"},
		Legs:      []node.LegStatus{{Name: "local", State: "up-to-date"}, {Name: "peer", State: "resyncing"}},
		OutOfSync: 64<<20 - done,
		Resync:    &node.ResyncStatus{Kind: "bitmap", Done: done, Total: 64 << 20, Rate: 8 << 20, ETASeconds: float64(64<<20-done) / (8 << 20)},
	}
}

// TestWatchPlain: not on a terminal, each refresh is a line with the
// role, the link, the legs and the resync's progress, rate and ETA; a
// daemon that does not answer is a line too, and the watch goes on
// until its context ends.
func TestWatchPlain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seq := []func() (node.Status, error){
		func() (node.Status, error) { return resyncing(16 << 20), nil },
		func() (node.Status, error) { return node.Status{}, errors.New("connection refused") },
		func() (node.Status, error) { return resyncing(48 << 20), nil },
	}
	calls := 0
	var out bytes.Buffer
	w := &watcher{w: &out, interval: 100 * time.Millisecond, get: func(context.Context) (node.Status, error) {
		f := seq[calls]
		calls++
		if calls == len(seq) {
			cancel() // interrupted after the last answer
		}
		return f()
	}}
	if err := w.run(ctx); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || calls != 3 {
		t.Fatalf("%d calls, %d lines:\n%s", calls, len(lines), out.String())
	}
	for i, want := range [][]string{
		{"vol primary disk:up-to-date peer:connected leg:local=up-to-date leg:peer=resyncing out-of-sync:48MiB resync (bitmap):25.0% 8.0MiB/s eta:6s"},
		{"no answer: connection refused"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
		if _, err := time.Parse(time.RFC3339, strings.Fields(lines[i])[0]); err != nil {
			t.Errorf("line %d does not start with the time: %q", i, lines[i])
		}
		if strings.Contains(lines[i], "\x1b") {
			t.Errorf("line %d has terminal escapes: %q", i, lines[i])
		}
	}
}

// TestWatchTerminal: on a terminal a refresh redraws the screen in place
// with a progress bar; a verify, for which the daemon gives no rate, gets
// one from how far it went since the previous refresh.
func TestWatchTerminal(t *testing.T) {
	var out bytes.Buffer
	w := &watcher{w: &out, interval: time.Second, cols: 100, prev: map[string]sample{}}
	st := resyncing(32 << 20)
	st.Verify = &node.VerifyStatus{Running: true, Done: 10 << 20, Total: 100 << 20}
	t0 := time.Now()
	if err := w.show(st, nil, t0); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	st.Verify.Done = 30 << 20
	if err := w.show(st, nil, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"\x1b[H", "\x1b[K\n", "\x1b[J", "role:primary", "peer", "leg peer",
		"resync (bitmap): [###############...............] 50.0%", "ETA 4s",
		"verify: [#########.....................] 30.0%  30 MiB of 100 MiB  10 MiB/s  ETA 7s",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("frame lacks %q:\n%s", want, s)
		}
	}
}
