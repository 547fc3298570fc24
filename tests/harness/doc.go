// Package harness builds the real components the end-to-end tests run on:
// loop devices over sparse files, network namespaces joined by veth pairs
// standing in for machines, netraid daemons inside them, nbdfuse mounts
// with ext4 on top. Everything it makes lives under t.TempDir() or is
// named uniquely, and is torn down in t.Cleanup, in reverse order.
//
// These tests need root; RequireRoot skips cleanly without it.
package harness
