// Package broker runs an unmodified ActiveMQ broker (Debian's activemq
// package) as a test component, and talks to it over STOMP 1.2 with a small
// client of its own.
//
// netraid's end-to-end tests put the broker's KahaDB store on a filesystem
// mounted from a netraid volume, send persistent messages, crash the machine,
// restart the broker on the other machine over the same store and check that
// every acknowledged message comes back.
//
// Invariants:
//   - The broker runs the package's own activemq.xml, changed only in its
//     transport connectors (one STOMP connector on Options.Host:Port) and in
//     where its state lives (${activemq.data} = Options.DataDir). A
//     configuration that turns KahaDB's journal syncs off is refused:
//     KahaDB's default, journalDiskSyncStrategy=always, is kept.
//   - Everything the broker persists (KahaDB, temporary storage, locks) is
//     under DataDir; everything else (generated configuration, logs, the
//     JVM's temporary files) is under WorkDir.
//   - The Broker owns exactly one process, the JVM, whose pid it reports:
//     `ip netns exec` replaces itself with java. Kill is SIGKILL (a crash),
//     Stop is SIGTERM (ActiveMQ's shutdown hook stops the broker cleanly);
//     both return only once the process has been reaped.
//   - Client.Send returns nil only after the broker's RECEIPT for that
//     persistent SEND. ActiveMQ answers a SEND that asks for a receipt only
//     once the store has written the message (Queue.send waits on the store
//     future when a response is required), and KahaDB syncs its journal
//     before completing a write, so an acknowledged message is on disk.
//   - A Client is used by one goroutine at a time. Once its connection
//     failed (I/O error, protocol error, ERROR frame) it stays failed.
//   - Message bodies carry a sequence number (Body, Seq); Producer records
//     which numbers were acknowledged, DrainAll counts which came back.
package broker
