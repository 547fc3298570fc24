package fault_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
)

// TestVectorIsOneOp checks that a vectored call is one op of its kind,
// that a failure armed for it fails it whole, and that it reaches the
// wrapped device's vectored I/O or, without it, the fallback.
func TestVectorIsOneOp(t *testing.T) {
	for _, hide := range []bool{false, true} {
		m := blockdev.NewMem(1 << 16)
		var inner blockdev.Device = m
		if hide {
			inner = plain{m}
		}
		f := fault.Wrap(inner)
		bufs := [][]byte{devtest.Pattern(1, 0, 512), devtest.Pattern(1, 512, 1024), devtest.Pattern(1, 1536, 512)}
		if n, err := blockdev.WriteV(f, bufs, 0); err != nil || n != 2048 {
			t.Fatalf("WriteV = %d, %v", n, err)
		}
		got := [][]byte{make([]byte, 1000), make([]byte, 1048)}
		if n, err := blockdev.ReadV(f, got, 0); err != nil || n != 2048 || !bytes.Equal(bytes.Join(got, nil), devtest.Pattern(1, 0, 2048)) {
			t.Fatalf("ReadV = %d, %v", n, err)
		}
		if r, w := f.Count(fault.Read), f.Count(fault.Write); r != 1 || w != 1 {
			t.Fatalf("hidden %v: %d reads and %d writes, want 1 and 1", hide, r, w)
		}
		f.FailNth(fault.Write, 0, errInjected)
		if n, err := blockdev.WriteVFUA(f, [][]byte{make([]byte, 512), make([]byte, 512)}, 0); n != 0 || !errors.Is(err, errInjected) {
			t.Fatalf("WriteVFUA with a failure armed = %d, %v", n, err)
		}
		if !bytes.Equal(m.Bytes()[:2048], devtest.Pattern(1, 0, 2048)) {
			t.Fatal("a failed vectored write changed the device")
		}
		f.Close()
	}
}

// TestTearVector tears a vectored write in its second buffer.
func TestTearVector(t *testing.T) {
	f, m := wrapped(t, 1<<16)
	next := devtest.Pattern(2, 0, 4096)
	f.TearNextWrite(1500)
	n, err := f.WriteAtv([][]byte{next[:1024], next[1024:3072], next[3072:]}, 0)
	if !errors.Is(err, fault.ErrTorn) || n != 1500 {
		t.Fatalf("torn vectored write = %d, %v; want 1500, ErrTorn", n, err)
	}
	want := append(bytes.Clone(next[:1500]), make([]byte, 4096-1500)...)
	if got := m.Bytes()[:4096]; !bytes.Equal(got, want) {
		t.Fatal("torn vectored write did not write exactly its first 1500 bytes")
	}
}
