package main

import (
	"fmt"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"
)

// sizeValue is a flag holding a size in bytes, written as go-humanize
// reads it (16MiB, 200MB, 0), up to max if max > 0. Checking the size in
// Set refuses a bad one alike on the command line and in a --config file
// (with its line).
type sizeValue struct {
	p   *int64
	max int64
}

// sizeFlag defines a size flag.
func sizeFlag(fs *pflag.FlagSet, name string, def, max int64, usage string) *int64 {
	p := new(int64)
	*p = def
	fs.Var(&sizeValue{p: p, max: max}, name, usage)
	return p
}

func (v *sizeValue) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("expected %s", v.Expect())
	}
	if v.max > 0 && n > uint64(v.max) {
		return fmt.Errorf("%s is more than %s", s, humanize.IBytes(uint64(v.max)))
	}
	*v.p = int64(n)
	return nil
}

// String is exact, so that a size printed (--print-config, the default
// in --help) reads back the same: the largest unit that divides it.
func (v *sizeValue) String() string {
	if v.p == nil {
		return "0"
	}
	return exactSize(*v.p)
}

func exactSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 40, "TiB"}, {1e12, "TB"}, {1 << 30, "GiB"}, {1e9, "GB"}, {1 << 20, "MiB"}, {1e6, "MB"}, {1 << 10, "KiB"}, {1e3, "kB"}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d", n)
}

func (v *sizeValue) Type() string { return "size" }

// Expect says what the flag takes (conffile.Expecter).
func (v *sizeValue) Expect() string {
	if v.max > 0 {
		return fmt.Sprintf("a size such as 16MiB, 200MB or 0, up to %s", humanize.IBytes(uint64(v.max)))
	}
	return "a size such as 16MiB, 200MB or 0"
}
