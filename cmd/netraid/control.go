package main

import (
	"os"

	"github.com/netraid/netraid/node"
	"github.com/spf13/pflag"
)

// defaultControl is where serve puts its control socket and where the
// admin commands look for it, unless --control or NETRAID_CONTROL says.
const defaultControl = "/run/netraid/netraid.sock"

func controlDefault() string {
	if p := os.Getenv("NETRAID_CONTROL"); p != "" {
		return p
	}
	return defaultControl
}

// controlFlag adds --control to fs and returns a function giving the
// client for it.
func controlFlag(fs *pflag.FlagSet) func() *node.Client {
	p := fs.String("control", controlDefault(), "control socket of the netraid daemon (env NETRAID_CONTROL)")
	return func() *node.Client { return node.NewClient(*p) }
}
