package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netraid/netraid/tests/harness"
)

// account prints the story as it happens: numbered steps, the commands
// run on each machine with their output, and a timing per step; then a
// summary.
type account struct {
	w     io.Writer
	steps []stepTime
	begin time.Time // of the step under way
	total time.Time
	kept  string // where the logs of a story that went wrong were kept
}

// anyFailed reports whether a step was marked failed.
func (a *account) anyFailed() bool {
	for _, st := range a.steps {
		if st.err != "" {
			return true
		}
	}
	return false
}

type stepTime struct {
	title string
	took  time.Duration
	err   string // the step did not do what it should: why
}

func newAccount(w io.Writer) *account { return &account{w: w, total: time.Now()} }

// step ends the step under way (if any) and starts the next.
func (a *account) step(title string) {
	a.end()
	a.steps = append(a.steps, stepTime{title: title})
	a.begin = time.Now()
	fmt.Fprintf(a.w, "\n%d. %s\n", len(a.steps), title)
}

// end records the time of the step under way and prints it.
func (a *account) end() {
	if len(a.steps) == 0 || a.begin.IsZero() {
		return
	}
	st := &a.steps[len(a.steps)-1]
	st.took = time.Since(a.begin)
	a.begin = time.Time{}
	fmt.Fprintf(a.w, "   (%s)\n", round(st.took))
}

// failed marks the step under way as not having done what it should.
func (a *account) failed(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(a.steps) > 0 {
		a.steps[len(a.steps)-1].err = msg
	}
	fmt.Fprintf(a.w, "   FAILED: %s\n", msg)
}

// say prints a line of the step.
func (a *account) say(format string, args ...any) {
	fmt.Fprintf(a.w, "   "+format+"\n", args...)
}

// command prints a command as typed on machine m, then its output.
func (a *account) command(m, cmd, out string) {
	fmt.Fprintf(a.w, "   %s# %s\n", m, cmd)
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l != "" {
			fmt.Fprintf(a.w, "      %s\n", l)
		}
	}
}

// netraid runs a netraid command on node n, shows it with its output,
// and fails the script if it fails.
func (a *account) netraid(s *harness.Script, n *harness.Node, args ...string) string {
	out, err := n.Command(args...)
	a.command(n.Name, "netraid "+strings.Join(args, " "), out)
	if err != nil {
		s.Fatalf("netraid %s on %s: %v", strings.Join(args, " "), n.Name, err)
	}
	return out
}

// counts are the messages the story is about.
type counts struct {
	acked, afterFail, unanswered int
	received, fromUnanswered     int
	redelivered, lost, phantom   int
	drained                      bool
	// failover is from machine a's death to the first message b's
	// broker acknowledged (0: b did not get there).
	failover time.Duration
}

// summary prints the table of steps and the counts, and returns whether
// the story went as it should.
func (a *account) summary(c counts, runErr error) bool {
	a.end()
	fmt.Fprintf(a.w, "\nSummary\n")
	tw := tabwriter.NewWriter(a.w, 0, 0, 2, ' ', 0)
	ok := runErr == nil && c.drained && c.lost == 0 && c.phantom == 0
	for i, st := range a.steps {
		mark := ""
		if st.err != "" {
			mark, ok = "  FAILED", false
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s%s\n", i+1, st.title, round(st.took), mark)
	}
	fmt.Fprintf(tw, "  \ttotal\t%s\n", round(time.Since(a.total)))
	tw.Flush()
	fmt.Fprintln(a.w)
	tw = tabwriter.NewWriter(a.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  messages sent and acknowledged by the broker on a\t%d\t\n", c.acked)
	fmt.Fprintf(tw, "    of them acknowledged after a's disk failed\t%d\t\n", c.afterFail)
	fmt.Fprintf(tw, "  sent but unanswered when a died (may or may not survive)\t%d\t\n", c.unanswered)
	if c.drained {
		fmt.Fprintf(tw, "  received on b\t%d\t  (%d of the unanswered, %d redelivered)\n", c.received, c.fromUnanswered, c.redelivered)
		fmt.Fprintf(tw, "  acknowledged but lost\t%d\t\n", c.lost)
		if c.phantom > 0 {
			fmt.Fprintf(tw, "  received but never sent\t%d\t\n", c.phantom)
		}
	} else {
		fmt.Fprintf(tw, "  received on b\t-\t  (the story did not get that far)\n")
	}
	tw.Flush()
	fmt.Fprintln(a.w)
	if c.failover > 0 {
		fmt.Fprintf(a.w, "  failover, a's death to the first message acknowledged on b: %s (nobody typed netraid promote)\n\n", round(c.failover))
	}
	switch {
	case ok:
		fmt.Fprintf(a.w, "PASS: all %d acknowledged messages survived the loss of a disk and then of machine a.\n", c.acked)
	case runErr != nil:
		fmt.Fprintf(a.w, "FAIL: %v\n", runErr)
	case c.lost > 0 || c.phantom > 0:
		fmt.Fprintf(a.w, "FAIL: %d acknowledged messages lost, %d received that were never sent.\n", c.lost, c.phantom)
	default:
		fmt.Fprintf(a.w, "FAIL: a step did not do what it should (marked above).\n")
	}
	if a.kept != "" {
		fmt.Fprintf(a.w, "The logs (netraid daemons, brokers, nbdfuse) are kept in %s\n", a.kept)
	}
	return ok
}

func round(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}
