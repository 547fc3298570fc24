package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
)

// interruptGrace is how long the story may take to notice that a signal
// tore it down before the program exits anyway.
const interruptGrace = 30 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := make(chan int, 1)
	scripts := make(chan *harness.Script, 1)
	go func() { code <- runMain(ctx, os.Args[1:], os.Stdout, os.Stderr, scripts) }()
	var s *harness.Script
	select {
	case c := <-code:
		os.Exit(c)
	case s = <-scripts:
	}
	select {
	case c := <-code:
		os.Exit(c)
	case <-ctx.Done():
	}
	stop() // a second signal ends the program at once
	fmt.Fprintln(os.Stderr, "\ndemo: interrupted; tearing everything down")
	s.Interrupt()
	select {
	case <-code:
	case <-time.After(interruptGrace):
	}
	fmt.Fprintln(os.Stderr, "demo: interrupted; cleaned up")
	os.Exit(130)
}

// runMain parses the flags, tells the story and returns the exit status:
// 0 when every step ran and no acknowledged message was lost, 1
// otherwise, 2 on bad usage, 130 when ctx ended (a signal). It hands the
// script to scripts once it exists, so that a signal can tear it down.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer, scripts chan<- *harness.Script) int {
	fs := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.String("disk-size", "128MiB", "size of each loop-device disk")
	msgs := fs.Int("messages", 2000, "messages acknowledged before the disk fails (and half as many again before machine a dies)")
	msgSize := fs.Int("message-size", 1024, "bytes per message")
	verbose := fs.BoolP("verbose", "v", false, "show the broker's and the harness's logs too")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: demo [flags]\n\nnetraid's whole story on one machine (needs root; NETRAID_BIN names the netraid binary).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ds, err := humanize.ParseBytes(*size)
	if err != nil || *msgs < 2 || *msgSize < 32 || fs.NArg() != 0 {
		fmt.Fprintf(stderr, "demo: bad flags: --disk-size %q, --messages %d (at least 2), --message-size %d (at least 32), %d arguments\n", *size, *msgs, *msgSize, fs.NArg())
		return 2
	}
	o := options{DiskSize: int64(ds), Messages: *msgs, MsgSize: *msgSize, Verbose: *verbose}
	if msg := ready(); msg != "" {
		fmt.Fprintf(stderr, "demo: %s\n", msg)
		return 1
	}
	logs := io.Discard
	if o.Verbose {
		logs = stdout
	}
	s := harness.NewScript(logs)
	scripts <- s
	a := newAccount(stdout)
	st := &story{ctx: ctx, s: s, a: a, o: o, atFail: -1}
	fmt.Fprintf(stdout, "netraid demo: a message broker on a replicated volume loses a disk, then its whole machine\n")
	fmt.Fprintf(stdout, "(netraid binary %s)\n", harness.Binary(s))
	err = s.Run(st.run)
	if ctx.Err() != nil {
		a.end()
		fmt.Fprintf(stdout, "\nINTERRUPTED during step %d; everything it made is torn down.\n", len(a.steps))
		return 130
	}
	if !a.summary(st.c, err) {
		return 1
	}
	return 0
}

// ready says what is missing to run the demo here, or "".
func ready() string {
	if os.Geteuid() != 0 {
		return "needs root (loop devices, mounts, network namespaces): run it as root, or `sudo make demo`"
	}
	if err := broker.Available(); err != nil {
		return fmt.Sprintf("%v (./scripts/deps.sh --broker installs it)", err)
	}
	s := harness.NewScript(io.Discard)
	if err := s.Run(func() {
		harness.RequireRoot(s, "ip", "losetup", "nbdfuse", "fusermount3", "mkfs.ext4", "e2fsck",
			"etcd", "nsenter", "start-stop-daemon", "findmnt", "flock", "blkid")
		harness.Binary(s)
	}); err != nil {
		return err.Error()
	}
	return ""
}
