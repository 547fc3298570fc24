package volume

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// ErrMemberFailed: an I/O to the data of a member that is failed. It is
// refused at once, so that a disk that hung is not waited for again.
var ErrMemberFailed = errors.New("volume: member disk failed")

// memberIO is a member's data area as the stripe sees it: every call is
// refused at once once the member is failed, and counted so that
// Stalled can tell which member holds the volume's I/O up. It adds no
// goroutine and no copy: the time-out that bounds the data path is one
// around the whole stripe (the node's), which names no member; Stalled
// names it.
type memberIO struct {
	d   blockdev.Device
	v   *Volume
	bit uint64

	inflight atomic.Int64
	// since is when the member last made progress: a call that began
	// while none was running, or one that ended (Unix ns).
	since atomic.Int64

	// retired: Replace put another disk in this one's place; every new
	// call is refused, and drained is closed once none is in flight.
	retired   atomic.Bool
	drained   chan struct{}
	drainOnce sync.Once
}

var (
	_ blockdev.Device          = (*memberIO)(nil)
	_ blockdev.VectorIO        = (*memberIO)(nil)
	_ blockdev.VectorFUAWriter = (*memberIO)(nil)
	_ blockdev.FUAWriter       = (*memberIO)(nil)
	_ blockdev.Trimmer         = (*memberIO)(nil)
	_ blockdev.Zeroer          = (*memberIO)(nil)
	_ blockdev.Mapper          = (*memberIO)(nil)
	_ blockdev.BlockSizer      = (*memberIO)(nil)
)

func newMemberIO(d blockdev.Device, v *Volume, i int) *memberIO {
	return &memberIO{d: d, v: v, bit: 1 << uint(i), drained: make(chan struct{})}
}

// enter counts a call in, or refuses it: the member failed, or was
// replaced. The count is taken before retired is read, so that retire
// either sees this call in flight or this call sees retired.
func (m *memberIO) enter() error {
	if m.v.failed.Load()&m.bit != 0 {
		return ErrMemberFailed
	}
	if m.inflight.Add(1) == 1 {
		m.since.Store(time.Now().UnixNano())
	}
	if m.retired.Load() {
		m.exit()
		return ErrMemberFailed
	}
	return nil
}

func (m *memberIO) exit() {
	m.since.Store(time.Now().UnixNano())
	if m.inflight.Add(-1) == 0 && m.retired.Load() {
		m.drainOnce.Do(func() { close(m.drained) })
	}
}

// retire refuses every new call; drained is closed once the calls in
// flight (a hung disk's included, whenever it answers) have returned.
func (m *memberIO) retire() {
	m.retired.Store(true)
	if m.inflight.Load() == 0 {
		m.drainOnce.Do(func() { close(m.drained) })
	}
}

// stalled reports whether the member has had a call running, and
// finished none, for longer than d.
func (m *memberIO) stalled(d time.Duration) bool {
	return m.inflight.Load() > 0 && time.Since(time.Unix(0, m.since.Load())) > d
}

func (m *memberIO) ReadAt(p []byte, off int64) (int, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.exit()
	return m.d.ReadAt(p, off)
}

func (m *memberIO) WriteAt(p []byte, off int64) (int, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.exit()
	return m.d.WriteAt(p, off)
}

func (m *memberIO) WriteAtFUA(p []byte, off int64) (int, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.exit()
	return blockdev.WriteFUA(m.d, p, off)
}

func (m *memberIO) ReadAtv(bufs [][]byte, off int64) (int, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.exit()
	return blockdev.ReadV(m.d, bufs, off)
}

func (m *memberIO) WriteAtv(bufs [][]byte, off int64) (int, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.exit()
	return blockdev.WriteV(m.d, bufs, off)
}

func (m *memberIO) WriteAtvFUA(bufs [][]byte, off int64) (int, error) {
	if err := m.enter(); err != nil {
		return 0, err
	}
	defer m.exit()
	return blockdev.WriteVFUA(m.d, bufs, off)
}

func (m *memberIO) Flush() error {
	if m.v.closing.Load() {
		// Close flushes every member not failed itself, within the
		// I/O time-out: the stripe's flush on its way out would not be.
		return nil
	}
	if err := m.enter(); err != nil {
		return err
	}
	defer m.exit()
	return m.d.Flush()
}

func (m *memberIO) Trim(off, n int64) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.exit()
	return blockdev.Trim(m.d, off, n)
}

func (m *memberIO) WriteZeroes(off, n int64, mayTrim bool) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.exit()
	return blockdev.WriteZeroes(m.d, off, n, mayTrim)
}

func (m *memberIO) Map(off, n int64) ([]blockdev.Extent, error) {
	if err := m.enter(); err != nil {
		return nil, err
	}
	defer m.exit()
	return blockdev.Map(m.d, off, n)
}

func (m *memberIO) Size() int64             { return m.d.Size() }
func (m *memberIO) BlockSize() int          { return blockdev.BlockSize(m.d) }
func (m *memberIO) Close() error            { return m.d.Close() }
func (m *memberIO) String() string          { return fmt.Sprintf("member data %#x", m.bit) }
func (m *memberIO) Unwrap() blockdev.Device { return m.d }

// Stalled returns the mask of the members that have had a data call
// running, and finished none, for longer than d: the disks that hang.
// The node asks when the time-out around the stripe expired, to fail
// those members rather than every one.
func (v *Volume) Stalled(d time.Duration) uint64 {
	v.ioMu.Lock()
	ios := append([]*memberIO(nil), v.io...)
	v.ioMu.Unlock()
	var mask uint64
	for _, m := range ios {
		if m != nil && m.stalled(d) {
			mask |= m.bit
		}
	}
	return mask
}
