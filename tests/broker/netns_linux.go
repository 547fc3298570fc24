package broker

import "github.com/netraid/netraid/tests/harness"

// inNetns runs fn on an OS thread switched into the network namespace
// (a name or a path), and waits for it: see harness.InNetns.
func inNetns(name string, fn func() error) error { return harness.InNetns(name, fn) }
