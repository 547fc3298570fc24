// Command netraid creates, serves and administers netraid volumes: local
// disks striped with O_DIRECT, mirrored synchronously to a second machine,
// exported over NBD.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
