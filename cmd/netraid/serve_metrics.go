package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/netraid/netraid/internal/metrics"
	"github.com/netraid/netraid/node"
)

// runNode opens the node and runs it until ctx is done, serving its
// metrics on metricsAddr meanwhile if one is given. The metrics address
// is opened before the volume, so that a wrong one costs nothing to
// undo; it stays up until the node has shut down.
func runNode(ctx context.Context, cfg node.Config, metricsAddr string, log *slog.Logger) error {
	var ln net.Listener
	if metricsAddr != "" {
		var err error
		if ln, err = metrics.Listen(metricsAddr); err != nil {
			return err
		}
	}
	n, err := node.Open(cfg)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	if ln != nil {
		reg := metrics.New(func() []node.Status { return []node.Status{n.Status()} })
		mctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := metrics.Serve(mctx, ln, reg, log); err != nil {
				log.Error("metrics endpoint stopped; the node goes on without it", "err", err)
			}
		}()
		defer func() { stop(); <-done }()
		log.Info("serving metrics", "address", ln.Addr().String())
	}
	return n.Run(ctx)
}
