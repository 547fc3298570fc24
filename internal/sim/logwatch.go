package sim

import (
	"bytes"
	"strings"
	"sync"
)

// LogWatch is an io.Writer for the nodes' logs that keeps every line and
// lets a test wait for one: a condition a test can wait on where nothing
// else shows the moment (a hello accepted, say).
type LogWatch struct {
	mu    sync.Mutex
	lines []string
	part  []byte
	wake  chan struct{}
}

// NewLogWatch returns an empty LogWatch.
func NewLogWatch() *LogWatch { return &LogWatch{wake: make(chan struct{})} }

func (w *LogWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.part = append(w.part, p...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, string(w.part[:i]))
		w.part = w.part[i+1:]
	}
	close(w.wake)
	w.wake = make(chan struct{})
	return len(p), nil
}

// Mark returns the number of lines so far, for Wait.
func (w *LogWatch) Mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lines)
}

// Find returns the first line after mark holding every one of subs.
func (w *LogWatch) Find(mark int, subs ...string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines[min(mark, len(w.lines)):] {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return l, true
		}
	}
	return "", false
}

// Wait returns a channel that is closed at the next write.
func (w *LogWatch) Wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wake
}

// String returns every line.
func (w *LogWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}
