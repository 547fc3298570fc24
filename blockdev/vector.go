package blockdev

import "io"

// VectorIO reads or writes several buffers over one contiguous range of the
// device in one call, as preadv and pwritev do: bufs[0] at off, bufs[1]
// right after it, and so on. The count returned is the bytes transferred
// from the start of the range; a failure is an error with the count of what
// was done before it, or less (O_DIRECT reports no partial progress on an
// I/O error). A range not inside the device fails with ErrOutOfRange and
// touches nothing. Implementations keep neither bufs nor the buffers, and
// leave bufs itself unchanged.
type VectorIO interface {
	ReadAtv(bufs [][]byte, off int64) (int, error)
	WriteAtv(bufs [][]byte, off int64) (int, error)
}

// VectorFUAWriter writes several buffers over one contiguous range durably
// (Force Unit Access), as FUAWriter writes one.
type VectorFUAWriter interface {
	WriteAtvFUA(bufs [][]byte, off int64) (int, error)
}

// VecLen returns the total length of bufs.
func VecLen(bufs [][]byte) int64 {
	var n int64
	for _, b := range bufs {
		n += int64(len(b))
	}
	return n
}

// VecHead returns the first n bytes of bufs as a new vector (all of bufs
// if it holds fewer); bufs itself is left as it was.
func VecHead(bufs [][]byte, n int64) [][]byte {
	var out [][]byte
	for _, b := range bufs {
		k := min(n, int64(len(b)))
		if k <= 0 {
			break
		}
		out = append(out, b[:k])
		n -= k
	}
	return out
}

// ReadV reads bufs from the range at off through d's VectorIO if it has
// one, otherwise with one ReadAt per buffer, in order, stopping at the
// first failure. It returns how many bytes from the start of the range
// were read. A range not inside d fails with ErrOutOfRange, reading
// nothing.
func ReadV(d Device, bufs [][]byte, off int64) (int, error) {
	if err := CheckRange(d.Size(), off, VecLen(bufs)); err != nil {
		return 0, err
	}
	if v, ok := d.(VectorIO); ok {
		return v.ReadAtv(bufs, off)
	}
	return eachBuffer(bufs, off, d.ReadAt, io.ErrUnexpectedEOF)
}

// WriteV writes bufs over the range at off through d's VectorIO if it has
// one, otherwise with one WriteAt per buffer, in order, stopping at the
// first failure. It returns how many bytes from the start of the range
// were written. A range not inside d fails with ErrOutOfRange, writing
// nothing.
func WriteV(d Device, bufs [][]byte, off int64) (int, error) {
	if err := CheckRange(d.Size(), off, VecLen(bufs)); err != nil {
		return 0, err
	}
	if v, ok := d.(VectorIO); ok {
		return v.WriteAtv(bufs, off)
	}
	return eachBuffer(bufs, off, d.WriteAt, io.ErrShortWrite)
}

// WriteVFUA writes bufs durably: through d's VectorFUAWriter if it has
// one, otherwise with one FUA write per buffer if d is a FUAWriter,
// otherwise as WriteV followed by one Flush.
func WriteVFUA(d Device, bufs [][]byte, off int64) (int, error) {
	if err := CheckRange(d.Size(), off, VecLen(bufs)); err != nil {
		return 0, err
	}
	switch w := d.(type) {
	case VectorFUAWriter:
		return w.WriteAtvFUA(bufs, off)
	case FUAWriter:
		return eachBuffer(bufs, off, w.WriteAtFUA, io.ErrShortWrite)
	}
	n, err := WriteV(d, bufs, off)
	if err != nil {
		return n, err
	}
	return n, d.Flush()
}

// eachBuffer moves bufs one call of f each, in order, and returns the
// total moved. It stops at the first error, or at a short count, which it
// reports as short; an io.EOF that comes with a full count is no error.
func eachBuffer(bufs [][]byte, off int64, f func([]byte, int64) (int, error), short error) (int, error) {
	done := 0
	for _, b := range bufs {
		n, err := f(b, off+int64(done))
		n = max(min(n, len(b)), 0)
		done += n
		if err == io.EOF && n == len(b) {
			err = nil
		}
		if err == nil && n < len(b) {
			err = short
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
