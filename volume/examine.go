package volume

import (
	"fmt"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
)

// Examine reads one disk's superblock without assembling a volume or
// locking the disk, so that it works on a disk in use. It returns the
// newest valid superblock and its slot; errors are *AssembleError, as
// Open's are.
func Examine(path string) (*meta.Superblock, int, error) {
	f, err := blockdev.OpenFile(path, blockdev.FileOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, &AssembleError{Path: path, Reason: fmt.Sprintf("cannot open: %v", err), Err: err}
	}
	d := &disk{path: path, dev: f, mdev: f, meta: blockdev.NewAligned(f)}
	defer d.close()
	sb, slot, _, err := d.super()
	if err != nil {
		return nil, 0, superError(path, err)
	}
	return sb, slot, nil
}
