package volume

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/meta"
)

var errDead = errors.New("disk dead")

// crashDiskSize is the size of the disks of TestCrashPoints: the least a
// member can be, 1 MiB of metadata and one chunk.
const crashDiskSize = mib + meta.MinChunk

// crashOp is a call that TestCrashPoints runs while disks die at every
// point of it and then crash.
type crashOp struct {
	name    string
	members int
	// spare: the call puts a new disk (the last of the disks) in member
	// 0's place.
	spare bool
	run   func(v *Volume, spare string) error
	// bits: on success, bitmap block 1 holds blockB, durably, unless no
	// member was left.
	bits bool
	// ops bounds the ops the call makes on a member's disk, spareOps on
	// the spare.
	ops, spareOps int
}

var (
	blockA = bytes.Repeat([]byte{0xA1}, 512) // bitmap block 0, durable before the call
	blockB = bytes.Repeat([]byte{0xB7}, 512) // bitmap block 1, written by the call
)

func bitmapCall(v *Volume, _ string) error {
	if _, err := v.Bitmap().WriteAt(blockB, 512); err != nil {
		return err
	}
	return v.Bitmap().Flush()
}

var crashOps = []crashOp{
	{name: "bitmap write and flush", members: 2, run: bitmapCall, bits: true, ops: 6},
	{name: "bitmap write and flush", members: 3, run: bitmapCall, bits: true, ops: 6},
	{name: "superblock update", members: 2, ops: 6, run: func(v *Volume, _ string) error {
		return v.UpdateSuper(func(sb *meta.Superblock) { sb.Generations.Current = 2 })
	}},
	{name: "superblock update", members: 3, ops: 6, run: func(v *Volume, _ string) error {
		return v.UpdateSuper(func(sb *meta.Superblock) { sb.Generations.Current = 2 })
	}},
	{name: "fail members", members: 3, ops: 6, run: func(v *Volume, _ string) error {
		return v.FailMembers(0b100, errInjected)
	}},
	{name: "replace", members: 2, spare: true, ops: 4, spareOps: 12, run: func(v *Volume, spare string) error {
		return v.Replace(0, spare, false, func(sb *meta.Superblock) { sb.SetRebuild(0, 0) })
	}},
}

// TestCrashPoints runs calls that write metadata while each disk dies
// (every op fails from then on) after n of the call's ops, for every n up
// to a bound and every combination of disks; then every disk crashes,
// and some lose what they had not flushed, in every combination. The
// volume must then open, with the superblock Super returned if the call
// succeeded; the bitmap bits reported durable must be there, even with
// the bitmaps of the members recorded failed wiped.
func TestCrashPoints(t *testing.T) {
	for _, c := range crashOps {
		t.Run(fmt.Sprintf("%s/%d members", c.name, c.members), func(t *testing.T) {
			disks := c.members
			if c.spare {
				disks++
			}
			limit := make([]int, disks)
			for i := range limit {
				limit[i] = c.ops
			}
			if c.spare {
				limit[disks-1] = c.spareOps
			}
			dieAt := make([]int, disks)
			seen := map[string]bool{}
			calls, crashes := 0, 0
			for {
				r := crashCall(t, c, dieAt)
				calls++
				// Runs in which the same disks died after the same ops
				// are the same run.
				if !seen[r.key] {
					seen[r.key] = true
					for lose := uint64(0); lose < 1<<uint(disks); lose++ {
						// A disk that had flushed everything loses
						// nothing: crashes that differ only in it are
						// the same.
						if lose&r.same == 0 {
							r.check(t, lose)
							crashes++
						}
					}
				}
				if !r.died[disks-1] {
					// The last disk did not get as far: later points
					// for it make the same run.
					dieAt[disks-1] = limit[disks-1]
				}
				if !nextCombo(dieAt, limit) {
					break
				}
			}
			t.Logf("%d calls, %d distinct runs, %d distinct crashes", calls, len(seen), crashes)
		})
	}
}

// nextCombo steps dieAt to the next combination of values, dieAt[i] in
// [0, limit[i]], the last disk's moving fastest, and reports false after
// the last.
func nextCombo(dieAt, limit []int) bool {
	for i := len(dieAt) - 1; i >= 0; i-- {
		if dieAt[i] < limit[i] {
			dieAt[i]++
			return true
		}
		dieAt[i] = 0
	}
	return false
}

// crashRun is what one call of a crashOp left: its outcome, and each
// disk's metadata area (all the checks look at) with (kept) and without
// (lost) what it had not flushed.
type crashRun struct {
	c             crashOp
	where, key    string
	died          []bool // each disk died: it got as far as its point
	same          uint64 // the disks whose kept and lost are the same
	err           error
	before, after meta.Superblock
	left          bool // a member was not failed when the call returned
	names         []string
	kept, lost    [][]byte
}

