// Package blockdev defines the Device contract that every layer of netraid
// takes and returns, and the backends that sit at the bottom of the stack.
//
// Invariants:
//   - A Device is a fixed-size array of bytes. ReadAt and WriteAt outside
//     [0, Size()) fail with ErrOutOfRange and touch nothing.
//   - Concurrent ReadAt calls are allowed; concurrent WriteAt calls on
//     non-overlapping ranges are allowed. No implementation keeps p.
//   - A write that returned without error is durable only after a later
//     Flush returned without error, or if it was written with WriteAtFUA.
//   - Optional abilities (Trim, WriteZeroes, FUA, block size, allocation
//     map) are separate one-method interfaces found by type assertion; the
//     package-level helpers of the same names fall back to plain I/O.
//   - O_DIRECT backends are only ever given aligned requests: unaligned
//     requests are turned into read-modify-write above them (Aligned).
package blockdev
