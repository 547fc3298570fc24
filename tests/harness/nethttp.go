package harness

import (
	"context"
	"net"
	"net/http"
	"time"
)

// HTTPClient returns an HTTP client whose connections are made inside
// the machine's network namespace (the host's if m is nil): a test
// reaches what listens on the machine's loopback or link address.
func HTTPClient(m *Machine) *http.Client {
	dial := (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	if m != nil {
		ns := m.Name
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := InNetns(ns, func() error {
				var err error
				c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
	}
}
