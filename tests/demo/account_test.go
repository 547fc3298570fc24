package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func accountOf(steps ...string) (*account, *bytes.Buffer) {
	var b bytes.Buffer
	a := newAccount(&b)
	for _, s := range steps {
		a.step(s)
	}
	return a, &b
}

func TestSummaryPass(t *testing.T) {
	a, b := accountOf("one", "two")
	c := counts{acked: 3000, afterFail: 1000, unanswered: 4, received: 3002, fromUnanswered: 2, drained: true, failover: 9400 * time.Millisecond}
	if !a.summary(c, nil) {
		t.Fatalf("a story with nothing lost did not pass:\n%s", b)
	}
	for _, want := range []string{"\n1. one\n", "\n2. two\n", "total", "3000", "3002", "(2 of the unanswered, 0 redelivered)", "acknowledged but lost", "first message acknowledged on b: 9.4s", "PASS: all 3000"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the account lacks %q:\n%s", want, b)
		}
	}
}

func TestSummaryFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    counts
		err  error
		fail func(*account)
		want string
	}{
		{"lost", counts{acked: 10, received: 9, lost: 1, drained: true}, nil, nil, "FAIL: 1 acknowledged messages lost"},
		{"phantom", counts{acked: 10, received: 11, phantom: 1, drained: true}, nil, nil, "received but never sent"},
		{"aborted", counts{}, errors.New("broker did not start"), nil, "FAIL: broker did not start"},
		{"not drained", counts{acked: 10}, nil, nil, "the story did not get that far"},
		{"step failed", counts{acked: 10, received: 10, drained: true}, nil, func(a *account) { a.failed("disk fail refused") }, "FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := accountOf("one")
			if tc.fail != nil {
				tc.fail(a)
			}
			if a.summary(tc.c, tc.err) {
				t.Fatalf("passed:\n%s", b)
			}
			if !strings.Contains(b.String(), tc.want) || strings.Contains(b.String(), "PASS") {
				t.Fatalf("want %q and no PASS:\n%s", tc.want, b)
			}
		})
	}
}
