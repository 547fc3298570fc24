package fault

import (
	"fmt"

	"github.com/netraid/netraid/blockdev"
)

var (
	_ blockdev.VectorIO        = (*Device)(nil)
	_ blockdev.VectorFUAWriter = (*Device)(nil)
)

// ReadAtv is one Read op, however many buffers it has. It uses the wrapped
// device's vectored read, or one ReadAt per buffer if it has none.
func (f *Device) ReadAtv(bufs [][]byte, off int64) (int, error) {
	if err := f.enter(Read); err != nil {
		return 0, err
	}
	return blockdev.ReadV(f.d, bufs, off)
}

// WriteAtv is one Write op, however many buffers it has; TearNextWrite
// tears it after its first keep bytes, across buffers.
func (f *Device) WriteAtv(bufs [][]byte, off int64) (int, error) {
	return f.writev(bufs, off, false)
}

// WriteAtvFUA is one Write op. It passes through to the device's vectored
// or plain FUA write, or else is a vectored write followed by a Flush,
// counted and faultable.
func (f *Device) WriteAtvFUA(bufs [][]byte, off int64) (int, error) {
	return f.writev(bufs, off, true)
}

func (f *Device) writev(bufs [][]byte, off int64, fua bool) (int, error) {
	if err := f.enter(Write); err != nil {
		return 0, err
	}
	if keep := f.takeTear(); keep >= 0 {
		n, err := blockdev.WriteV(f.d, blockdev.VecHead(bufs, int64(keep)), off)
		if err != nil {
			return n, err
		}
		return n, fmt.Errorf("%w: wrote %d of %d bytes at off %d", ErrTorn, n, blockdev.VecLen(bufs), off)
	}
	if !fua {
		return blockdev.WriteV(f.d, bufs, off)
	}
	switch f.d.(type) {
	case blockdev.VectorFUAWriter, blockdev.FUAWriter:
		return blockdev.WriteVFUA(f.d, bufs, off)
	}
	n, err := blockdev.WriteV(f.d, bufs, off)
	if err != nil {
		return n, err
	}
	return n, f.Flush()
}
