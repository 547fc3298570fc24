package mirror

import (
	"testing"
	"time"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/resync"
)

// TestConformance runs the Device suite on a mirror of two Mem legs, and
// checks after each case that the legs ended up identical.
func TestConformance(t *testing.T) {
	devtest.Run(t, func(t *testing.T, size int64) blockdev.Device {
		store := blockdev.NewMem(resync.StoreSize(size, rs))
		bm, err := resync.OpenBitmap(store, size, rs, resync.BitmapOptions{FlushInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(size, bm, Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		a, b := blockdev.NewMem(size), blockdev.NewMem(size)
		if _, err := m.AddLeg("a", a, InSync, true); err != nil {
			t.Fatal(err)
		}
		if _, err := m.AddLeg("b", b, InSync, false); err != nil {
			t.Fatal(err)
		}
		// Registered before devtest's own cleanup, so it runs after the
		// mirror is closed.
		t.Cleanup(func() {
			if i := devtest.FirstDiff(a.Bytes(), b.Bytes()); i >= 0 {
				t.Errorf("legs differ at byte %d", i)
			}
			for _, l := range m.Legs() {
				if l.State() != InSync {
					t.Errorf("leg %s is %s", l.Name(), l.State())
				}
			}
			if err := bm.Close(); err != nil {
				t.Errorf("bitmap Close: %v", err)
			}
		})
		return m
	}, devtest.Options{Unaligned: true, TrimZeroes: true})
}
