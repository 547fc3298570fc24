package volume

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/fault"
	"github.com/netraid/netraid/meta"
)

var errInjected = errors.New("injected")

// failLog records the calls of OnMemberFailed.
type failLog struct {
	mu    sync.Mutex
	calls []failure
}

func (l *failLog) add(member int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, failure{member, err})
}

func (l *failLog) get() []failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]failure(nil), l.calls...)
}

// metaOps are the calls that write metadata, each as it is used: a
// bitmap change is written, then flushed.
var metaOps = map[string]func(v *Volume) error{
	"bitmap write and flush": func(v *Volume) error {
		if _, err := v.Bitmap().WriteAt(bytes.Repeat([]byte{0xB1}, 512), 1024); err != nil {
			return err
		}
		return v.Bitmap().Flush()
	},
	"bitmap fua write": func(v *Volume) error {
		_, err := blockdev.WriteFUA(v.Bitmap(), bytes.Repeat([]byte{0xB2}, 512), 2048)
		return err
	},
	"bitmap zeroes and flush": func(v *Volume) error {
		if err := blockdev.WriteZeroes(v.Bitmap(), 0, 512, false); err != nil {
			return err
		}
		return v.Bitmap().Flush()
	},
	"superblock update": func(v *Volume) error {
		return v.UpdateSuper(func(sb *meta.Superblock) { sb.Generations.Current++ })
	},
}

// checkFailed checks that exactly the members of want have failed, each
// reported once to OnMemberFailed with a *MemberError naming it that
// wraps cause, and recorded in Super (unless no member is left).
func checkFailed(t *testing.T, v *Volume, log *failLog, want uint64, cause error) {
	t.Helper()
	var got uint64
	for _, m := range v.Members() {
		if m.Failed {
			got |= 1 << uint(m.Index)
		}
	}
	if got != want {
		t.Fatalf("failed members %#x, want %#x", got, want)
	}
	all := uint64(1)<<uint(len(v.Members())) - 1
	if rec := v.Super().FailedMembers; want != all && rec != want {
		t.Fatalf("recorded failed members %#x, want %#x", rec, want)
	}
	calls := log.get()
	var told uint64
	for _, c := range calls {
		var me *MemberError
		if !errors.As(c.err, &me) || me.Member != c.member || !errors.Is(c.err, cause) {
			t.Fatalf("OnMemberFailed(%d, %v): want a MemberError of that member wrapping %v", c.member, c.err, cause)
		}
		if told&(1<<uint(c.member)) != 0 {
			t.Fatalf("OnMemberFailed told of member %d twice", c.member)
		}
		told |= 1 << uint(c.member)
	}
	if told != want {
		t.Fatalf("OnMemberFailed told of members %#x, want %#x", told, want)
	}
}

// TestMetaHangFailsMember: a member whose metadata I/O hangs is failed
// when the call times out, the call succeeds on the other member, the
// failure is reported and recorded, and no later metadata I/O goes to
// the member.
func TestMetaHangFailsMember(t *testing.T) {
	t.Parallel()
	for name, op := range metaOps {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ds, names := newMemDisks(t, 2, 4*mib)
			memCreate(t, ds, names, CreateOptions{})
			var log failLog
			v := memOpen(t, ds, names, OpenOptions{IOTimeout: testIOTimeout, OnMemberFailed: log.add})
			f := ds.fault(names[1])
			f.Hang(fault.Any)
			t.Cleanup(f.Release)
			if err := returns(t, name, func() error { return op(v) }); err != nil {
				t.Fatalf("%s with member 1 hung: %v", name, err)
			}
			checkFailed(t, v, &log, 0b10, blockdev.ErrTimeout)
			seen := f.Count(fault.Any)
			for other, op := range metaOps {
				if err := op(v); err != nil {
					t.Fatalf("%s after member 1 failed: %v", other, err)
				}
			}
			if got := f.Count(fault.Any); got != seen {
				t.Fatalf("%d metadata ops reached the failed member", got-seen)
			}
			f.Release()
			mustClose(t, v)
			v = memOpen(t, ds, names, OpenOptions{})
			defer mustClose(t, v)
			if sb := v.Super(); sb.FailedMembers != 0b10 || !v.Members()[1].Failed {
				t.Fatalf("after reopen: failed members %#x", sb.FailedMembers)
			}
		})
	}
}

// TestMetaFailNth fails the n-th op of one member's disk, for n = 0, 1,
// 2... until the call no longer reaches it, for every call that writes
// metadata, every member, and volumes of one to three members. Each call
// succeeds (but an update with no member left); the member is failed,
// reported once and recorded; and after a crash that drops everything
// unflushed the volume opens with the superblock Super returned.
func TestMetaFailNth(t *testing.T) {
	for name, op := range metaOps {
		for members := 1; members <= 3; members++ {
			for k := range members {
				for n := 0; ; n++ {
					if !failNth(t, name, op, members, k, n) {
						break
					}
				}
			}
		}
	}
}

