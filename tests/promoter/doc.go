// Package promoter runs netraid's promoter recipe on the tests' machines,
// for the end-to-end tests, the demo and the failover benchmark: a node's
// --on-promote commands attach and mount the volume with the script a
// user runs, dist/promoter/netraid-mount, and start ActiveMQ in the
// background with its store on the volume (under start-stop-daemon,
// where production has a systemd unit); its --on-demote commands stop
// the broker and unmount. Nobody runs them but the node.
//
// Invariants:
//   - The commands run in the node's network namespace (its machine's)
//     and in the mount namespace of the process that set them up: `ip
//     netns exec` gives the daemon a mount namespace of its own, where a
//     real machine has one for all its processes, and the test must see
//     and tear down what the commands mounted.
//   - Each node has a mount point, a netraid-mount state directory and a
//     broker work directory of its own (the machines share one
//     filesystem); the broker listens on 127.0.0.1 inside its machine.
//   - Crash leaves nothing running and nothing mounted, as a machine's
//     death would, and leaves the state files behind, as a crash does:
//     the script must clear them at the next attach. Setup registers a
//     Crash at cleanup, after the node itself is killed.
//   - Every wait is bounded.
package promoter
