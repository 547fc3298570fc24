// Package mirror is RAID1 over legs — local stripes and the peer's NBD
// export — in the manner of DRBD's protocol C and md's write-intent bitmap.
// A Mirror is itself a blockdev.Device.
//
// Invariants:
//   - A write marks its regions dirty in the bitmap (durably: resync.Bitmap
//     Mark) before any leg sees it (and, while HoldWrites is in force,
//     waits after its mark until ReleaseWrites, or fails, having reached
//     no leg, if the mirror freezes), then goes to every leg that has not
//     failed, in parallel, and is answered after all of them answered. It
//     succeeds if a leg that was InSync when it began succeeded; a leg that
//     errs (or times out: legs bring their own time-outs) is failed once
//     and for all, with OnLegFailed called once.
//   - Reads go to the first InSync local leg, else the first InSync remote
//     one; a leg that errs is failed and the next one tried. Resyncing
//     legs never serve reads.
//   - Writes to overlapping ranges are serialised, so every leg applies
//     them in the same order and no two legs end up different for a range
//     whose last write succeeded on both.
//   - Dirty bits are cleared only by the mirror, and only for a region
//     whose data it knows durable and identical on every leg: after a
//     Flush that succeeded on every leg, for regions whose writes (and
//     resync copies) all completed before that flush began and which have
//     nothing in flight; only while the mirror is complete (Options.Copies
//     legs attached, none failed); for a Resyncing leg only in the
//     regions its resync has passed; and never in a region a repair has
//     yet to copy (verify found its legs different: a write and flush
//     there says nothing of the rest of the region). This is the
//     guarantee resync.Bitmap's Clean relies on. While a leg is failed or absent nothing is cleaned:
//     the bits are the record of what it misses.
//   - A resync or repair copy, or a verify compare, holds its range
//     exclusively: a write to it waits, and a waiting copy holds off new
//     writes. A repair marks its regions dirty (durably) before it copies
//     any, and visits a set of its own, which no cleaning touches. A
//     Resyncing leg receives every write, so a region it was copied stays
//     in sync; it becomes InSync only once its resync has visited every
//     region and flushed.
//   - Resync starts only after every write that began before the target
//     joined has finished, since those do not reach the target.
//   - Every goroutine the mirror starts (one per leg per request) ends
//     before the request returns. RemoveLeg waits for the leg's I/O; Close
//     waits for all I/O, flushes, and syncs the bitmap.
package mirror
