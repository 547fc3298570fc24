// Package fault wraps a blockdev.Device to inject faults in tests, in the
// manner of pebble's vfs/errorfs: fail the n-th operation, fail everything
// from some point on (a dead disk) until healed, hang operations until
// released, slow them down, tear a write.
//
// Invariants:
//   - With nothing armed, every call reaches the wrapped device unchanged;
//     only counters move.
//   - Faults are armed and disarmed from any goroutine, while I/O runs.
//   - An injected failure happens before the operation reaches the device:
//     a failed op changed nothing, except a torn write, which wrote exactly
//     its first keep bytes.
//   - Every injected error wraps the error it was armed with (errors.Is).
//   - A vectored call (ReadAtv, WriteAtv, WriteAtvFUA) is one op of its
//     kind, however many buffers it has; a torn one writes exactly its
//     first keep bytes, across buffers.
//   - The wrapper starts no goroutines. Ops held by Hang or Slow belong to
//     their callers; Close releases them and they fail with ErrClosed.
package fault
