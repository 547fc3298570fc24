package main

import (
	"testing"

	"github.com/dustin/go-humanize"
)

func TestExactSize(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{{0, "0"}, {1, "1"}, {1000, "1kB"}, {1024, "1KiB"}, {16 << 20, "16MiB"}, {100e6, "100MB"}, {3 << 30, "3GiB"}, {1<<20 + 1, "1048577"}, {1536, "1536"}} {
		got := exactSize(tt.n)
		if got != tt.want {
			t.Errorf("exactSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
		back, err := humanize.ParseBytes(got)
		if err != nil || int64(back) != tt.n {
			t.Errorf("%q reads back as %d (%v), not %d", got, back, err, tt.n)
		}
	}
}
