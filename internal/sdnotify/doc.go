// Package sdnotify tells a service manager how the daemon is doing, as
// sd_notify(3) does: one datagram per notification ("READY=1",
// "WATCHDOG=1", "STATUS=…", "STOPPING=1") to the unix socket named by
// $NOTIFY_SOCKET, a path or, after an '@', an abstract socket name.
//
// It is a few lines over the net package rather than a dependency
// (coreos/go-systemd's daemon package is the same code with more
// around it).
//
// Invariants:
//   - Without $NOTIFY_SOCKET every call does nothing and succeeds: the
//     daemon runs the same outside systemd.
//   - FromEnv removes the variables it read from the environment, so
//     that programs the daemon starts do not notify in its name.
//   - Watchdog pings only after its health check passed, within the
//     check's time limit: a daemon whose control path is wedged stops
//     pinging, and the service manager restarts it.
package sdnotify
