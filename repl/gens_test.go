package repl

import "testing"

func TestDecideTable(t *testing.T) {
	const g1, g2, g3, g4 = 0x11, 0x22, 0x33, 0x44
	tests := []struct {
		name     string
		src, dst Gens
		discard  bool
		want     Verdict
	}{
		{"fresh target", Gens{Current: g1}, Gens{}, false, FullSync},
		{"fresh source, target has data", Gens{}, Gens{Current: g1}, false, TargetNewer},
		{"same generation", Gens{Current: g1}, Gens{Current: g1}, false, NoSync},
		{"target is what source diverged from", Gens{Current: g2, Bitmap: g1}, Gens{Current: g1}, false, BitmapSync},
		{"source is what target diverged from", Gens{Current: g1}, Gens{Current: g2, Bitmap: g1}, false, TargetNewer},
		{"stale source, discard target", Gens{Current: g1}, Gens{Current: g2, Bitmap: g1}, true, BitmapSync},
		{"both diverged from g1", Gens{Current: g2, Bitmap: g1}, Gens{Current: g3, Bitmap: g1}, false, SplitBrain},
		{"split brain, discard target", Gens{Current: g2, Bitmap: g1}, Gens{Current: g3, Bitmap: g1}, true, BitmapSync},
		{"target in old history", Gens{Current: g3, History: [4]uint64{g2, g1}}, Gens{Current: g1}, false, FullSync},
		{"source in the target's history (the target recorded the only copy)", Gens{Current: g1}, Gens{Current: g2, History: [4]uint64{g1}}, false, TargetNewer},
		{"source in the target's history, discard target", Gens{Current: g1}, Gens{Current: g2, History: [4]uint64{g1}}, true, FullSync},
		{"source in the target's history, but diverged since", Gens{Current: g1, Bitmap: g3}, Gens{Current: g2, History: [4]uint64{g1}}, false, SplitBrain},
		{"related but crossed", Gens{Current: g3, Bitmap: g2, History: [4]uint64{g1}}, Gens{Current: g4, Bitmap: g1}, false, SplitBrain},
		{"unrelated", Gens{Current: g1}, Gens{Current: g2}, false, Unrelated},
		{"unrelated, discard target", Gens{Current: g1}, Gens{Current: g2}, true, FullSync},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.src, tt.dst, tt.discard); got != tt.want {
				t.Fatalf("Decide(%v, %v, %v) = %v, want %v", tt.src, tt.dst, tt.discard, got, tt.want)
			}
		})
	}
}

// TestGensLifecycle plays the events of a pair's life and checks the
// verdict at each meeting.
func TestGensLifecycle(t *testing.T) {
	var a, b Gens
	// A is promoted on a new volume: the first full sync starts a
	// generation.
	a.Diverge()
	if v := Decide(a, b, false); v != FullSync {
		t.Fatalf("first meeting: %v, want full-sync", v)
	}
	b.SyncedAsTarget(a)
	a.SyncedAsSource()
	if v := Decide(a, b, false); v != NoSync {
		t.Fatalf("after sync: %v, want no-sync", v)
	}

	// A dies; B is promoted while disconnected and takes writes.
	b.Diverge()
	if v := Decide(b, a, false); v != BitmapSync {
		t.Fatalf("old primary rejoins: %v, want bitmap-sync", v)
	}
	if v := Decide(a, b, false); v != TargetNewer {
		t.Fatalf("old primary as source: %v, want target-newer", v)
	}
	a.SyncedAsTarget(b)
	b.SyncedAsSource()

	// The link is cut; the primary B diverges, and A is promoted too.
	b.Diverge()
	a.Diverge()
	if v := Decide(b, a, false); v != SplitBrain {
		t.Fatalf("both promoted: %v, want split-brain", v)
	}
	if v := Decide(a, b, false); v != SplitBrain {
		t.Fatalf("both promoted, other way: %v, want split-brain", v)
	}
	if v := Decide(b, a, true); v != BitmapSync {
		t.Fatalf("discard A: %v, want bitmap-sync", v)
	}
	a.SyncedAsTarget(b)
	b.SyncedAsSource()
	if v := Decide(b, a, false); v != NoSync {
		t.Fatalf("resolved: %v, want no-sync", v)
	}

	// A primary that loses its peer twice keeps its first bitmap
	// generation: its bitmap still covers everything since then.
	b.Diverge()
	first := b.Bitmap
	b.Diverge()
	if b.Bitmap != first {
		t.Fatalf("second divergence moved bitmap generation %x -> %x", first, b.Bitmap)
	}
	if v := Decide(b, a, false); v != BitmapSync {
		t.Fatalf("after two divergences: %v, want bitmap-sync", v)
	}
}

// TestParseVerdict: every verdict's name reads back as that verdict, and
// nothing else reads as one.
func TestParseVerdict(t *testing.T) {
	for v := NoSync; v <= TargetNewer; v++ {
		if got, ok := parseVerdict(v.String()); !ok || got != v {
			t.Errorf("parseVerdict(%q) = %v, %v; want %v", v.String(), got, ok, v)
		}
	}
	for _, s := range []string{"", "split brain", "verdict(9)", "Split-Brain"} {
		if v, ok := parseVerdict(s); ok {
			t.Errorf("parseVerdict(%q) = %v, want none", s, v)
		}
	}
}
