package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// requireBroker skips unless a real broker can run here as root.
func requireBroker(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, the package's broker)")
	}
	if err := Available(); err != nil {
		t.Skipf("%v (run ./scripts/deps.sh --broker)", err)
	}
}

func startBroker(t *testing.T, o Options) *Broker {
	t.Helper()
	b, err := Start(t, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("broker %s pid %d ready in %v", b.Endpoint(), b.Pid(), b.StartupTime().Round(time.Millisecond))
	return b
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// The reference test: persistent messages with receipts, SIGKILL, a new
// broker on the same store; every acknowledged message comes back.
func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	requireBroker(t)
	data := filepath.Join(t.TempDir(), "store")
	b1 := startBroker(t, Options{DataDir: data})

	p, err := StartProducer(ctxFor(t, time.Minute), ProducerOptions{Endpoint: b1.Endpoint(), Queue: "crash", Count: 500, Conns: 2, Size: 256})
	if err != nil {
		t.Fatal(err)
	}
	quiet := p.Wait()
	if quiet.Err != nil || !slices.Equal(quiet.Acked, seqs(0, 500)) {
		t.Fatalf("500 sends: err %v, %d acknowledged", quiet.Err, len(quiet.Acked))
	}

	// The broker dies while messages are in flight.
	p, err = StartProducer(ctxFor(t, time.Minute), ProducerOptions{
		Endpoint: b1.Endpoint(), Queue: "crash", First: 500, Count: 100000, Duration: time.Minute, Conns: 2, Size: 256,
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(p.Acked()) < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d acknowledged in a minute", len(p.Acked()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b1.Kill(); err != nil {
		t.Fatal(err)
	}
	busy := p.Wait()
	if busy.Err == nil {
		t.Fatal("the producer saw no error although the broker was killed")
	}
	t.Logf("killed with %d more acknowledged, %d in flight: %v", len(busy.Acked), len(busy.Unknown), busy.Err)

	b2 := startBroker(t, Options{DataDir: data})
	got, err := DrainAll(ctxFor(t, time.Minute), b2.Endpoint(), "crash", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	acked := append(quiet.Acked, busy.Acked...)
	if lost := Lost(acked, got); len(lost) != 0 {
		t.Fatalf("%d acknowledged messages lost: %v", len(lost), lost[:min(20, len(lost))])
	}
	sent := append(slices.Clone(acked), busy.Unknown...)
	dups := 0
	for n, c := range got {
		if !slices.Contains(sent, n) {
			t.Errorf("received %d, which was never sent", n)
		}
		dups += c - 1
	}
	t.Logf("received %d numbers, %d redelivered, %d of %d in flight survived",
		len(got), dups, len(got)-len(acked), len(busy.Unknown))
	checkLayout(t, data, b2)
}

// checkLayout: the store is in DataDir, logs and configuration in WorkDir.
func checkLayout(t *testing.T, data string, b *Broker) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(data, "kahadb", "db-1.log")); err != nil {
		t.Errorf("no KahaDB journal in the data directory: %v", err)
	}
	work := filepath.Dir(b.LogPath())
	for _, name := range []string{"broker.log", "activemq.xml", "log4j.properties"} {
		if _, err := os.Stat(filepath.Join(work, name)); err != nil {
			t.Errorf("work directory: %v", err)
		}
	}
	var held []string
	filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(data, path)
		held = append(held, rel)
		if strings.HasSuffix(d.Name(), ".xml") || strings.HasPrefix(d.Name(), "activemq.log") || d.Name() == "broker.log" {
			t.Errorf("%s in the data directory", path)
		}
		return nil
	})
	t.Logf("data directory holds %v", held)
}

