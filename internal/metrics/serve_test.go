package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netraid/netraid/internal/lat"
	"github.com/netraid/netraid/node"
)

func TestCheckAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:9942": true, "[::1]:9942": true, ":9942": true, "/run/netraid/metrics.sock": true,
		"127.0.0.1": false, "localhost": false, "": false,
	} {
		if err := CheckAddr(addr); (err == nil) != ok {
			t.Errorf("CheckAddr(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

// get fetches /metrics through a unix socket.
func get(t *testing.T, sock string) (int, string) {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("http://netraid/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestServeUnix: /metrics on a unix socket, a stale socket replaced, a
// live one or another file refused, and Serve returns once ctx is done.
func TestServeUnix(t *testing.T) {
	t.Cleanup(func() { lat.SetLevel(lat.Off) })
	dir := t.TempDir()
	sock := filepath.Join(dir, "metrics.sock")
	// A socket left behind by a daemon that died.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Listen on a live socket: %v, want in use", err)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a regular file: %v, want refused", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	st := primaryStatus()
	reg := New(func() []node.Status { return []node.Status{st} })
	go func() { done <- Serve(ctx, ln, reg, slog.New(slog.DiscardHandler)) }()
	code, body := get(t, sock)
	if code != http.StatusOK || !strings.Contains(body, `netraid_out_of_sync_bytes{volume="vol"} 5.0331648e+07`) {
		t.Fatalf("GET /metrics: %d\n%s", code, grep(body, "out_of_sync"))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket is left after Serve: %v", err)
	}
}
