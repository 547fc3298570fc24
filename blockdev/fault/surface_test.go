package fault_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/netraid/netraid/blockdev"
	"github.com/netraid/netraid/blockdev/devtest"
	"github.com/netraid/netraid/blockdev/fault"
)

// scenario is a small multi-op operation on a device stack built over a
// fault device, and the check of its result once it succeeds.
type scenario struct {
	name string
	// ops is how many device ops the operation takes when nothing fails.
	ops   int
	plain bool // hide the Mem's optional abilities to force fallbacks
	run   func(d blockdev.Device) error
	check func(m *blockdev.Mem) error
}

const surfaceSize = 4 << 20

var scenarios = []scenario{
	{
		name: "write write flush",
		ops:  3,
		run: func(d blockdev.Device) error {
			if _, err := d.WriteAt(devtest.Pattern(1, 0, 4096), 0); err != nil {
				return err
			}
			if _, err := d.WriteAt(devtest.Pattern(1, 8192, 4096), 8192); err != nil {
				return err
			}
			return d.Flush()
		},
		check: func(m *blockdev.Mem) error {
			return errors.Join(expect(m, 0, devtest.Pattern(1, 0, 4096)), expect(m, 8192, devtest.Pattern(1, 8192, 4096)))
		},
	},
	{
		name:  "WriteZeroes falling back to writes",
		ops:   1 + 3, // the zero op, then three 1 MiB writes
		plain: true,
		run: func(d blockdev.Device) error {
			return blockdev.WriteZeroes(d, 1<<20, 3<<20, false)
		},
		check: func(m *blockdev.Mem) error { return expect(m, 1<<20, make([]byte, 3<<20)) },
	},
	{
		name:  "FUA falling back to write and flush",
		ops:   2,
		plain: true,
		run: func(d blockdev.Device) error {
			_, err := blockdev.WriteFUA(d, devtest.Pattern(2, 512, 1024), 512)
			return err
		},
		check: func(m *blockdev.Mem) error { return expect(m, 512, devtest.Pattern(2, 512, 1024)) },
	},
	{
		name:  "vectored FUA falling back to vectored write and flush",
		ops:   2,
		plain: true,
		run: func(d blockdev.Device) error {
			_, err := blockdev.WriteVFUA(d, [][]byte{devtest.Pattern(4, 512, 512), devtest.Pattern(4, 1024, 1536)}, 512)
			return err
		},
		check: func(m *blockdev.Mem) error { return expect(m, 512, devtest.Pattern(4, 512, 2048)) },
	},
	{
		name: "unaligned write through Aligned (read-modify-write)",
		ops:  3, // head block read, tail block read, one write
		run: func(d blockdev.Device) error {
			_, err := blockdev.NewAligned(d).WriteAt(devtest.Pattern(3, 100, 5000), 100)
			return err
		},
		check: func(m *blockdev.Mem) error { return expect(m, 100, devtest.Pattern(3, 100, 5000)) },
	},
	{
		name: "unaligned WriteZeroes through Aligned",
		ops:  1 + 1 + 1 + 1 + 1, // head read+write, inner zero, tail read+write
		run: func(d blockdev.Device) error {
			return blockdev.NewAligned(d).WriteZeroes(100, 8000, true)
		},
		check: func(m *blockdev.Mem) error { return expect(m, 100, make([]byte, 8000)) },
	},
}

// TestEveryFailureSurfaces fails the i-th op of each scenario for
// i = 0, 1, ... until the scenario succeeds, and checks that every
// injected failure comes back to the caller, that the operation stops at
// it, and that the operation needs exactly the expected number of ops.
func TestEveryFailureSurfaces(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for i := 0; ; i++ {
				if i > sc.ops {
					t.Fatalf("still failing after failing op %d; the operation takes %d ops", i-1, sc.ops)
				}
				m := blockdev.NewMem(surfaceSize)
				var inner blockdev.Device = m
				if sc.plain {
					inner = plain{m}
				}
				m.WriteAt(bytes.Repeat([]byte{0xee}, surfaceSize), 0)
				f := fault.Wrap(inner)
				f.FailNth(fault.Any, i, errInjected)
				err := sc.run(f)
				count := f.Count(fault.Any)
				if err == nil {
					if i != sc.ops || count != sc.ops {
						t.Fatalf("succeeded with op %d armed to fail after %d ops; want %d ops", i, count, sc.ops)
					}
					if err := sc.check(m); err != nil {
						t.Fatal(err)
					}
					f.Close()
					return
				}
				f.Close()
				if !errors.Is(err, errInjected) {
					t.Fatalf("op %d failed with %v, which does not wrap the injected error", i, err)
				}
				if count != i+1 {
					t.Fatalf("op %d failed but the operation went on to %d ops", i, count)
				}
			}
		})
	}
}

// expect checks that m holds want at off.
func expect(m *blockdev.Mem, off int64, want []byte) error {
	if got := m.Bytes()[off : off+int64(len(want))]; !bytes.Equal(got, want) {
		return fmt.Errorf("device content at %d+%d is not what the operation wrote", off, len(want))
	}
	return nil
}
