// Package harness builds the real components the end-to-end tests run on:
// loop devices over sparse files, network namespaces joined by veth pairs
// standing in for machines, netraid daemons inside them, nbdfuse mounts
// with ext4 on top, and a witness: real etcd members in namespaces of
// their own, on a network apart from the machines' link, so that each
// path (a machine to etcd, the link, a member to the rest) can be cut
// alone. Everything it makes lives under t.TempDir() (etcd's data under
// /dev/shm) or is named uniquely, and is torn down in t.Cleanup, in
// reverse order; it ends only the processes it started.
//
// These tests need root; RequireRoot skips cleanly without it.
package harness
