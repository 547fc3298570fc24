package volume

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/meta"
	"github.com/netraid/netraid/stripe"
)

// Volume is a node's assembled local volume.
type Volume struct {
	log      *slog.Logger
	readOnly bool
	set      *stripe.Set
	data     *blockdev.Aligned
	bitmap   *blockdev.Aligned
	bm       *bitmapDev
	wrap     func(int, blockdev.Device) blockdev.Device
	opener   opener // for Replace
	onFailed func(member int, err error)
	noMember func()

	// io are the members' data areas as the stripe sees them, for
	// Stalled; ioMu guards the slice (Replace swaps one).
	ioMu sync.Mutex
	io   []*memberIO
	// lingering are replaced members' data areas with calls still in
	// flight (closeReplaced).
	lingering map[*memberIO]struct{}
	// closing: Close has begun; the data areas' flushes are its own.
	closing atomic.Bool

	// failed holds the members failed in memory: no metadata I/O is
	// issued to them. It only grows, but for the member Replace puts a
	// new disk in. recorded mirrors sb.FailedMembers, the members
	// recorded failed, for the bitmap's path; failed holds every member
	// recorded, but one a Replace is putting back.
	failed   atomic.Uint64
	recorded atomic.Uint64
	// cur is a copy of sb for Super, which does not wait for superblock
	// writes.
	cur atomic.Pointer[meta.Superblock]

	// mu serialises superblock writes (UpdateSuper, FailMembers, the
	// recording of failures, Replace) and Close, and guards what follows
	// and the members' slot fields.
	mu      sync.Mutex
	members []*member       // in member order; swapped under membersMu too
	sb      meta.Superblock // newest durable, with member 0's per-member fields
	seq     uint64          // the highest Seq written to any member, durable or not
	closed  bool

	// membersMu guards the members slice for Members, which does not
	// wait for superblock writes.
	membersMu sync.Mutex
}

// member is one assembled member disk.
type member struct {
	*disk
	index int
	uuid  meta.UUID
	// slot holds this member's newest valid superblock: the next update
	// writes the other one.
	slot int
}

// Member describes one member disk.
type Member struct {
	Index    int
	Path     string
	DiskUUID meta.UUID
	// Size is the disk's size in bytes.
	Size int64
	// Failed: the member has failed; no metadata I/O goes to it. It is
	// recorded failed in the superblock (Super().FailedMembers) unless no
	// member was left to record it on.
	Failed bool
}

// errClosed is returned by calls on a closed Volume.
var errClosed = fmt.Errorf("volume: %w", blockdev.ErrClosed)

// newVolume builds the data and bitmap devices over assembled members.
// The seq of the newest superblock is the highest on any member.
func newVolume(members []*member, newest *meta.Superblock, o OpenOptions, log *slog.Logger, op opener) (*Volume, error) {
	wrap := o.WrapData
	if wrap == nil {
		wrap = func(_ int, d blockdev.Device) blockdev.Device { return d }
	}
	v := &Volume{log: log, readOnly: o.ReadOnly, members: members, sb: *newest, seq: newest.Seq,
		wrap: wrap, opener: op, onFailed: o.OnMemberFailed, noMember: o.OnNoMemberLeft, lingering: map[*memberIO]struct{}{}}
	sb := *newest
	sb.Member, sb.DiskUUID = 0, members[0].uuid
	v.setSuperLocked(sb, true)
	v.failed.Store(newest.FailedMembers)
	data := make([]blockdev.Device, len(members))
	bitmaps := make([]*blockdev.Section, len(members))
	paths := make([]string, len(members))
	for i, m := range members {
		var err error
		if data[i], bitmaps[i], err = v.sections(i, m.disk); err != nil {
			return nil, err
		}
		paths[i] = m.path
	}
	bm, err := newBitmap(v, bitmaps, paths, int64(newest.BitmapOffset))
	if err != nil {
		return nil, err
	}
	set, err := stripe.New(data, int64(newest.Chunk))
	if err != nil {
		return nil, fmt.Errorf("volume: %s: %w", newest.Name, err)
	}
	v.set = set
	v.data = blockdev.NewAligned(set)
	v.bm = bm
	v.bitmap = blockdev.NewAligned(v.bm)
	return v, nil
}