// crashCall runs c once on fresh disks: disk i dies after dieAt[i] ops
// of the call. It returns what the call left, with a key that tells the
// run apart: the ops after which disks died.
func crashCall(t *testing.T, c crashOp, dieAt []int) *crashRun {
	t.Helper()
	disks := len(dieAt)
	ds, names := makeMemDisks(disks, crashDiskSize)
	defer ds.cut()
	old := names[:c.members]
	memCreate(t, ds, old, CreateOptions{Chunk: meta.MinChunk})
	v := memOpen(t, ds, old, OpenOptions{})
	if _, err := v.Bitmap().WriteAt(blockA, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.Generations.Current = 1 }); err != nil {
		t.Fatal(err) // flushes the bitmap write too
	}
	r := &crashRun{c: c, before: v.Super(), names: names}
	faults := make([]*fault.Device, disks)
	base := make([]int, disks)
	for i, name := range old {
		faults[i] = ds.fault(name)
		base[i] = faults[i].Count(fault.Any)
		faults[i].FailAfter(fault.Any, dieAt[i], errDead)
	}
	spare := ""
	if c.spare {
		spare = names[disks-1]
		ds.atOpen = func(name string, f *fault.Device) {
			if name == spare {
				faults[disks-1] = f
				f.FailAfter(fault.Any, dieAt[disks-1], errDead)
			}
		}
	}
	r.err = c.run(v, spare)
	r.after = v.Super()
	var failed uint64
	for _, m := range v.Members() {
		if m.Failed {
			failed |= 1 << uint(m.Index)
		}
	}
	r.left = failed != 1<<uint(c.members)-1
	died := make([]int, disks)
	r.died = make([]bool, disks)
	for i, f := range faults {
		died[i] = -1
		if f != nil && f.Count(fault.Any)-base[i] > dieAt[i] {
			died[i], r.died[i] = dieAt[i], true
		}
	}
	r.key = fmt.Sprint(died)
	r.where = fmt.Sprintf("disks die after ops %v (-1: never)", died)
	ds.cut()
	v.Close()
	l := r.before.Layout()
	head := l.BitmapOffset + 2*l.BitmapBytes
	for _, name := range names {
		m := ds.mem(name)
		kept, lost := make([]byte, head), make([]byte, head)
		m.ReadAt(kept, 0)
		m.Crash()
		m.ReadAt(lost, 0)
		if bytes.Equal(kept, lost) {
			r.same |= 1 << uint(len(r.kept))
		}
		r.kept, r.lost = append(r.kept, kept), append(r.lost, lost)
	}
	switch {
	case r.err == nil && r.left && failed&^r.after.FailedMembers != 0:
		t.Fatalf("%s: the call returned with members %#x failed but recorded %#x", r.where, failed, r.after.FailedMembers)
	case r.err != nil && !errors.Is(r.err, ErrNoMemberLeft) && !c.spare:
		t.Fatalf("%s: %v", r.where, r.err)
	case r.err != nil && r.after != r.before:
		t.Fatalf("%s: the call failed (%v) but Super changed from seq %d to %d", r.where, r.err, r.before.Seq, r.after.Seq)
	}
	return r
}

// check opens the disks as a crash left them, those in lose without what
// they had not flushed, and checks the volume against the call's outcome.
func (r *crashRun) check(t *testing.T, lose uint64) {
	t.Helper()
	where := fmt.Sprintf("%s, crash loses %#b", r.where, lose)
	ds, _ := makeMemDisks(0, 0)
	defer ds.cut()
	for i, name := range r.names {
		img := r.kept[i]
		if lose&(1<<uint(i)) != 0 {
			img = r.lost[i]
		}
		ds.put(name, crashDiskSize, img)
	}
	old := r.names[:r.c.members]
	sets := [][]string{old}
	if r.c.spare {
		replaced := append([]string{r.names[len(r.names)-1]}, old[1:]...)
		if r.err == nil {
			sets = [][]string{replaced}
		} else {
			sets = append(sets, replaced)
		}
	}
	v, set := openAny(ds, sets)
	if v == nil {
		t.Fatalf("%s: call returned %v; no set of disks opens", where, r.err)
	}
	got := v.Super()
	mustClose(t, v)
	switch {
	case r.err == nil && r.left && got != r.after:
		t.Fatalf("%s: after the crash seq %d, failed %#x; the call returned seq %d, failed %#x",
			where, got.Seq, got.FailedMembers, r.after.Seq, r.after.FailedMembers)
	case got.Seq < r.before.Seq:
		t.Fatalf("%s: after the crash seq %d, older than before the call (%d)", where, got.Seq, r.before.Seq)
	}
	// Wipe the bitmaps of the members recorded failed: the bits must come
	// from the others.
	l := got.Layout()
	for i, name := range set {
		if got.MemberFailed(i) {
			m := ds.mem(name)
			m.WriteAt(make([]byte, 2*l.BitmapBytes), l.BitmapOffset)
			m.Flush()
		}
	}
	v = memOpen(t, ds, set, OpenOptions{})
	defer mustClose(t, v)
	bits := make([]byte, 1024)
	if _, err := v.Bitmap().ReadAt(bits, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bits[:512], blockA) {
		t.Fatalf("%s: a bitmap block durable before the call is lost (recorded failed %#x)", where, got.FailedMembers)
	}
	if r.c.bits && r.err == nil && r.left && !bytes.Equal(bits[512:], blockB) {
		t.Fatalf("%s: the bitmap block the call made durable is lost (recorded failed %#x)", where, got.FailedMembers)
	}
}

// openAny opens the first of the sets of disks that opens, and returns it
// with the set; nil if none does.
func openAny(ds *memDisks, sets [][]string) (*Volume, []string) {
	for _, set := range sets {
		if v, err := Open(set, OpenOptions{OpenDisk: ds.openFunc}); err == nil {
			return v, set
		}
	}
	return nil, nil
}
