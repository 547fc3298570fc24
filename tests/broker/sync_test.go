package broker

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The broker's acknowledgement means the message is on disk: traced with
// strace, every RECEIPT the JVM writes for a SEND is preceded by an fsync
// (or fdatasync) of a KahaDB journal file that completed after the
// previous RECEIPT. The sends are sequential, so no sync can serve two.
func TestReceiptFollowsJournalSync(t *testing.T) {
	requireBroker(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("needs strace")
	}
	b := startBroker(t, Options{DataDir: filepath.Join(t.TempDir(), "store")})
	c, err := b.Endpoint().Dial(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Send("sync", Body(-1, 0)); err != nil { // the journal writer exists
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "strace.out")
	tracer := exec.Command(strace, "-f", "-qq", "-y", "-s", "48", "-e", "signal=none",
		"-e", "trace=fsync,fdatasync,write,writev,pwrite64,sendto,sendmsg",
		"-o", out, "-p", strconv.Itoa(b.Pid()))
	if err := tracer.Start(); err != nil {
		t.Fatal(err)
	}
	traced := make(chan struct{})
	go func() { tracer.Wait(); close(traced) }()
	stopTracer := func() {
		tracer.Process.Signal(os.Interrupt) // strace detaches and exits
		select {
		case <-traced:
		case <-time.After(30 * time.Second):
			tracer.Process.Kill()
			<-traced
		}
	}
	defer stopTracer()
	waitTraced(t, b.Pid(), tracer.Process.Pid, traced)

	const n = 50
	for i := range n {
		if err := c.Send("sync", Body(i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	stopTracer()

	receipts, unsynced, syncs := checkTrace(t, out)
	if receipts != n {
		t.Fatalf("traced %d RECEIPT writes for %d sends", receipts, n)
	}
	if unsynced != 0 {
		t.Fatalf("%d of %d receipts written with no journal sync since the previous one", unsynced, n)
	}
	t.Logf("%d receipts, %d journal syncs", receipts, syncs)
}

// waitTraced waits until strace (pid tracer) is attached to every thread
// of pid.
func waitTraced(t *testing.T, pid, tracer int, traced <-chan struct{}) {
	t.Helper()
	want := "TracerPid:\t" + strconv.Itoa(tracer) + "\n"
	deadline := time.Now().Add(time.Minute)
	for {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/status")
		all := len(tasks) > 0
		for _, s := range tasks {
			b, err := os.ReadFile(s)
			if err == nil && !strings.Contains(string(b), want) {
				all = false
				break
			}
		}
		if all {
			return
		}
		select {
		case <-traced:
			t.Fatal("strace exited before attaching")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("strace did not attach to every thread in a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	traceLine   = regexp.MustCompile(`^(\d+) +(.*)$`)
	syncCall    = regexp.MustCompile(`^f(data)?sync\(\d+<([^>]*)>\)`)
	resumed     = regexp.MustCompile(`^<\.\.\. f(data)?sync resumed>\) += 0`)
	journalFile = regexp.MustCompile(`/kahadb/db-\d+\.log$`)
)

// checkTrace reads strace -f output and counts RECEIPT frames written,
// those among them with no journal sync completed since the previous one,
// and journal syncs.
func checkTrace(t *testing.T, path string) (receipts, unsynced, syncs int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pending := map[string]bool{} // thread → its unfinished call is a journal sync
	fresh := false               // a journal sync completed since the last receipt
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := traceLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		tid, call := m[1], m[2]
		if s := syncCall.FindStringSubmatch(call); s != nil && journalFile.MatchString(s[2]) {
			if strings.HasSuffix(call, "<unfinished ...>") {
				pending[tid] = true
			} else if strings.HasSuffix(call, "= 0") {
				syncs++
				fresh = true
			}
			continue
		}
		if resumed.MatchString(call) && pending[tid] {
			delete(pending, tid)
			syncs++
			fresh = true
			continue
		}
		if strings.Contains(call, `"RECEIPT\n`) {
			receipts++
			if !fresh {
				unsynced++
			}
			fresh = false
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return receipts, unsynced, syncs
}
