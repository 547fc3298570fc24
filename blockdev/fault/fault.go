package fault

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/netraid/netraid/blockdev"
)

// Op is a kind of operation that faults are armed for.
type Op int

const (
	// Read: ReadAt, Map and Checksum.
	Read Op = iota
	// Write: WriteAt and WriteAtFUA.
	Write
	// Flush: Flush.
	Flush
	// Trim: Trim.
	Trim
	// Zero: WriteZeroes.
	Zero
	// Any matches every kind when arming a fault; Count(Any) is the total.
	Any
)

var opNames = [...]string{"read", "write", "flush", "trim", "zero", "any"}

func (o Op) String() string {
	if o < 0 || int(o) >= len(opNames) {
		return fmt.Sprintf("Op(%d)", int(o))
	}
	return opNames[o]
}

func (o Op) matches(kind Op) bool { return o == Any || o == kind }

// ErrTorn is returned by the write that TearNextWrite tore.
var ErrTorn = errors.New("fault: torn write")

// failRule fails ops of a kind: after skip more matching ops, the next
// one fails; the rule then ends (once) or keeps failing (sticky).
type failRule struct {
	op     Op
	skip   int
	err    error
	sticky bool
}

// Device wraps a blockdev.Device and injects faults armed at run time,
// from any goroutine, in the manner of pebble's errorfs. With nothing
// armed it passes every call through unchanged.
//
// It offers every optional ability of blockdev. Where the wrapped device
// lacks one, the fallback runs through this wrapper (WriteZeroes becomes
// counted, faultable writes; WriteAtFUA a write and a flush), so that
// faults reach each step.
type Device struct {
	d blockdev.Device

	mu       sync.Mutex
	counts   [Any]int
	fails    []failRule
	slow     [Any]time.Duration
	hang     [Any]bool
	release  chan struct{} // closed by Release; replaced when re-armed
	blocked  int           // ops now waiting in Hang or Slow
	tearKeep int           // >= 0: the next write keeps this many bytes
	closed   bool
	closedCh chan struct{}
}

var (
	_ blockdev.Device      = (*Device)(nil)
	_ blockdev.BlockSizer  = (*Device)(nil)
	_ blockdev.FUAWriter   = (*Device)(nil)
	_ blockdev.Trimmer     = (*Device)(nil)
	_ blockdev.Zeroer      = (*Device)(nil)
	_ blockdev.Mapper      = (*Device)(nil)
	_ blockdev.Checksummer = (*Device)(nil)
)

// Wrap returns d with no faults armed. Closing the result closes d.
func Wrap(d blockdev.Device) *Device {
	return &Device{d: d, tearKeep: -1, release: make(chan struct{}), closedCh: make(chan struct{})}
}

// Unwrap returns the wrapped device.
func (f *Device) Unwrap() blockdev.Device { return f.d }

// FailNth makes the n-th next op of kind op fail with err, counting from
// zero: FailNth(Write, 0, err) fails the very next write.
func (f *Device) FailNth(op Op, n int, err error) {
	f.arm(failRule{op: op, skip: n, err: err})
}

// FailAfter lets n more ops of kind op succeed, then fails every later
// one with err, like a disk that dies, until Heal.
func (f *Device) FailAfter(op Op, n int, err error) {
	f.arm(failRule{op: op, skip: n, err: err, sticky: true})
}

// FailAll fails every op of kind op from now on with err, until Heal.
func (f *Device) FailAll(op Op, err error) { f.FailAfter(op, 0, err) }

func (f *Device) arm(r failRule) {
	if r.err == nil {
		panic("fault: arming a failure with a nil error")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails = append(f.fails, r)
}

// Heal disarms every fault: failures, slowness, a pending tear, and hangs,
// releasing the ops that hang.
func (f *Device) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails = nil
	f.slow = [Any]time.Duration{}
	f.tearKeep = -1
	f.releaseLocked()
}

// Hang makes ops of kind op block before reaching the device until Release,
// Heal or Close. Ops released by Close fail with blockdev.ErrClosed.
func (f *Device) Hang(op Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range Any {
		if op.matches(k) {
			f.hang[k] = true
		}
	}
}

// Release lets every hanging op proceed and disarms Hang.
func (f *Device) Release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releaseLocked()
}

func (f *Device) releaseLocked() {
	f.hang = [Any]bool{}
	close(f.release)
	f.release = make(chan struct{})
}

// Slow delays ops of kind op by d before they reach the device; zero
// disarms. Close cuts the delay short.
func (f *Device) Slow(op Op, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range Any {
		if op.matches(k) {
			f.slow[k] = d
		}
	}
}

// TearNextWrite makes the next write (WriteAt or WriteAtFUA) write only its
// first keep bytes, then fail with an error wrapping ErrTorn. keep must
// suit the wrapped device's alignment.
func (f *Device) TearNextWrite(keep int) {
	if keep < 0 {
		panic("fault: TearNextWrite with negative keep")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tearKeep = keep
}

// Count returns how many ops of kind op (all ops for Any) the device has
// seen, including the ones that failed.
func (f *Device) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op != Any {
		return f.counts[op]
	}
	total := 0
	for _, c := range f.counts {
		total += c
	}
	return total
}

// Blocked returns how many ops are now held by Hang or Slow, so that a test
// can wait for an op to get stuck without sleeping.
func (f *Device) Blocked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked
}