// sections returns member i's data device (the data area, wrapped by
// WrapData, then by memberIO, which refuses the I/O of a failed member
// and tells Stalled which member hangs) and its bitmap area (on the
// disk's metadata view, bounded by the I/O time-out already).
func (v *Volume) sections(i int, d *disk) (blockdev.Device, *blockdev.Section, error) {
	l := v.sb.Layout()
	sec, err := blockdev.NewSection(d.dev, l.DataOffset, l.MemberDataSize)
	if err != nil {
		return nil, nil, fmt.Errorf("volume: %s: %w", d.path, err)
	}
	bm, err := blockdev.NewSection(d.mdev, l.BitmapOffset, 2*l.BitmapBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("volume: %s: %w", d.path, err)
	}
	io := newMemberIO(v.wrap(i, sec), v, i)
	v.ioMu.Lock()
	for len(v.io) <= i {
		v.io = append(v.io, nil)
	}
	v.io[i] = io
	v.ioMu.Unlock()
	return io, bm, nil
}

// Data is the volume's data: a stripe over the members' data areas that
// accepts any offset, length and buffer alignment. It belongs to the
// Volume: do not close it.
func (v *Volume) Data() blockdev.Device { return v.data }

// Bitmap is a device of 2*BitmapBytes bytes: the dirty bitmap, then the
// "used" bitmap. Writes go to every member not marked failed, in
// parallel; reads come from the first such member that answers. It
// accepts any alignment and belongs to the Volume: do not close it.
func (v *Volume) Bitmap() blockdev.Device { return v.bitmap }

// Super returns a copy of the volume's current superblock, with member
// 0's per-member fields (Member, DiskUUID). It does not wait for a
// superblock write in progress: it returns the superblock as it was
// before that write, until the write's call returns.
func (v *Volume) Super() meta.Superblock { return *v.cur.Load() }

// setSuperLocked makes sb the volume's superblock, and with publish the
// one Super returns. Callers hold v.mu, or own v alone.
func (v *Volume) setSuperLocked(sb meta.Superblock, publish bool) {
	v.sb = sb
	v.recorded.Store(sb.FailedMembers)
	if publish {
		v.cur.Store(&sb)
	}
}

// Members describes the member disks, in member order.
func (v *Volume) Members() []Member {
	v.membersMu.Lock()
	defer v.membersMu.Unlock()
	failed := v.failed.Load()
	out := make([]Member, len(v.members))
	for i, m := range v.members {
		out[i] = Member{Index: m.index, Path: m.path, DiskUUID: m.uuid, Size: m.dev.Size(), Failed: failed&(1<<uint(i)) != 0}
	}
	return out
}

// Close waits for the I/O in flight on Data and Bitmap, flushes every
// member (unless read-only) and closes them, releasing their locks.
func (v *Volume) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return fmt.Errorf("%w: closed twice", errClosed)
	}
	v.closed = true
	// The stripe's close flushes its members without a time-out; they
	// are flushed below, each within it.
	v.closing.Store(true)
	// A member whose data call has hung past the time-out is left
	// behind: the stripe's close would wait for that call, and so would
	// closing its disk; the process's exit releases them.
	var hung uint64
	if v.opener.timeout > 0 {
		hung = v.Stalled(v.opener.timeout)
	}
	v.ioMu.Lock()
	lingering := len(v.lingering)
	v.ioMu.Unlock()
	if lingering > 0 {
		v.log.Warn("replaced disk(s) hang: their I/O is left behind at close", "disks", lingering)
	}
	var errs []error
	devs := []blockdev.Device{v.bitmap}
	if hung == 0 && lingering == 0 {
		devs = append(devs, v.data)
	} else {
		v.log.Warn("member disk(s) hang: their I/O is left behind at close", "members", fmt.Sprintf("%#x", hung))
	}
	for _, d := range devs {
		if err := d.Close(); err != nil && !errors.Is(err, blockdev.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if !v.readOnly {
		failed := v.failed.Load()
		errs = append(errs, eachMember(v.members, func(_ int, m *member) error {
			if failed&(1<<uint(m.index)) != 0 {
				return nil // no metadata I/O goes to a failed member
			}
			return m.flush(m.index)
		}))
	}
	for _, m := range v.members {
		if hung&(1<<uint(m.index)) != 0 {
			continue
		}
		if err := m.close(); err != nil {
			errs = append(errs, fmt.Errorf("volume: close %s: %w", m.path, err))
		}
	}
	return errors.Join(errs...)
}

// eachMember runs f on every member of ms (i is the index in ms) in
// parallel and joins the errors in that order.
func eachMember(ms []*member, f func(i int, m *member) error) error {
	disks := make([]*disk, len(ms))
	for i, m := range ms {
		disks[i] = m.disk
	}
	return eachDisk(disks, func(i int, _ *disk) error { return f(i, ms[i]) })
}
