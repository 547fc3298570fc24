package node

import (
	"errors"
	"testing"
)

// TestFullVerifyDone: only a full verify that ended without error and
// left the copies the same ends the need for a full verify.
func TestFullVerifyDone(t *testing.T) {
	boom := errors.New("leg failed")
	for _, tc := range []struct {
		name         string
		full, repair bool
		mismatched   int
		err          error
		want         bool
	}{
		{"full, copies the same", true, false, 0, nil, true},
		{"full, mismatches repaired", true, true, 3, nil, true},
		{"full, mismatches left", true, false, 3, nil, false},
		{"full, failed", true, true, 3, boom, false},
		{"full, failed before finding anything", true, false, 0, boom, false},
		{"used regions only, the same", false, false, 0, nil, false},
		{"used regions only, repaired", false, true, 2, nil, false},
	} {
		if got := fullVerifyDone(tc.full, tc.repair, tc.mismatched, tc.err); got != tc.want {
			t.Errorf("%s: fullVerifyDone = %v, want %v", tc.name, got, tc.want)
		}
	}
}
