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
// A member whose metadata write or flush fails or times out (a bitmap
// write or flush, a superblock write) is failed, as are the members the
// owner gives to FailMembers (found failed by data errors): see the
// invariants. Data errors name the member too (stripe.DiskError), but
// fail nothing by themselves: the owner decides.
//
// UpdateSuper's outcome is exact, so that the owner can keep its copy of
// the superblock in step: nil means the update is durable on a member not
// recorded failed and Super returns it; an error means Super still
// returns the previous superblock, and the update is durable nowhere, or,
// with ErrNoMemberLeft, on no member that can still be written (see
// UpdateSuper).
//
// Invariants:
//   - Create writes nothing until every disk passed every check: exclusive
//     open, no duplicate, no netraid superblock (unless forced), big enough.
//     It zeroes the metadata area and makes that durable before it writes
//     the superblocks, so a disk with a superblock has clean bitmaps.
//   - Open assembles from the superblocks alone, in any order of paths,
//     and writes nothing, whether it succeeds or refuses. Every refusal
//     names the disk and says what to do. It reads the bitmaps from the
//     first member not recorded failed.
//   - The newest superblock (highest Seq) among the members is the volume's
//     state; members must agree on identity and geometry.
//   - Superblock writes (UpdateSuper, FailMembers, the recording of a
//     failure, Replace) are serialised, each with a Seq above any written
//     before; on each member a write goes to the slot that does not hold
//     that member's newest copy, then a flush, so a crash at any point
//     leaves every member with a valid superblock, and the volume opens
//     with the newest one written durably.
//   - A failed member is failed in memory at once: no metadata I/O is
//     issued to it from then on. It is recorded failed (FailedMembers) in
//     the superblock of the members left, durably, before the call that
//     failed it returns; that record has a higher Seq than anything the
//     member was sent, so no crash brings the member back. The call
//     succeeds if a member was left to take it. A member stays failed
//     until Replace puts a new disk in its place.
//   - While a member is left, every bitmap bit that a call reported
//     durable (a write then a flush, or a FUA write, both returning nil)
//     is durable on every member not recorded failed: a member misses a
//     bitmap write only once it is failed, and the call returns only once
//     that is recorded. The bitmap is never read from a member recorded
//     failed: after Open, reads come from the copy in memory.
//   - When every member has failed, bitmap writes and flushes succeed and
//     persist nothing: no local copy of the data is left for the bitmap to
//     describe (the node serves through its peer), and the copy in memory
//     goes to the disk Replace puts in. Each such call tells
//     OnNoMemberLeft before it returns: the last member's failure is
//     recorded nowhere, so after a restart that member's old superblock
//     and bitmap are read again, and only the owner can make them count
//     as older than what was written since. Superblock writes then fail
//     with ErrNoMemberLeft: nothing more can be recorded.
//   - Replace makes the new disk's bitmaps durable before its superblock,
//     which has the update Replace was given and a higher Seq than the
//     other members' copies until the same update reaches them: a crash
//     leaves the new disk either no member or a member with the bitmaps
//     and the update.
//   - With an I/O time-out (OpenOptions.IOTimeout), no call on a member's
//     metadata area waits for the member longer than the time-out (and
//     a quarter of it): a call that overruns fails with a *MemberError
//     wrapping blockdev.ErrTimeout, and the member is failed. Data calls
//     are the owner's to bound (one time-out around Data); Stalled names
//     the members whose data calls have made no progress for a while,
//     and a failed member's data calls fail at once (ErrMemberFailed).
//   - The Volume owns its disks: Close flushes the members not failed and
//     closes every disk, releasing the exclusive locks. Data and Bitmap
//     belong to it; callers do not close them.
package volume
