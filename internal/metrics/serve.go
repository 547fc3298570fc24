package metrics

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netraid/netraid/internal/lat"
	"github.com/netraid/netraid/node"
)

// New returns a registry of the daemon's metrics: the volumes' (read
// through statuses at each scrape), the process's (memory, CPU, file
// descriptors) and the Go runtime's. It raises latency recording to
// lat.Requests, so that the request histograms fill.
func New(statuses func() []node.Status) *prometheus.Registry {
	lat.Raise(lat.Requests)
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(statuses),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return reg
}

// CheckAddr says what is wrong with a --metrics address: HOST:PORT, or a
// unix socket path (one with a slash).
func CheckAddr(addr string) error {
	if isUnix(addr) {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("metrics address %q: want HOST:PORT (such as 127.0.0.1:9942) or a unix socket path: %v", addr, err)
	}
	return nil
}

func isUnix(addr string) bool { return strings.Contains(addr, "/") }

// Listen opens the metrics address. A unix socket left by a daemon that
// died is replaced; any other file there is refused.
func Listen(addr string) (net.Listener, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	if !isUnix(addr) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		return ln, nil
	}
	if fi, err := os.Lstat(addr); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("metrics: %s exists and is not a socket: give another path", addr)
		}
		if c, err := net.Dial("unix", addr); err == nil {
			c.Close()
			return nil, fmt.Errorf("metrics: %s is in use by a running process", addr)
		}
		os.Remove(addr)
	}
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

// Serve serves reg's metrics on ln at /metrics until ctx is done, then
// closes ln and returns once the server stopped.
func Serve(ctx context.Context, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{log},
		// One sample that cannot be made must not hide the others.
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// slogPrinter logs promhttp's errors (a metric that could not be
// gathered) as warnings.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
