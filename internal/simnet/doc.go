// Package simnet is an in-process network for simulation tests: named
// hosts whose Dial and Listen stand in for package net's, joined by
// connections that behave as TCP does on a LAN, and faults a test
// applies between two hosts, to one connection or to a host: partition
// (both ways or one), delay, reset, pause (SIGSTOP), crash (power loss),
// kill (the process dies, the machine runs on) and restart.
//
//	n := simnet.New(simnet.Options{})
//	a, b := n.Host("a"), n.Host("b")
//	l, _ := b.Listen("tcp", ":7789")
//	c, _ := a.Dial(ctx, "tcp", "b:7789")
//	n.Partition("a", "b") // … n.Heal("a", "b")
//
// Model. Each direction of a connection is one buffer of at most
// Options.BufferBytes: the bytes written and not yet read. Of those, a
// prefix has arrived (is in the receiving machine); the rest is in
// flight and moves only while the direction flows: no partition between
// the hosts or on the connection, neither process paused, neither
// machine crashed. A byte written under a delay d is in flight for d
// after its Write. A fault marks arrived what was due before it, so a
// cut never takes back what had arrived. Close sends a FIN after the
// bytes written, or a RST if bytes sent to the closing end were left
// unread (as Linux does); FIN and RST travel as bytes do. After the
// peer's FIN has arrived, Write fails with EPIPE (on TCP the first such
// write may succeed and draw a RST). There is no half-close and no
// keepalive: an end whose peer's machine crashed waits until its own
// deadline, and a dial across a partition until its context ends.
//
// Invariants:
//   - Bytes are read in the order written, each once, none invented: a
//     fault drops bytes (a reset, a crash's in-flight bytes, a RST) but
//     never reorders or duplicates them.
//   - A direction holds at most BufferBytes; a Write returns once all of
//     its bytes are in the buffer, and returns fewer only with an error.
//     Writes on one end do not interleave, however large.
//   - A call on an end fails at once once its process died
//     (ErrHostDown), the end is closed (net.ErrClosed), reset
//     (ECONNRESET), or its deadline passed (os.ErrDeadlineExceeded, a
//     net.Error whose Timeout is true), in that order of precedence; a
//     past deadline fails a call even when data is waiting, as on a
//     socket. Errors but io.EOF come as *net.OpError, as package net's do.
//   - A crashed host's peers get no EOF and no RST from it: their reads
//     wait until their deadline. Once it is restarted, a peer that sends
//     on an old connection is reset, as the new machine answers so.
//   - The network starts no goroutine: a blocked call waits in its own
//     goroutine, on a channel and a timer (deadline or delivery time).
//
// Determinism. Every state change happens under one mutex, so the
// network's outcome is a function of the order in which calls take it:
// the same calls in the same order give the same bytes, errors,
// connection IDs and ports (IDs count from 1, ephemeral ports from
// 32768 per host). Not deterministic: the order of calls made from
// several goroutines (the scheduler's choice), and the clock: deadlines
// and delays run on the real clock, so whether a deadline had passed, or
// a delayed byte had arrived when a fault struck, depends on timing.
// Order within a connection never does: bytes come in order or not at
// all. A harness that wants replayable runs applies faults from one
// goroutine at points of its schedule, and keeps delays at zero where a
// fault (a crash) could catch bytes in flight.
//
// Layout: network.go holds the network and its pair faults, host.go
// hosts (Dial, Listen, pause, crash, kill, restart), conn.go the
// connection handle and the buffer of each direction, endpoint.go the
// net.Conn, listener.go the net.Listener, addr.go addresses and errors.
package simnet
