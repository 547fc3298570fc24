package blockdev

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockDevSize returns a block device's size in bytes (BLKGETSIZE64).
func blockDevSize(fd int) (int64, error) {
	var size uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
		return 0, e
	}
	return int64(size), nil
}

// ioctlRange issues a block device ioctl that takes a {start, length}
// byte range: BLKDISCARD, BLKZEROOUT.
func ioctlRange(fd int, req uint, off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	return retryEINTR(func() error {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&r))); e != 0 {
			return e
		}
		return nil
	})
}

// fileBlockSize returns the alignment direct I/O on a regular file needs.
// The kernel says so through statx(STATX_DIOALIGN) since Linux 6.1.
// Otherwise a 512-byte direct read at offset 0 tells 512 from larger
// sectors; if it cannot be tried, 4096 is safe on every common disk.
func fileBlockSize(fd int, fileSize int64) (int, error) {
	var stx unix.Statx_t
	err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx)
	if err == nil && stx.Mask&unix.STATX_DIOALIGN != 0 && stx.Dio_offset_align != 0 {
		return max(512, int(stx.Dio_offset_align), int(stx.Dio_mem_align)), nil
	}
	if fileSize < 512 {
		return 4096, nil
	}
	buf := GetBuffer(512, poolAlign)
	defer PutBuffer(buf)
	err = retryEINTR(func() error {
		_, err := unix.Pread(fd, buf, 0)
		return err
	})
	switch err {
	case nil:
		return 512, nil
	case unix.EINVAL:
		return 4096, nil
	}
	return 0, err
}

// mapFile walks [off, end) of a regular file with SEEK_DATA and SEEK_HOLE.
// The file offset it moves is never used for I/O (pread/pwrite), so this is
// safe beside concurrent I/O. A file system without SEEK_DATA reports data.
func mapFile(fd int, off, end int64) ([]Extent, error) {
	var ext []Extent
	add := func(from, to int64, hole bool) {
		if n := len(ext); n > 0 && ext[n-1].Hole == hole {
			ext[n-1].Len = to - ext[n-1].Off
			return
		}
		ext = append(ext, Extent{Off: from, Len: to - from, Hole: hole, Zero: hole})
	}
	// A hole punched between the two seeks makes them disagree; look again
	// a few times, then call the rest data, which is never wrong.
	retries := 0
	for pos := off; pos < end; {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		switch {
		case err == unix.ENXIO:
			data = end
		case err == unix.EINVAL:
			add(pos, end, false)
			return ext, nil
		case err != nil:
			return nil, err
		}
		if data > pos {
			hole := min(data, end)
			add(pos, hole, true)
			pos = hole
			continue
		}
		hole, err := unix.Seek(fd, pos, unix.SEEK_HOLE)
		switch {
		case err == unix.ENXIO:
			hole = end
		case err != nil:
			return nil, err
		}
		if hole <= pos {
			if retries++; retries > 3 {
				add(pos, end, false)
				return ext, nil
			}
			continue
		}
		hole = min(hole, end)
		add(pos, hole, false)
		pos = hole
	}
	return ext, nil
}
