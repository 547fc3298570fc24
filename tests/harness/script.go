package harness

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// Script runs harness steps outside `go test` (the demo and the fault
// trials): it satisfies T, prints its log lines, and turns Fatal into a
// panic that Run catches, so that cleanups still run in reverse order.
type Script struct {
	Out io.Writer

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

type scriptAbort struct{ msg string }

// NewScript returns a Script that logs to out.
func NewScript(out io.Writer) *Script { return &Script{Out: out} }

func (s *Script) Helper() {}

func (s *Script) Logf(format string, args ...any) {
	fmt.Fprintf(s.Out, format+"\n", args...)
}

func (s *Script) Fatal(args ...any) { s.abort(fmt.Sprint(args...)) }

func (s *Script) Fatalf(format string, args ...any) { s.abort(fmt.Sprintf(format, args...)) }

func (s *Script) Skip(args ...any) { s.abort("cannot run: " + fmt.Sprint(args...)) }

func (s *Script) Skipf(format string, args ...any) {
	s.abort("cannot run: " + fmt.Sprintf(format, args...))
}

func (s *Script) abort(msg string) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	panic(scriptAbort{msg})
}

// Cleanup registers f to run when Run ends, last registered first.
func (s *Script) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// Failed reports whether a step failed.
func (s *Script) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Run runs body, then every cleanup; a Fatal in body (or in a cleanup)
// is returned as an error rather than crashing the program.
func (s *Script) Run(body func()) (err error) {
	defer func() { s.runCleanups() }()
	defer func() {
		if r := recover(); r != nil {
			if a, ok := r.(scriptAbort); ok {
				err = fmt.Errorf("%s", a.msg)
				return
			}
			buf := make([]byte, 8192)
			buf = buf[:runtime.Stack(buf, false)]
			err = fmt.Errorf("panic: %v\n%s", r, buf)
		}
	}()
	body()
	return nil
}

// Interrupt runs the registered cleanups now, from another goroutine:
// for a signal that ends the program.
func (s *Script) Interrupt() { s.runCleanups() }

func (s *Script) runCleanups() {
	for {
		s.mu.Lock()
		if len(s.cleanups) == 0 {
			s.mu.Unlock()
			return
		}
		f := s.cleanups[len(s.cleanups)-1]
		s.cleanups = s.cleanups[:len(s.cleanups)-1]
		s.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintf(os.Stderr, "cleanup: %v\n", r)
				}
			}()
			f()
		}()
	}
}
