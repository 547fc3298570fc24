package stripe

import (
	"errors"
	"fmt"

	"github.com/netraid/netraid/blockdev"
)

// ErrGeometry: New was given members or a chunk size it cannot stripe.
var ErrGeometry = errors.New("stripe: bad geometry")

// errClosed is returned by every call on a closed Set.
var errClosed = fmt.Errorf("stripe: %w", blockdev.ErrClosed)

// DiskError is the failure of one member. Callers find it with errors.As
// to tell which member failed.
type DiskError struct {
	// Disk is the member's index.
	Disk int
	// Op is the operation: read, write, fua write, trim, write zeroes,
	// map, flush or close.
	Op string
	// Off and Len are the byte range on the member (zero for flush and
	// close).
	Off, Len int64
	// Err is the member's error.
	Err error
}

func (e *DiskError) Error() string {
	if e.Op == opFlush || e.Op == opClose {
		return fmt.Sprintf("stripe: %s disk %d: %v", e.Op, e.Disk, e.Err)
	}
	return fmt.Sprintf("stripe: %s disk %d off %d len %d: %v", e.Op, e.Disk, e.Off, e.Len, e.Err)
}

func (e *DiskError) Unwrap() error { return e.Err }

// Operation names, as DiskError.Op reports them.
const (
	opRead        = "read"
	opWrite       = "write"
	opWriteFUA    = "fua write"
	opTrim        = "trim"
	opWriteZeroes = "write zeroes"
	opMap         = "map"
	opFlush       = "flush"
	opClose       = "close"
)
