package blockdev_test

import (
	"bytes"
	"testing"

	"github.com/netraid/netraid/blockdev"
)

func TestVecHead(t *testing.T) {
	bufs := [][]byte{[]byte("abc"), []byte("defg"), []byte("h")}
	for _, c := range []struct {
		n    int64
		want []string
	}{
		{0, nil},
		{2, []string{"ab"}},
		{3, []string{"abc"}},
		{5, []string{"abc", "de"}},
		{8, []string{"abc", "defg", "h"}},
		{100, []string{"abc", "defg", "h"}},
	} {
		got := blockdev.VecHead(bufs, c.n)
		if len(got) != len(c.want) {
			t.Errorf("VecHead(%d) = %q, want %q", c.n, got, c.want)
			continue
		}
		for i := range got {
			if !bytes.Equal(got[i], []byte(c.want[i])) {
				t.Errorf("VecHead(%d) = %q, want %q", c.n, got, c.want)
				break
			}
		}
	}
	if string(bytes.Join(bufs, nil)) != "abcdefgh" {
		t.Errorf("VecHead changed its argument: %q", bufs)
	}
}
