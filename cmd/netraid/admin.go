package main

import (
	"context"
	"fmt"

	"github.com/netraid/netraid/node"
	"github.com/spf13/pflag"
)

// An admin command is a control action with a few flags: promote, demote,
// connect, disconnect. Each registers itself here with its own help.
func init() {
	register(command{name: "promote", summary: "make this node the primary and export the volume", run: func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, "promote", "[--force]", `
Make this node the primary: it starts exporting the volume over NBD and
mirroring to its peer. Refused when the local copy is not up to date (for
example in the middle of a resync), or when the peer is primary. Without
a witness (--etcd), the peer is asked first what it holds, waiting at
most --peer-timeout for an answer: promote is refused when the peer
answers that it is primary or holds newer data than this node (it kept
writes this node lost, for example while this node's disks had failed);
promote the peer instead.
--force promotes a copy that is not known to be up to date: whatever the
peer holds that this node lacks is lost if the nodes are later resynced
from this one.`)
		force := fs.Bool("force", false, "promote even if the local copy is not known to be up to date (may lose data)")
		return controlAction(ctx, e, fs, args, node.ActPromote, func() node.Request { return node.Request{Force: *force} })
	}})
	register(command{name: "demote", summary: "stop exporting and become secondary", run: func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, "demote", "[--force]", `
Stop exporting the volume, flush it, and become secondary. Refused while
NBD clients are connected unless --force, which disconnects them.`)
		force := fs.Bool("force", false, "disconnect NBD clients that are still connected")
		return controlAction(ctx, e, fs, args, node.ActDemote, func() node.Request { return node.Request{Force: *force} })
	}})
	register(command{name: "connect", summary: "reconnect to the peer (after disconnect or split brain)", run: func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, "connect", "[--discard-local]", `
Let this node connect to its peer again after 'netraid disconnect' or a
refused meeting. After a split brain, run it with --discard-local on the
node whose changes are to be thrown away (it must be secondary): it is
then resynced from the peer, and its own changes since the split are lost.`)
		discard := fs.Bool("discard-local", false, "throw away this node's changes and resync it from the peer")
		return controlAction(ctx, e, fs, args, node.ActConnect, func() node.Request { return node.Request{DiscardLocal: *discard} })
	}})
	register(command{name: "disconnect", summary: "take the replication link down", run: func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, "disconnect", "", `
Take the replication link down and keep it down until 'netraid connect'.
A primary goes on serving from its own disks and records what changed.`)
		return controlAction(ctx, e, fs, args, node.ActDisconnect, func() node.Request { return node.Request{} })
	}})
	register(command{name: "forget-peer", summary: "forget the peer's volume, to pin a replaced peer", run: func(ctx context.Context, e *env, args []string) error {
		fs := newFlags(e, "forget-peer", "", `
After the nodes first meet, each takes only that peer's volume (its set
UUID) from then on. When the peer's machine or disks were replaced and
its volume created anew, forget the old one here: the next peer that
authenticates (the same --peer-name, secret or certificate) is taken and
pinned. A primary must be disconnected from its peer first.`)
		return controlAction(ctx, e, fs, args, node.ActForgetPeer, func() node.Request { return node.Request{} })
	}})
}

// controlAction parses the flags, refuses extra arguments, and runs one
// control action, printing the daemon's answer.
func controlAction(ctx context.Context, e *env, fs *pflag.FlagSet, args []string, action string, req func() node.Request) error {
	client := controlFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	msg, err := client().Do(ctx, action, req())
	if err != nil {
		return err
	}
	if msg != "" {
		fmt.Fprintln(e.stdout, msg)
	}
	return nil
}
