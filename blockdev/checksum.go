package blockdev

import (
	"crypto/sha256"
)

// Sum is the checksum of a range, as online verify compares them.
type Sum [sha256.Size]byte

// Checksummer computes the checksum of a range where the data lives, so
// that a remote device need not send the data to be compared.
type Checksummer interface {
	Checksum(off, length int64) (Sum, error)
}

// checksumChunk bounds the buffer Checksum reads through.
const checksumChunk = 1 << 20

// Checksum returns the SHA-256 of [off, off+length) of d, computed by d if
// it is a Checksummer, otherwise by reading the range.
func Checksum(d Device, off, length int64) (Sum, error) {
	if err := CheckRange(d.Size(), off, length); err != nil {
		return Sum{}, err
	}
	if c, ok := d.(Checksummer); ok {
		return c.Checksum(off, length)
	}
	return readChecksum(d, off, length)
}

// readChecksum computes the checksum by reading the range through pooled
// buffers aligned for direct I/O.
func readChecksum(d Device, off, length int64) (Sum, error) {
	h := sha256.New()
	buf := GetBuffer(int(min(length, checksumChunk)), bufferAlign(d))
	defer PutBuffer(buf)
	for length > 0 {
		n := min(length, int64(len(buf)))
		if _, err := d.ReadAt(buf[:n], off); err != nil {
			return Sum{}, err
		}
		h.Write(buf[:n])
		off += n
		length -= n
	}
	var s Sum
	h.Sum(s[:0])
	return s, nil
}
