// Package devtest is the conformance suite for the blockdev.Device
// contract. Every Device implementation in netraid runs it from its tests:
//
//	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
//		return blockdev.NewMem(size)
//	}, devtest.Options{Unaligned: true, TrimZeroes: true})
//
// Invariants the suite relies on and checks:
//   - open returns a fresh, zero-filled device of at least the size asked
//     for; each subtest opens its own device and closes it when it ends
//     (unless Options.SkipClose), so open must not close it itself.
//   - When Options.Unaligned is false, every request the suite makes has
//     its offset, length and buffer address aligned to BlockSize(d); the
//     suite never relies on a device accepting anything else.
//   - The suite keeps a shadow copy of the whole device in memory and
//     compares the device against it, so any write that lands outside its
//     range, or any request that should have failed but changed something,
//     is caught.
//   - Load is bounded in goroutines, operations and bytes; nothing sleeps.
package devtest
