package devtest

import (
	"bytes"

	"github.com/netraid/netraid/blockdev"
)

// testVector writes the cases as vectors of buffers of unequal lengths,
// one of them empty, through the package helpers (so through the device's
// VectorIO if it has one), alternating plain and FUA writes; checks each
// write and its neighbours; and reads each back split differently.
func testVector(e *env) {
	for i, c := range e.cases() {
		data := Pattern(int64(200+i), c.off, int(c.n))
		bufs := e.split(c.n, data, 3+i%4)
		what, write := "WriteV", blockdev.WriteV
		if i%2 == 1 {
			what, write = "WriteVFUA", blockdev.WriteVFUA
		}
		n, err := write(e.d, bufs, c.off)
		e.put(bufs)
		if err != nil || int64(n) != c.n {
			e.t.Fatalf("%s(%v in %d buffers) = %d, %v", what, c, len(bufs), n, err)
		}
		copy(e.shadow[c.off:], data)
		e.verify("after "+what+" "+c.String(), c.off-e.blk, c.n+2*e.blk)

		bufs = e.split(c.n, nil, 2+i%5)
		n, err = blockdev.ReadV(e.d, bufs, c.off)
		got := bytes.Join(bufs, nil)
		e.put(bufs)
		if err != nil || int64(n) != c.n {
			e.t.Fatalf("ReadV(%v in %d buffers) = %d, %v", c, len(bufs), n, err)
		}
		if j := diff(got, data); j >= 0 {
			e.t.Fatalf("ReadV(%v): byte at %d is %#02x, want %#02x", c, c.off+int64(j), got[j], data[j])
		}
	}
	empty := e.buf(0, nil)
	defer blockdev.PutBuffer(empty)
	for _, off := range []int64{0, e.blk, e.size} {
		for _, bufs := range [][][]byte{nil, {empty}, {empty, nil}} {
			for what, f := range map[string]func(blockdev.Device, [][]byte, int64) (int, error){
				"ReadV": blockdev.ReadV, "WriteV": blockdev.WriteV, "WriteVFUA": blockdev.WriteVFUA,
			} {
				if n, err := f(e.d, bufs, off); n != 0 || err != nil {
					e.t.Errorf("%s(%d empty buffers, off %d) = %d, %v; want 0, nil", what, len(bufs), off, n, err)
				}
			}
		}
	}
	e.verifyAll("after vectored I/O")
}

// split returns n bytes (a whole number of units) as at most parts
// buffers of whole units, of unequal lengths (1, 2, 3, ... shares),
// holding data (zeroes if data is nil), with an empty buffer after the
// first. Each buffer is aligned as e.buf aligns.
func (e *env) split(n int64, data []byte, parts int) [][]byte {
	units := n / e.unit
	parts = int(min(int64(parts), units))
	weight := int64(parts * (parts + 1) / 2)
	var bufs [][]byte
	var at, share int64
	for i := 1; i <= parts; i++ {
		share += int64(i)
		end := units * share / weight * e.unit
		var part []byte
		if data != nil {
			part = data[at:end]
		}
		bufs = append(bufs, e.buf(int(end-at), part))
		if i == 1 {
			bufs = append(bufs, e.buf(0, nil))
		}
		at = end
	}
	return bufs
}

// put returns split's buffers to the pool.
func (e *env) put(bufs [][]byte) {
	for _, b := range bufs {
		blockdev.PutBuffer(b)
	}
}

// outOfRangeVector makes the vectored requests of outOfRangeAbilities: p
// as two buffers, through the helpers and the device's own abilities.
func (e *env) outOfRangeVector(c span, p []byte) {
	cut := int64(len(p)) / 2 / e.unit * e.unit
	bufs := [][]byte{p[:cut], p[cut:]}
	calls := map[string]func([][]byte, int64) (int, error){
		"ReadV":     func(b [][]byte, off int64) (int, error) { return blockdev.ReadV(e.d, b, off) },
		"WriteV":    func(b [][]byte, off int64) (int, error) { return blockdev.WriteV(e.d, b, off) },
		"WriteVFUA": func(b [][]byte, off int64) (int, error) { return blockdev.WriteVFUA(e.d, b, off) },
	}
	if v, ok := e.d.(blockdev.VectorIO); ok {
		calls["ReadAtv"], calls["WriteAtv"] = v.ReadAtv, v.WriteAtv
	}
	if v, ok := e.d.(blockdev.VectorFUAWriter); ok {
		calls["WriteAtvFUA"] = v.WriteAtvFUA
	}
	for what, f := range calls {
		if n, err := f(bufs, c.off); n != 0 || !isOutOfRange(err) {
			e.t.Errorf("%s(%v as 2 buffers) = %d, %v; want 0, ErrOutOfRange", what, c, n, err)
		}
	}
}
