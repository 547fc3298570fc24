package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/netraid/netraid/tests/broker"
	"github.com/netraid/netraid/tests/harness"
	"github.com/netraid/netraid/tests/promoter"
)

// firstAckSeq numbers the message a producer sends when it comes back,
// beyond the producers' own numbers.
const firstAckSeq = 20_000_000

func (st *story) killA(p *broker.Producer) (broker.Report, time.Time) {
	st.a.step("Machine a dies while messages flow")
	brokerPid, fusePid := st.sa.BrokerPid(), st.sa.FusePid()
	died := st.sa.Die(st.w)
	st.a.say("ip link set %-16s a is off the network: its link to b, and the witness's", st.ma.Veth+" down")
	st.a.say("kill -9 netraid             a's daemon")
	st.a.say("kill -9 %-20d a's broker (java)", brokerPid)
	st.a.say("kill -9 %-20d a's nbdfuse: a's mount of the volume is dead", fusePid)
	rep := p.Wait()
	st.c.acked, st.c.unanswered = len(rep.Acked), len(rep.Unknown)
	if st.atFail >= 0 {
		st.c.afterFail = st.c.acked - st.atFail
	}
	st.a.say("the producers saw: %s", firstLine(fmt.Sprint(rep.Err)))
	st.a.say("%d messages were acknowledged; %d were sent but unanswered", st.c.acked, st.c.unanswered)
	return rep, died
}

// takeOver waits, typing nothing, until a producer that reconnects to
// b's broker has a message acknowledged, and says how b got there.
func (st *story) takeOver(rep broker.Report, died time.Time) broker.Report {
	st.a.step("b promotes itself (nobody types netraid promote); its promoter mounts the volume and starts ActiveMQ")
	ctx, cancel := context.WithTimeout(st.ctx, failoverTimeout)
	defer cancel()
	at, err := promoter.FirstAck(ctx, st.sb.Broker, queue, firstAckSeq, st.o.MsgSize)
	if err != nil {
		st.s.Fatalf("b did not take over within %v: %v", failoverTimeout, err)
	}
	st.c.failover = at.Sub(died)
	st.a.say("a producer that reconnects to b's broker had its first message acknowledged %s after a died", round(st.c.failover))
	st.a.say("b's log, from a's death:")
	for _, l := range failoverLog(st.nb.Log, died) {
		st.a.say("  %s", l)
	}
	st.a.netraid(st.s, st.nb, "status")
	if s, err := st.nb.Status(); err != nil || s.Failover == nil || s.Failover.LastFailover == "" {
		st.a.failed("b's status shows no failover of its own (%v)", err)
	}
	st.a.say("(a never unmounted the volume: fsck -p replayed ext4's journal before b mounted it)")
	rep.Acked = append(rep.Acked, firstAckSeq)
	slices.Sort(rep.Acked)
	return rep
}

// failoverLog picks out of a node's log the lines that tell its
// failover, from since on, each with its time after since.
func failoverLog(path string, since time.Time) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	marks := []string{"election", "promot", "on-promote", "failover done", "peer", "link"}
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		ts, rest, ok := strings.Cut(strings.TrimPrefix(l, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil || at.Before(since) {
			continue
		}
		_, msg, ok := strings.Cut(rest, "msg=")
		if !ok || !slices.ContainsFunc(marks, func(m string) bool { return strings.Contains(msg, m) }) {
			continue
		}
		if len(msg) > 150 {
			msg = msg[:147] + "..."
		}
		out = append(out, fmt.Sprintf("+%5.1fs %s", at.Sub(since).Seconds(), msg))
	}
	return out
}

func (st *story) consume(rep broker.Report) {
	st.a.step("Every message consumed on b")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	got, err := broker.DrainAll(ctx, st.sb.Broker, queue, 5*time.Second)
	if err != nil {
		st.s.Fatalf("consuming on b after %d messages: %v", len(got), err)
	}
	c := &st.c
	c.drained, c.received = true, len(got)
	for seq, n := range got {
		c.redelivered += n - 1
		_, acked := slices.BinarySearch(rep.Acked, seq)
		_, unknown := slices.BinarySearch(rep.Unknown, seq)
		switch {
		case unknown:
			c.fromUnanswered++
		case !acked:
			c.phantom++
		}
	}
	c.lost = len(broker.Lost(rep.Acked, got))
	st.a.say("received %d messages on b (%d redelivered); %d acknowledged messages missing", c.received, c.redelivered, c.lost)
}

// shutDown stops b's broker, checks the filesystem, and stops b, whose
// on-demote commands then find the broker stopped and the volume
// unmounted, and detach it.
func (st *story) shutDown() {
	st.a.step("The broker stops cleanly, the filesystem checks clean, b shuts down")
	st.exec("b", st.sb.BrokerScript, "stop")
	dev := st.sb.Mounted()
	st.exec("b", "umount", st.sb.Mount)
	st.exec("b", "e2fsck", "-fn", dev)
	st.nb.Stop()
	st.a.command("b", "systemctl stop netraid   # here: SIGTERM to b's daemon", "")
	if st.sb.FusePid() != 0 || st.sb.Mounted() != "" || st.sb.BrokerPid() != 0 {
		st.a.failed("b's on-demote commands left nbdfuse (pid %d), the broker (pid %d) or a mount (%q)",
			st.sb.FusePid(), st.sb.BrokerPid(), st.sb.Mounted())
		return
	}
	st.a.say("b's on-demote commands ran as it stopped: the broker's stop and netraid-mount detach (nothing left attached)")
}

// exec runs a command on machine m (the demo's view of it), shows it with
// its output, and fails the script if it fails.
func (st *story) exec(m, name string, args ...string) {
	out, err := harness.Try(name, args...)
	st.a.command(m, strings.TrimSpace(name+" "+strings.Join(args, " ")), out)
	if err != nil {
		st.s.Fatal(err)
	}
}
