// Package blockdev defines the Device contract that every layer of netraid
// takes and returns, and the backends that sit at the bottom of the stack:
// File (O_DIRECT regular files and block devices, Linux), Mem (in memory,
// can simulate a crash), and the wrappers Aligned (byte-granular I/O over
// a device that needs aligned I/O), Timeout (bounded operation time),
// Section (a window of a device) and Readahead (reads ahead of one
// sequential reader). Package devtest is the conformance suite
// every implementation runs; package fault injects failures.
//
// Invariants:
//   - A Device is a fixed-size array of bytes. ReadAt and WriteAt outside
//     [0, Size()) fail with ErrOutOfRange and touch nothing; so do the
//     optional abilities.
//   - Concurrent ReadAt calls are allowed; concurrent WriteAt calls on
//     non-overlapping ranges are allowed. No implementation keeps p.
//   - A write that returned without error is durable only after a later
//     Flush returned without error, or if it was written with WriteAtFUA.
//   - FlushGroup (File's flushes, nbd.Client's FLUSHes) answers each
//     caller with a flush that started after the caller called, never
//     with one already running: concurrent callers share the next one.
//     A File's FUA write that finds other durable writes or flushes in
//     progress is a plain write followed by such a shared flush.
//   - Optional abilities (Trim, WriteZeroes, FUA, block size, allocation
//     map, checksum) are separate one-method interfaces found by type
//     assertion; the package-level helpers of the same names fall back to
//     plain I/O.
//   - Vectored I/O (VectorIO, VectorFUAWriter; helpers ReadV, WriteV,
//     WriteVFUA) moves several buffers over one contiguous range in one
//     call and returns the bytes done from the range's start, as a loop of
//     single-buffer calls stopping at the first failure would (a failure
//     may report fewer, never more); the fallback is that loop. File uses
//     preadv/pwritev(2), at most IOV_MAX buffers a syscall, resuming short
//     transfers mid-buffer.
//   - File moves data through an I/O engine chosen at open (FileOptions.
//     Engine). By default it is Linux native AIO: transfers queue iocbs,
//     and whichever goroutine finds no io_submit under way submits all
//     that are queued in one call, which the block layer plugs into one
//     batch for the device; completions signal an eventfd on which one
//     reaper goroutine waits in the netpoller, and it takes them from the
//     ring the kernel maps (no system call per completion). Flushes go
//     the same way (IOCB_CMD_FDSYNC), and transfers are submitted with
//     RWF_NOWAIT in a raw system call (one that would wait comes back
//     EAGAIN and is submitted again the blocking way). So no thread
//     sleeps in the kernel per transfer or flush, and the runtime's
//     monitor is not woken per request, where blocking pread/pwrite(v)
//     and fdatasync (EngineSync, and the fallback when io_setup fails)
//     cost a thread switch and a P hand-off each. At most aioDepth
//     transfers per File are in the kernel; more wait for a slot. A transfer's buffers stay reachable
//     until its completion is reaped. Close never waits for the disk: the
//     last transfer in flight releases the context.
//   - Readahead never returns data that a write, trim or write-zeroes
//     through it changed before the read began: each drops the buffers it
//     overlaps when it starts and again when it returns, so a read ahead
//     that overlapped it in time is never used. It holds at most Window
//     bytes read ahead (plus reads ahead already dropped but still in
//     flight), and Stop and Close wait for its reads in flight.
//   - Map's extents are non-empty, contiguous, in order and cover the range
//     exactly; an extent marked Zero reads as zeroes, and every Hole is Zero.
//   - After Close, every call fails with an error wrapping ErrClosed.
//   - O_DIRECT backends are only ever given aligned requests (offset,
//     length and buffer address multiples of the logical block size, which
//     comes from the device, never a constant): File refuses anything else
//     with ErrUnaligned before the kernel sees it, and Aligned turns
//     unaligned requests into read-modify-write above it.
//   - Aligned holds the lock of a partial edge block from its read to its
//     write, so non-overlapping writers that share a block keep each
//     other's bytes; whole blocks of a request need no lock.
//   - Direct-I/O buffers come from one pool (GetBuffer/PutBuffer), aligned
//     to at least a page, in power-of-two size classes. On Linux the
//     classes from 256 KiB up are carved from 2 MiB-aligned regions mapped
//     with MADV_HUGEPAGE (at most 96 MiB, never unmapped, reused through
//     free lists), so that a 1 MiB transfer is one physically contiguous
//     segment rather than 256 pages, more than a virtio disk takes in one
//     request; the smaller classes, and the large ones past the limit,
//     come from the Go heap, which reclaims them.
//   - Timeout never lets a stuck call touch the caller's buffer after the
//     call returned; its goroutines are the stuck calls themselves, and
//     each ends when the device lets it go.
package blockdev
