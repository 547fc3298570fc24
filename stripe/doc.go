// Package stripe is RAID0: a Set stripes a volume over member devices of
// equal size in chunks, chunk i of the volume living on member i%n at
// member offset (i/n)*chunk.
//
// Invariants:
//   - Address math is pure (Map, DiskRanges) and apart from the I/O.
//   - A request is split at chunk boundaries; the pieces of different
//     members run in parallel, those of one member in order on one
//     goroutine, and the caller's goroutine serves one member itself: a
//     request touching one member starts no goroutine, and no request
//     starts more goroutines than it touches members, minus one. Every
//     goroutine a call starts has ended when the call returns.
//   - A member's pieces of one read or write that lie end to end on it
//     (with Map's layout, all of them) go as one vectored call
//     (blockdev.ReadV, WriteV, WriteVFUA): one preadv/pwritev on a File,
//     one call per piece on a member without vectored I/O. A vectored
//     call's count is charged to its pieces in order, its error to the
//     first piece not wholly done, so counts and DiskErrors are those of
//     one call per piece failing at the same byte. (A member that reports
//     no partial progress on failure, as O_DIRECT does on EIO, has the
//     whole call charged to its first piece: a smaller count, never a
//     larger one.)
//   - Trim and WriteZeroes issue one call per touched member, covering the
//     member's whole part of the range, however large the range.
//   - A member failure is reported as a *DiskError naming the member, the
//     operation and the member's byte range; when several members fail the
//     errors are joined, the one earliest in the volume first.
//   - Reads and writes report how much of p, from its start, was
//     transferred; pieces after a member's first failure are not issued.
//   - The Set owns its members: Close waits for I/O in flight, then closes
//     every member.
package stripe