// failNth runs one case of TestMetaFailNth and reports whether the fault
// fired.
func failNth(t *testing.T, name string, op func(*Volume) error, members, k, n int) bool {
	t.Helper()
	ds, names := newMemDisks(t, members, 2*mib)
	memCreate(t, ds, names, CreateOptions{Chunk: 64 * kib})
	var log failLog
	v := memOpen(t, ds, names, OpenOptions{OnMemberFailed: log.add})
	f := ds.fault(names[k])
	base := f.Count(fault.Any)
	f.FailNth(fault.Any, n, errInjected)
	err := op(v)
	fired := f.Count(fault.Any)-base > n
	var want uint64
	if fired {
		want = 1 << uint(k)
	}
	lastOne := fired && members == 1
	switch {
	case lastOne && name == "superblock update":
		if !errors.Is(err, ErrNoMemberLeft) {
			t.Fatalf("%s, %d members, member %d's op %d failed: %v, want ErrNoMemberLeft", name, members, k, n, err)
		}
	case err != nil:
		t.Fatalf("%s, %d members, member %d's op %d failed: %v", name, members, k, n, err)
	}
	checkFailed(t, v, &log, want, errInjected)
	sb := v.Super()
	ds.crash(1<<uint(members) - 1)
	v.Close()
	v = memOpen(t, ds, names, OpenOptions{})
	defer mustClose(t, v)
	if got := v.Super(); !lastOne && got != sb {
		t.Fatalf("%s, %d members, member %d's op %d failed: after a crash seq %d, failed %#x; want seq %d, failed %#x",
			name, members, k, n, got.Seq, got.FailedMembers, sb.Seq, sb.FailedMembers)
	}
	return fired
}

// TestFailMembers: the owner fails a member it found failed by a data
// error; the record is durable before the call returns, OnMemberFailed is
// not called, and no metadata I/O goes to the member.
func TestFailMembers(t *testing.T) {
	ds, names := newMemDisks(t, 3, 4*mib)
	memCreate(t, ds, names, CreateOptions{})
	var log failLog
	v := memOpen(t, ds, names, OpenOptions{OnMemberFailed: log.add})
	if err := v.FailMembers(0b1000, errInjected); err == nil {
		t.Fatal("FailMembers of a member beyond the volume succeeded")
	}
	seen := ds.fault(names[2]).Count(fault.Any)
	if err := v.FailMembers(0b100, errInjected); err != nil {
		t.Fatal(err)
	}
	if got := ds.fault(names[2]).Count(fault.Any); got != seen {
		t.Fatalf("FailMembers sent %d ops to the member it failed", got-seen)
	}
	if err := v.FailMembers(0b100, errInjected); err != nil {
		t.Fatalf("FailMembers of a member failed already: %v", err)
	}
	if sb := v.Super(); sb.FailedMembers != 0b100 || sb.Seq != 2 {
		t.Fatalf("after FailMembers: seq %d, failed %#x; want seq 2, failed 0b100", sb.Seq, sb.FailedMembers)
	}
	if calls := log.get(); len(calls) != 0 {
		t.Fatalf("OnMemberFailed called for a member given to FailMembers: %v", calls)
	}
	ds.crash(0b111)
	v.Close()
	v = memOpen(t, ds, names, OpenOptions{})
	if !v.Members()[2].Failed {
		t.Fatal("a member failed by FailMembers is not failed after a crash")
	}
	if err := v.FailMembers(0b011, errInjected); !errors.Is(err, ErrNoMemberLeft) {
		t.Fatalf("FailMembers of the last members = %v, want ErrNoMemberLeft", err)
	}
	if sb := v.Super(); sb.FailedMembers != 0b100 {
		t.Fatalf("FailMembers with no member left changed Super: failed %#x", sb.FailedMembers)
	}
	mustClose(t, v)
}

// TestOneMemberFails: a volume of one member whose disk dies keeps taking
// bitmap writes, in memory, and a Replace puts them on the new disk.
func TestOneMemberFails(t *testing.T) {
	ds, names := newMemDisks(t, 2, 4*mib)
	memCreate(t, ds, names[:1], CreateOptions{})
	var log failLog
	v := memOpen(t, ds, names[:1], OpenOptions{OnMemberFailed: log.add})
	ds.fault(names[0]).FailAll(fault.Any, errInjected)
	bits := bytes.Repeat([]byte{0x96}, 4096)
	if _, err := v.Bitmap().WriteAt(bits, 4096); err != nil {
		t.Fatalf("bitmap write on a dead disk: %v", err)
	}
	if err := v.Bitmap().Flush(); err != nil {
		t.Fatalf("bitmap flush on a dead disk: %v", err)
	}
	checkFailed(t, v, &log, 1, errInjected)
	if err := v.UpdateSuper(func(sb *meta.Superblock) { sb.Role = meta.Primary }); !errors.Is(err, ErrNoMemberLeft) {
		t.Fatalf("UpdateSuper on a dead disk: %v, want ErrNoMemberLeft", err)
	}
	err := v.Replace(0, names[1], false, func(sb *meta.Superblock) { sb.SetRebuild(0, 0) })
	if err != nil {
		t.Fatalf("Replace of the only member: %v", err)
	}
	if m := v.Members()[0]; m.Failed || m.Path != names[1] {
		t.Fatalf("member 0 after Replace: %+v", m)
	}
	checkBitmap(t, v, 4096, bits)
	ds.crash(0b11)
	v.Close()
	v = memOpen(t, ds, names[1:], OpenOptions{})
	defer mustClose(t, v)
	if sb := v.Super(); !sb.Rebuilding || sb.FailedMembers != 0 {
		t.Fatalf("the new disk's superblock: rebuilding %v, failed %#x", sb.Rebuilding, sb.FailedMembers)
	}
	checkBitmap(t, v, 4096, bits)
}

