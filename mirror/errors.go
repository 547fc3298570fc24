package mirror

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test with errors.Is.
var (
	// ErrNoLeg: no in-sync leg could serve the request.
	ErrNoLeg = errors.New("mirror: no in-sync leg")
	// ErrLeg: a leg is unknown to the mirror, or in the wrong state for
	// the operation.
	ErrLeg = errors.New("mirror: bad leg")
	// ErrBusy: a resync of the leg is already running (or a hold).
	ErrBusy = errors.New("mirror: resync already running")
	// ErrFrozen: a leg's failure could not be recorded
	// (Options.OnLegFailed failed): no operation is answered.
	ErrFrozen = errors.New("mirror: frozen")
)

// FrozenError is what a frozen mirror fails operations with: it is
// ErrFrozen, and unwraps to why the mirror was frozen.
type FrozenError struct{ Cause error }

func (e *FrozenError) Error() string        { return ErrFrozen.Error() + ": " + e.Cause.Error() }
func (e *FrozenError) Is(target error) bool { return target == ErrFrozen }
func (e *FrozenError) Unwrap() error        { return e.Cause }

// LegError is the failure of one leg in one operation. The leg is failed
// when it is returned (or reported through Options.OnLegFailed).
type LegError struct {
	Leg string
	Op  string // read, write, fua, flush, trim, zero, map, checksum
	Off int64
	Len int64
	Err error
}

func (e *LegError) Error() string {
	if e.Off == 0 && e.Len == 0 {
		// No range: a flush, or a failure reported by the caller.
		return fmt.Sprintf("mirror: leg %s: %s: %v", e.Leg, e.Op, e.Err)
	}
	return fmt.Sprintf("mirror: leg %s: %s off %d len %d: %v", e.Leg, e.Op, e.Off, e.Len, e.Err)
}

func (e *LegError) Unwrap() error { return e.Err }
