package tests

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/node"
	"github.com/netraid/netraid/tests/harness"
)

// TestAutoFailoverPrimaryStopsCleanly: the primary of a fenced pair,
// its peer connected and in sync, is stopped cleanly (SIGTERM, as
// `systemctl stop netraid` does: planned maintenance). Its shutdown
// reports no error; the secondary promotes itself (its promoter would
// start the service there); the old primary, started again, rejoins as
// the secondary and is synced: a clean stop hands over, it does not
// leave a split brain for an operator.
func TestAutoFailoverPrimaryStopsCleanly(t *testing.T) {
	fp := newFencedPair(t, 3)
	prim := fp.waitInSync(t, time.Minute)
	sec := fp.other(prim)
	harness.StartFio(t, prim.URI("vol"), "--rw=write", "--bs=1M", "--size=16M").Wait(t, 2*time.Minute)
	fp.waitInSync(t, time.Minute)
	prim.Stop()
	if last := lastLines(prim.Log, 3); strings.Contains(last, "netraid serve:") {
		t.Errorf("%s's clean stop ended in an error:\n%s", prim.Name, last)
	}
	sec.WaitStatus(time.Minute, "the secondary promoted itself", func(s node.Status) bool { return s.Role == "primary" })
	prim.Start()
	sec.WaitStatus(time.Minute, "the old primary back as an in-sync secondary", harness.InSync)
}

// lastLines returns the last n lines of a file.
func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