// TestUpdateSuperOutcome: UpdateSuper either returns nil, with the update
// in Super and durable, or an error, with Super unchanged.
func TestUpdateSuperOutcome(t *testing.T) {
	type arm struct {
		member int
		op     fault.Op
		n      int
	}
	for _, c := range []struct {
		name   string
		arms   []arm
		want   error  // nil or ErrNoMemberLeft
		failed uint64 // the members failed afterwards
	}{
		{"no failure", nil, nil, 0},
		{"member 1 fails the write", []arm{{1, fault.Write, 0}}, nil, 0b10},
		{"member 0 fails the flush", []arm{{0, fault.Flush, 0}}, nil, 0b01},
		{"both fail the write", []arm{{0, fault.Write, 0}, {1, fault.Write, 0}}, ErrNoMemberLeft, 0b11},
		// Member 0 takes the update, then fails the write that records
		// member 1's failure: no member is left to record anything.
		{"member 0 fails the record", []arm{{1, fault.Write, 0}, {0, fault.Write, 1}}, ErrNoMemberLeft, 0b11},
	} {
		t.Run(c.name, func(t *testing.T) {
			ds, names := newMemDisks(t, 2, 4*mib)
			memCreate(t, ds, names, CreateOptions{})
			v := memOpen(t, ds, names, OpenOptions{})
			before := v.Super()
			for _, a := range c.arms {
				ds.fault(names[a.member]).FailNth(a.op, a.n, errInjected)
			}
			err := v.UpdateSuper(func(sb *meta.Superblock) { sb.Generations.Current = 42 })
			if !errors.Is(err, c.want) {
				t.Fatalf("UpdateSuper = %v, want %v", err, c.want)
			}
			after := v.Super()
			var failed uint64
			for _, m := range v.Members() {
				if m.Failed {
					failed |= 1 << uint(m.Index)
				}
			}
			if failed != c.failed {
				t.Fatalf("failed members %#x, want %#x", failed, c.failed)
			}
			switch {
			case err != nil && after != before:
				t.Fatalf("UpdateSuper failed but Super changed: seq %d to %d", before.Seq, after.Seq)
			case err == nil && (after.Generations.Current != 42 || after.FailedMembers != c.failed):
				t.Fatalf("UpdateSuper succeeded but Super has generation %#x, failed %#x", after.Generations.Current, after.FailedMembers)
			}
			ds.crash(0b11)
			v.Close()
			v = memOpen(t, ds, names, OpenOptions{})
			defer mustClose(t, v)
			got := v.Super()
			if err == nil && got != after {
				t.Fatalf("after a crash: seq %d, generation %#x; UpdateSuper returned nil with seq %d", got.Seq, got.Generations.Current, after.Seq)
			}
			if err != nil && got.Generations.Current != before.Generations.Current && got.Generations.Current != 42 {
				t.Fatalf("after a crash: generation %#x, neither the previous nor the update", got.Generations.Current)
			}
		})
	}
}

// TestOpenBitmapRead: Open reads the bitmaps from the first member whose
// read works, and fails, naming each member, if none does.
func TestOpenBitmapRead(t *testing.T) {
	ds, names := newMemDisks(t, 2, 4*mib)
	memCreate(t, ds, names, CreateOptions{})
	v := memOpen(t, ds, names, OpenOptions{})
	bits := bytes.Repeat([]byte{0x77}, 512)
	if _, err := blockdev.WriteFUA(v.Bitmap(), bits, 0); err != nil {
		t.Fatal(err)
	}
	mustClose(t, v)
	// Each disk's first read is its superblocks, the second its bitmaps.
	failBitmapRead := func(which ...string) {
		ds.atOpen = func(name string, f *fault.Device) {
			for _, w := range which {
				if name == w {
					f.FailNth(fault.Read, 1, errInjected)
				}
			}
		}
	}
	failBitmapRead(names[0])
	v = memOpen(t, ds, names, OpenOptions{})
	checkBitmap(t, v, 0, bits)
	mustClose(t, v)
	failBitmapRead(names[0], names[1])
	_, err := Open(names, OpenOptions{OpenDisk: ds.openFunc})
	var me *MemberError
	if !errors.As(err, &me) || !errors.Is(err, errInjected) {
		t.Fatalf("Open with no bitmap readable = %v, want MemberErrors", err)
	}
}
