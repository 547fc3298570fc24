// Package volume creates and assembles a node's local volume: member disks
// carrying meta superblocks, striped by a stripe.Set over their data areas,
// with the write-intent bitmaps kept on every member.
//
// Disks are opened with O_DIRECT and exclusively, unless the caller gives
// an OpenFunc (CreateOptions.OpenDisk, OpenOptions.OpenDisk): then a path
// is an opaque name, two disks are the same only if their names are, and
// a member needs no more than the blockdev.Device contract (a test
// harness runs volumes on blockdev.Mem this way).
//
// Invariants:
//   - Create writes nothing until every disk passed every check: exclusive
//     open, no duplicate, no netraid superblock (unless forced), big enough.
//     It zeroes the metadata area and makes that durable before it writes
//     the superblocks, so a disk with a superblock has clean bitmaps.
//   - Open assembles from the superblocks alone, in any order of paths,
//     and writes nothing, whether it succeeds or refuses. Every refusal
//     names the disk and says what to do.
//   - The newest superblock (highest Seq) among the members is the volume's
//     state; members must agree on identity and geometry.
//   - UpdateSuper is serialised; on each member it writes the slot that
//     does not hold that member's newest copy, then flushes, so a crash at
//     any point leaves every member with a valid superblock.
//   - Members marked failed get no metadata writes and serve no bitmap
//     reads.
//   - With an I/O time-out (OpenOptions.IOTimeout), no call on a member's
//     data area or metadata area waits for the member longer than the
//     time-out (and a quarter of it): a call that overruns fails with an
//     error naming the member, a *stripe.DiskError for data and a
//     *MemberError for metadata, each wrapping blockdev.ErrTimeout.
//   - The Volume owns its disks: Close flushes and closes them, releasing
//     the exclusive locks. Data and Bitmap belong to it; callers do not
//     close them.
package volume