func TestCleanStopAndRestart(t *testing.T) {
	requireBroker(t)
	data := filepath.Join(t.TempDir(), "store")
	b := startBroker(t, Options{DataDir: data})
	c, err := b.Endpoint().Dial(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Server(), "ActiveMQ/") {
		t.Errorf("server %q", c.Server())
	}
	for n := range 20 {
		if err := c.Send("stop", Body(n, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatalf("Stop: %v\n%s", err, b.Tail(2000))
	}
	if !strings.Contains(b.Tail(4000), "is shutdown") {
		t.Errorf("no clean shutdown in the log:\n%s", b.Tail(2000))
	}
	if err := b.Kill(); err != nil {
		t.Errorf("Kill after Stop: %v", err)
	}

	b = startBroker(t, Options{DataDir: data})
	got, err := DrainAll(ctxFor(t, time.Minute), b.Endpoint(), "stop", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if lost := Lost(seqs(0, 20), got); len(lost) != 0 || len(got) != 20 {
		t.Fatalf("after a clean restart: lost %v, got %v", lost, got)
	}
	again, err := DrainAll(ctxFor(t, time.Minute), b.Endpoint(), "stop", 500*time.Millisecond)
	if err != nil || len(again) != 0 {
		t.Fatalf("acknowledged messages came back: %v, %v", again, err)
	}
}

// Two brokers in one namespace with default ports do not clash.
func TestTwoBrokersSideBySide(t *testing.T) {
	requireBroker(t)
	dir := t.TempDir()
	a := startBroker(t, Options{DataDir: filepath.Join(dir, "a"), WorkDir: filepath.Join(dir, "wa")})
	b := startBroker(t, Options{DataDir: filepath.Join(dir, "b"), WorkDir: filepath.Join(dir, "wb")})
	if a.Addr() == b.Addr() {
		t.Fatalf("both on %s", a.Addr())
	}
	for _, x := range []*Broker{a, b} {
		c, err := x.Endpoint().Dial(ctxFor(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send("side", Body(1, 0)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

func TestBrokerInNetns(t *testing.T) {
	requireBroker(t)
	ns := fmt.Sprintf("nrbrk%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { runErr("ip", "netns", "delete", ns) })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")

	b := startBroker(t, Options{DataDir: filepath.Join(t.TempDir(), "store"), Netns: ns})
	if _, err := os.Stat("/proc/" + itoa(b.Pid()) + "/ns/net"); err != nil {
		t.Fatal(err)
	}
	if mine, theirs := readlink(t, "/proc/self/ns/net"), readlink(t, "/proc/"+itoa(b.Pid())+"/ns/net"); mine == theirs {
		t.Fatalf("the broker runs in the test's network namespace %s", mine)
	}
	if comm := strings.TrimSpace(readFile(t, "/proc/"+itoa(b.Pid())+"/comm")); comm != "java" {
		t.Fatalf("pid %d is %q, not the JVM", b.Pid(), comm)
	}
	c, err := b.Endpoint().Dial(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send("ns", Body(7, 0)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c, err := Dial(ctxFor(t, 5*time.Second), b.Addr()); err == nil {
		c.Close()
		t.Fatalf("%s answers in the test's namespace too", b.Addr())
	}
	got, err := DrainAll(ctxFor(t, time.Minute), b.Endpoint(), "ns", time.Second)
	if err != nil || got[7] != 1 {
		t.Fatalf("drain in the namespace: %v, %v", got, err)
	}
}

func TestStartFailures(t *testing.T) {
	requireBroker(t)
	t.Run("JVM refuses to start", func(t *testing.T) {
		_, err := Start(t, Options{DataDir: t.TempDir(), Heap: "1k"})
		if !errors.Is(err, ErrExited) {
			t.Fatalf("Start: %v, want ErrExited", err)
		}
	})
	t.Run("not ready in time", func(t *testing.T) {
		_, err := Start(t, Options{DataDir: t.TempDir(), StartTimeout: time.Millisecond})
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("Start: %v, want ErrNotReady", err)
		}
	})
	t.Run("port taken", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, err = Start(t, Options{DataDir: t.TempDir(), Port: l.Addr().(*net.TCPAddr).Port})
		if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "Address already in use") {
			t.Fatalf("Start: %v, want ErrExited with the bind error", err)
		}
	})
	t.Run("no data directory", func(t *testing.T) {
		if _, err := Start(t, Options{}); err == nil {
			t.Fatal("Start without a data directory succeeded")
		}
	})
	t.Run("not installed", func(t *testing.T) {
		_, err := Start(t, Options{DataDir: t.TempDir(), Home: t.TempDir()})
		if !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("Start: %v, want ErrNotInstalled", err)
		}
	})
}

func TestKillAfterUnexpectedExit(t *testing.T) {
	requireBroker(t)
	b := startBroker(t, Options{DataDir: t.TempDir()})
	// Someone else kills the JVM: the broker reports it on the first Kill.
	if p, err := os.FindProcess(b.Pid()); err == nil {
		p.Kill()
	}
	select {
	case <-b.Done():
	case <-time.After(time.Minute):
		t.Fatal("broker not reaped a minute after SIGKILL")
	}
	if err := b.Kill(); !errors.Is(err, ErrExited) {
		t.Fatalf("Kill of an exited broker: %v, want ErrExited", err)
	}
	if err := b.Stop(); err != nil {
		t.Fatalf("Stop after Kill: %v", err)
	}
}
