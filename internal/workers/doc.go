// Package workers runs functions on goroutines that outlive them.
//
// A request path that starts a goroutine per request pays, on every
// request, for the goroutine's stack to grow again to the depth of the
// layers below it (nbd, mirror, stripe, blockdev): a profile of 4 KiB
// random reads spent a tenth of the daemon's CPU copying stacks. A Pool
// instead hands each function to a worker that is waiting for one, and
// starts a worker only when none is; a worker that has waited Idle (to
// twice Idle) for its next function ends.
//
// Invariants:
//   - Go never blocks: a function runs at once on a waiting worker or on
//     a new one. A function that blocks for good holds only its worker.
//   - After Close no worker waits for work; Wait returns once every worker
//     has finished its function and left.
package workers
