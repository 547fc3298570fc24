package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeHandler answers status, and runs actions until released.
type fakeHandler struct {
	started chan struct{} // an action began
	release chan struct{} // let it finish
	ctxErr  chan error    // what its context said when it finished
}

func newFakeHandler() *fakeHandler {
	return &fakeHandler{started: make(chan struct{}, 1), release: make(chan struct{}), ctxErr: make(chan error, 1)}
}

func (h *fakeHandler) Status() Status { return Status{} }

func (h *fakeHandler) Do(ctx context.Context, action string, r Request) (string, error) {
	h.started <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	h.ctxErr <- ctx.Err()
	return "done", nil
}

// serveControl serves h on a control socket in a new directory and
// returns the socket's path.
func serveControl(t *testing.T, h handler, wrap func(*controlListener)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl")
	l, err := listenControl(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		wrap(l.(*controlListener))
	}
	hs := controlServer(h)
	done := make(chan struct{})
	go func() { defer close(done); hs.Serve(l) }()
	t.Cleanup(func() {
		hs.Close()
		<-done
	})
	return path
}

// setVar sets a time-out for the test's duration.
func setVar(t *testing.T, v *time.Duration, d time.Duration) {
	old := *v
	*v = d
	t.Cleanup(func() { *v = old })
}

// TestListenControlMode: under umask 000, in a directory anyone may
// write, the socket appears with mode 0600 and nothing is left beside
// it; a stale socket is replaced, a live one is not taken, and a
// directory in the way is an error.
func TestListenControlMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ctl")
	// A stale socket: bound, then its listener gone without removing it.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err := listenControl(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	defer l.Close()
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, %v; want a socket of mode 0600", fi.Mode(), err)
	}
	if a := l.Addr().String(); a != path {
		t.Fatalf("listener address %s, want %s", a, path)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("the directory holds %d entries, want the socket alone", len(ents))
	}
	if _, err := listenControl(path, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("over a live socket: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if l2, err := listenControl(filepath.Join(dir, "taken"), slog.New(slog.DiscardHandler)); err == nil {
		l2.Close()
		t.Fatal("a directory at the socket's path was replaced")
	}
}

// TestControlPeerCred: the kernel's record of who connected decides; a
// caller the listener does not allow gets no answer, only a closed
// connection, and the refusal is logged. (TestControlSocketNobody in
// tests/ shows another user kept out of a real daemon.)
func TestControlPeerCred(t *testing.T) {
	c, s := unixPair(t)
	uid, err := peerUID(s)
	c.Close()
	if err != nil || uid != os.Geteuid() {
		t.Fatalf("peerUID: %d, %v; want %d", uid, err, os.Geteuid())
	}
	log := &lockedWriter{w: &strings.Builder{}}
	asked := make(chan int, 8)
	path := serveControl(t, newFakeHandler(), func(l *controlListener) {
		l.log = slog.New(slog.NewTextHandler(log, nil))
		l.allow = func(uid int) bool { asked <- uid; return false }
	})
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/resync-rate HTTP/1.1\r\nHost: netraid\r\nContent-Length: 13\r\n\r\n{\"rate\":1234}")
	conn.SetReadDeadline(time.Now().Add(time.Minute)) // bounds a broken test only
	if n, err := conn.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a caller not allowed: read %d bytes, %v; want the connection closed unanswered", n, err)
	}
	if uid := <-asked; uid != os.Geteuid() {
		t.Fatalf("the listener asked about uid %d, want %d", uid, os.Geteuid())
	}
	if got := log.String(); !strings.Contains(got, "control connection refused") {
		t.Fatalf("the refusal was not logged: %q", got)
	}
}

// lockedWriter lets the server's goroutine log into a buffer the test
// reads after the refusal it waited for.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.(fmt.Stringer).String()
}

// unixPair returns both ends of a unix socket connection.
func unixPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestControlLongAction: an action that runs far past the body's
// time-out ('verify --wait') keeps its context and gets its answer, with
// a body or without one (then the server watches the connection while
// the action runs, under whatever read deadline is left).
func TestControlLongAction(t *testing.T) {
	setVar(t, &controlBodyTimeout, 20*time.Millisecond)
	setVar(t, &controlHeaderTimeout, 20*time.Millisecond)
	for _, body := range []string{`{"wait":true}`, ""} {
		h := newFakeHandler()
		path := serveControl(t, h, nil)
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/verify HTTP/1.1\r\nHost: netraid\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		<-h.started
		// Let the time-outs pass many times over while the action runs.
		time.Sleep(20 * controlBodyTimeout)
		close(h.release)
		if err := <-h.ctxErr; err != nil {
			t.Fatalf("body %q: the action's context ended while it ran: %v", body, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("body %q: answer %v %+v", body, err, resp)
		}
		resp.Body.Close()
	}
}

// TestControlIdle: a connection that sends nothing, or keeps still after
// a request, is closed by the daemon.
func TestControlIdle(t *testing.T) {
	setVar(t, &controlHeaderTimeout, 50*time.Millisecond)
	setVar(t, &controlIdleTimeout, 50*time.Millisecond)
	path := serveControl(t, newFakeHandler(), nil)
	silent, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	kept, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	br := bufio.NewReader(kept)
	io.WriteString(kept, "GET /v1/status HTTP/1.1\r\nHost: netraid\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("status on a kept-alive connection: %v %+v", err, resp)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// The deadlines only bound a broken test: the daemon closes both
	// connections long before.
	silent.SetReadDeadline(time.Now().Add(time.Minute))
	kept.SetReadDeadline(time.Now().Add(time.Minute))
	for name, r := range map[string]io.Reader{"a silent connection": silent, "a kept-alive connection": br} {
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("%s: read %v, want EOF (closed by the daemon)", name, err)
		}
	}
}
