package main

import (
	"strings"
	"testing"

	"github.com/netraid/netraid/node"
)

// TestPrintVerify: status says whether the verify compares every region
// and when the last full one ran.
func TestPrintVerify(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v       node.VerifyStatus
		want    []string
		notWant []string
	}{
		{"used regions, no full one yet", node.VerifyStatus{Finished: "T1", Mismatched: []int64{3}},
			[]string{"last verify of the used regions (T1): 1 mismatched"}, []string{"full verify"}},
		{"full and repaired", node.VerifyStatus{Full: true, Finished: "T2", LastFull: "T2", Mismatched: []int64{3}, Repaired: true},
			[]string{"last verify of every region (T2): 1 mismatched region(s), repaired"}, []string{"last full verify"}},
		{"used regions after a full one", node.VerifyStatus{Finished: "T3", LastFull: "T2"},
			[]string{"verify of the used regions (T3)", "last full verify: T2"}, nil},
		{"full one running", node.VerifyStatus{Running: true, Full: true, Done: 1 << 20, Total: 2 << 20, LastFull: "T2"},
			[]string{"verify of every region: 1.0 MiB of 2.0 MiB", "last full verify: T2"}, nil},
		{"failed", node.VerifyStatus{Full: true, Error: "boom", Finished: "T4"},
			[]string{"verify of every region failed: boom"}, []string{"last full verify"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printVerify(&b, &tc.v)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("%q lacks %q", b.String(), w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(b.String(), w) {
					t.Errorf("%q has %q", b.String(), w)
				}
			}
		})
	}
}
