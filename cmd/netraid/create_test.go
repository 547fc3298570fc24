package main

import (
	"strings"
	"testing"

	"github.com/netraid/netraid/meta"
)

// TestFlagsLine: dump-meta names the flags it knows and shows the others
// as a number.
func TestFlagsLine(t *testing.T) {
	if got := flagsLine(0); got != "none" {
		t.Fatalf("no flags: %q", got)
	}
	got := flagsLine(meta.FlagNeedFullSync | meta.FlagUsedIncomplete | meta.FlagNeedFullVerify | 1<<5)
	for _, want := range []string{"need-full-sync", "used-incomplete", "need-full-verify", "0x20"} {
		if !strings.Contains(got, want) {
			t.Fatalf("flags line %q lacks %q", got, want)
		}
	}
	if got := flagsLine(meta.FlagUsedIncomplete); strings.Contains(got, "need-full-sync") || strings.Contains(got, "0x") {
		t.Fatalf("one flag shown as %q", got)
	}
}
