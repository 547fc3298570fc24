package devtest

import (
	"testing"
	"time"
)

// WaitTimeout is how long WaitFor waits before it fails the test.
const WaitTimeout = 10 * time.Second

// WaitFor polls cond every millisecond until it holds, and fails the test
// naming what it waited for if that takes longer than WaitTimeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, WaitTimeout, what, cond)
}

// WaitWithin is WaitFor with a time-out of its own.
func WaitWithin(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// FirstDiff returns the index of the first byte where a and b differ, or
// -1 if they are equal (a shorter one differs where it ends).
func FirstDiff(a, b []byte) int { return diff(a, b) }
