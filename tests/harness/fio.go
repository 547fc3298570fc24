package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// FioResult is what the tests read of fio's JSON output.
type FioResult struct {
	Jobs []struct {
		Name  string `json:"jobname"`
		Error int    `json:"error"`
		Write struct {
			IOBytes int64 `json:"io_bytes"`
			IOs     int64 `json:"total_ios"`
			ClatNS  struct {
				Max float64 `json:"max"`
			} `json:"clat_ns"`
		} `json:"write"`
		Read struct {
			IOBytes int64 `json:"io_bytes"`
			IOs     int64 `json:"total_ios"`
			ClatNS  struct {
				Max float64 `json:"max"`
			} `json:"clat_ns"`
		} `json:"read"`
	} `json:"jobs"`
}

// Fio is a fio run in the background.
type Fio struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	errb bytes.Buffer
	done chan struct{}
	err  error
}

// StartFio runs fio with the nbd engine against uri and the given job
// options (each "--key=value"), with JSON output.
func StartFio(t T, uri string, opts ...string) *Fio {
	t.Helper()
	args := append([]string{"--name=job", "--ioengine=nbd", "--uri=" + uri, "--output-format=json", "--verify_state_save=0"}, opts...)
	f := &Fio{done: make(chan struct{})}
	f.cmd = exec.CommandContext(context.Background(), "fio", args...)
	f.cmd.Stdout, f.cmd.Stderr = &f.out, &f.errb
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("fio: %v", err)
	}
	go func() { f.err = f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		select {
		case <-f.done:
		default:
			f.cmd.Process.Kill()
			<-f.done
		}
	})
	return f
}

// Wait waits for fio (at most timeout) and returns its result; fio
// failing or reporting an error fails the test.
func (f *Fio) Wait(t T, timeout time.Duration) FioResult {
	t.Helper()
	r, err := f.Result(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Result waits for fio (at most timeout, then kills it) and returns its
// result, or an error if it failed, reported an error or did not finish.
// What fio reported is returned even with the error, when there is any.
func (f *Fio) Result(timeout time.Duration) (FioResult, error) {
	select {
	case <-f.done:
	case <-time.After(timeout):
		f.cmd.Process.Kill()
		<-f.done
		return FioResult{}, fmt.Errorf("fio did not finish within %v", timeout)
	}
	var r FioResult
	s := f.out.String()
	if i := strings.Index(s, "{"); i >= 0 {
		s = s[i:]
	}
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return r, fmt.Errorf("fio: %v (%v)\n%s\n%s", f.err, err, f.out.String(), f.errb.String())
	}
	if f.err != nil || len(r.Jobs) == 0 || r.Jobs[0].Error != 0 {
		return r, fmt.Errorf("fio failed: %v %s\n%s", f.err, f.errb.String(), fmt.Sprint(r))
	}
	return r, nil
}

// Done reports whether fio has finished.
func (f *Fio) Done() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}
