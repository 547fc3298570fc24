// Package resync holds the persistent write-intent bitmap of a mirrored
// volume, the engine that copies dirty regions to a leg that is behind,
// and online verify. It knows nothing of legs: the mirror drives it through
// the narrow Job and Verifier interfaces, so that mirror may import resync
// and not the other way round.
//
// Invariants of the Bitmap:
//   - A region's dirty bit is durable on the store before Mark returns, and
//     Mark returns before any data of the region is written (the mirror
//     calls Mark first). An error from Mark means the write must not
//     proceed.
//   - A set bit on the store is always safe: at worst a region is copied
//     for nothing. A bit is cleared (Clean) only when the mirror knows the
//     region's data durable on every leg and no write to it in flight, and
//     the cleared bit reaches the store later (FlushInterval, Sync, Close).
//     The mirror guarantees the first part; see package mirror.
//   - Bits only go from clear to set on the store while a Mark waits, and
//     from set to clear only under that guarantee, so a torn 4 KiB bitmap
//     write leaves every bit either its old or its new value, both safe.
//   - The used bitmap is a superset of the regions holding data that was
//     ever written through it and not discarded whole since; it is made
//     durable with the dirty bits, and cleared lazily (Trimmed). Writes
//     that reach the disks some other way (a secondary's, from its
//     primary) are not in it: the owner sets every bit (SetAllUsed)
//     before such a copy is a source.
//   - One goroutine writes the store; Close stops it and waits for it.
//
// Invariants of the Engine:
//   - Regions are visited in order from Options.StartAt round to just
//     before it; a region is copied under the mirror's lock for it, so a
//     write to it during the copy waits, and a write before or after the
//     copy reaches the target as well: a region being resynced is never
//     left stale by a concurrent write.
//   - Bits are cleaned by the mirror only after a flush of source and
//     target that began after the copy completed; Progress is reported
//     after such a flush, with the bitmap synced, so its Cursor is safe to
//     persist.
//   - The target becomes in sync only after every region was visited and
//     flushed (Job.Finish).
package resync
