package repl

import (
	"errors"
	"strings"
	"testing"

	"github.com/netraid/netraid/meta"
)

func TestHelloRoundTrip(t *testing.T) {
	h := Hello{
		Proto: Proto, Software: "v1", Node: "a", Peer: "b", Token: 42,
		Name: "vol", SetUUID: "x", Size: 1 << 30, Region: 1 << 20, Role: meta.Primary, DiskState: meta.UpToDate,
		Gens: Gens{Current: 1, Bitmap: 2, History: [4]uint64{3}}, OutOfSync: 7,
		Verdict: BitmapSync, Discard: true, NeedFull: true, Rebuild: &RebuildPoint{Member: 1, Cursor: 4096}, Dirty: []byte{1, 2},
	}
	got, err := UnmarshalHello(MarshalHello(h))
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != h.Verdict || got.Role != h.Role || got.DiskState != h.DiskState || got.Gens != h.Gens ||
		*got.Rebuild != *h.Rebuild || string(got.Dirty) != string(h.Dirty) || got.Token != h.Token || got.Peer != h.Peer {
		t.Fatalf("round trip: %+v, want %+v", got, h)
	}
	// The wire says the states in words, as status does.
	if s := string(MarshalHello(h)); !strings.Contains(s, `"role":"primary"`) || !strings.Contains(s, `"verdict":"bitmap-sync"`) {
		t.Fatalf("encoded hello: %s", s)
	}
}

func TestHelloRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"not JSON", "hello", ErrProtocol},
		{"another version", `{"proto":1,"name":"vol"}`, ErrVersion},
		{"no version", `{"name":"vol"}`, ErrVersion},
		{"unknown role", `{"proto":2,"role":"boss"}`, ErrProtocol},
		{"unknown verdict", `{"proto":2,"verdict":"maybe"}`, ErrProtocol},
		{"too large", `{"proto":2,"name":"` + strings.Repeat("x", MaxHello) + `"}`, ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := UnmarshalHello([]byte(tc.in)); !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalHello(%.40q) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: MsgSyncStart, Gens: Gens{Current: 5, Bitmap: 4}, Total: 1 << 20, Verdict: FullSync},
		{Kind: MsgSyncDone, Gens: Gens{Current: 5}},
		{Kind: MsgPing},
		{Kind: MsgRebuildCursor, Rebuild: &RebuildPoint{Member: 0, Cursor: 8 << 20}},
	} {
		got, err := UnmarshalMessage(MarshalMessage(m))
		if err != nil {
			t.Fatalf("%s: %v", m.Kind, err)
		}
		if got.Kind != m.Kind || got.Gens != m.Gens || got.Total != m.Total || got.Verdict != m.Verdict ||
			(m.Rebuild != nil && *got.Rebuild != *m.Rebuild) {
			t.Fatalf("round trip: %+v, want %+v", got, m)
		}
	}
}

func TestMessageRefused(t *testing.T) {
	for _, in := range []string{
		"{", `{"kind":"reboot"}`, `{"kind":"rebuild-cursor"}`, `{"kind":"sync-start","verdict":7}`,
	} {
		if _, err := UnmarshalMessage([]byte(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("UnmarshalMessage(%q) = %v, want ErrProtocol", in, err)
		}
	}
}

func TestChecksumRequest(t *testing.T) {
	off, n, err := unmarshalChecksum(marshalChecksum(1<<20, 4096))
	if err != nil || off != 1<<20 || n != 4096 {
		t.Fatalf("round trip: %d %d %v", off, n, err)
	}
	for _, b := range [][]byte{nil, {opChecksum}, append(marshalChecksum(0, 1), 0), {'X', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, _, err := unmarshalChecksum(b); !errors.Is(err, ErrProtocol) {
			t.Errorf("unmarshalChecksum(%x) = %v, want ErrProtocol", b, err)
		}
	}
	neg := marshalChecksum(0, 1)
	neg[1] = 0x80
	if _, _, err := unmarshalChecksum(neg); !errors.Is(err, ErrProtocol) {
		t.Errorf("a negative offset: %v", err)
	}
}
