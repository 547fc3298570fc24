package volume

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// diskKey identifies what a path reaches: a block device by its device
// number, a regular file by its file system and inode.
type diskKey struct {
	block    bool
	dev, ino uint64
}

// identify returns the keys of the disk behind path: its own, then any
// alias, namely the backing file of a loop device.
func identify(path string) ([]diskKey, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return []diskKey{{dev: st.Dev, ino: st.Ino}}, nil
	}
	keys := []diskKey{{block: true, dev: st.Rdev}}
	sys := fmt.Sprintf("/sys/dev/block/%d:%d/loop/backing_file", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if b, err := os.ReadFile(sys); err == nil {
		var bst unix.Stat_t
		if unix.Stat(strings.TrimSuffix(string(b), "\n"), &bst) == nil {
			keys = append(keys, diskKey{dev: bst.Dev, ino: bst.Ino})
		}
	}
	return keys, nil
}

// checkDistinct refuses a list of paths in which one disk appears twice,
// under the same path or another (a symlink, a loop device and its
// backing file).
func checkDistinct(paths []string) error {
	seen := map[diskKey]string{}
	for _, p := range paths {
		keys, err := identify(p)
		if err != nil {
			return &AssembleError{Path: p, Reason: fmt.Sprintf("cannot use the disk: %v", errors.Unwrap(err)), Err: err}
		}
		for _, k := range keys {
			if other, ok := seen[k]; ok {
				reason := "is given twice; give each disk once"
				if other != p {
					reason = fmt.Sprintf("is the same disk as %s; give each disk once", other)
				}
				return &AssembleError{Path: p, Reason: reason, Err: ErrDuplicate}
			}
		}
		for _, k := range keys {
			seen[k] = p
		}
	}
	return nil
}
