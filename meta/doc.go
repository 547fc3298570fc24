// Package meta defines the on-disk member superblock of a netraid volume
// and the geometry of a member disk. It only encodes and decodes bytes and
// computes layouts; it does no I/O.
//
// Member disk layout (offsets in bytes from the start of the disk):
//
//	0             superblock slot 0 (4096 bytes)
//	4096          superblock slot 1 (4096 bytes)
//	BitmapOffset  dirty (out-of-sync) bitmap, BitmapBytes
//	  + BitmapBytes  "used" (ever written) bitmap, BitmapBytes
//	DataOffset    MemberDataSize bytes of striped data (1 MiB aligned)
//
// Invariants:
//   - A superblock is 4096 bytes, little endian, at fixed offsets. Magic,
//     format version and CRC sit at the same offsets in every format
//     version, and the CRC is always CRC32C (Castagnoli) over the whole 4096
//     bytes with the CRC field zeroed. A block whose CRC does not match is
//     damaged (ErrBadChecksum) whatever its version field says; a block whose
//     CRC matches and whose version is newer than FormatVersion is refused
//     (ErrVersion), never guessed at.
//   - Each update writes the slot that does not hold the newest copy, with
//     Seq one higher, so a torn write leaves the other slot intact. Pick
//     chooses the valid slot with the highest Seq.
//   - Every superblock Decode returns has passed Validate: its geometry is
//     self-consistent, so callers may do I/O from it without further checks.
//   - Bytes of the reserved area are kept by Decode and written back by
//     Encode unchanged, so fields added later in the reserved area (zero
//     meaning absent) survive an older build rewriting the superblock.
//   - The rebuild record (the first bytes of what was the reserved area)
//     carries the Seq of the block that wrote it: a build that predates it
//     keeps it, unread, through its own updates, and a record whose stamp
//     is not the block's Seq reads as no rebuild, so a resume never acts
//     on a rebuild that such a build finished or replaced.
//   - Decode never panics, whatever the input.
package meta
