package stripe

import (
	"errors"
	"io"
	"sync"

	"github.com/netraid/netraid/blockdev"
)

// pieceFunc does one extent's work on its member and returns how many of
// its bytes it did.
type pieceFunc func(d blockdev.Device, e Extent) (int64, error)

// fanOut calls do(k) for k in [0, n), where k and k+stride belong to the
// same member: members run in parallel, each one's extents in order, the
// caller's goroutine serving the first. A member stops at the first k for
// which do returns false. fanOut returns when every call has returned.
func fanOut(n, stride int, do func(k int) bool) {
	run := func(g int) {
		for k := g; k < n; k += stride {
			if !do(k) {
				return
			}
		}
	}
	groups := min(n, stride)
	if groups <= 1 {
		run(0)
		return
	}
	var wg sync.WaitGroup
	for g := 1; g < groups; g++ {
		wg.Go(func() { run(g) })
	}
	run(0)
	wg.Wait()
}

// piece runs f on one extent and turns a failure or a short count into a
// *DiskError.
func (s *Set) piece(op string, e Extent, f pieceFunc) (int64, error) {
	done, err := f(s.disk(e.Disk), e)
	return pieceResult(op, e, done, err)
}

// pieceResult turns what a member did of extent e, done bytes and err,
// into the bytes done (clamped to the extent) and, if it failed or fell
// short, a *DiskError.
func pieceResult(op string, e Extent, done int64, err error) (int64, error) {
	if err == io.EOF && done == e.Len {
		err = nil // a ReaderAt may report EOF with a full read
	}
	if err == nil && done < e.Len {
		err = io.ErrShortWrite
		if op == opRead {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil {
		return max(min(done, e.Len), 0), &DiskError{Disk: e.Disk, Op: op, Off: e.DiskOff, Len: e.Len, Err: err}
	}
	return done, nil
}

// run does f on every extent (see fanOut for stride) and returns how many
// bytes from the start of the request were done, and the members' errors.
func (s *Set) run(op string, ext []Extent, stride int, f pieceFunc) (int64, error) {
	switch len(ext) {
	case 0:
		return 0, nil
	case 1:
		return s.piece(op, ext[0], f)
	}
	done := make([]int64, len(ext))
	errs := make([]error, len(ext))
	fanOut(len(ext), stride, func(k int) bool {
		done[k], errs[k] = s.piece(op, ext[k], f)
		return errs[k] == nil
	})
	return prefix(ext, done), s.firstPerDisk(errs, ext)
}

// prefix returns how many bytes from the start of the request are done:
// the extents wholly done up to the first that is not, plus its part.
func prefix(ext []Extent, done []int64) int64 {
	var n int64
	for k, e := range ext {
		n += done[k]
		if done[k] < e.Len {
			break
		}
	}
	return n
}

// firstPerDisk joins the first error of each failed member, in the order
// of the extents.
func (s *Set) firstPerDisk(errs []error, ext []Extent) error {
	var out []error
	var seen []bool
	for k, err := range errs {
		if err == nil {
			continue
		}
		if seen == nil {
			seen = make([]bool, len(s.disks))
		}
		if !seen[ext[k].Disk] {
			seen[ext[k].Disk] = true
			out = append(out, err)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return errors.Join(out...)
}
