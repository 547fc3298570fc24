package main

import (
	"context"

	"github.com/dustin/go-humanize"
	"github.com/netraid/netraid/node"
)

func init() {
	register(command{name: "resync", summary: "pause, resume, rate-limit or force a resync", run: runResync, actions: []string{"pause", "resume", "rate", "full"}})
	register(command{name: "verify", summary: "compare the two copies online; --repair fixes them", run: runVerify})
}

func runResync(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "resync", "pause|resume|rate RATE|full", `
Control the resync that copies out-of-sync regions from the primary to
the secondary. Run it on the primary.

  pause        stop copying (new writes are still mirrored and tracked)
  resume       go on from where it stopped
  rate RATE    limit the copy rate, e.g. 100MB (per second); 0 = no limit
  full         mark the whole volume out of sync and copy all of it`)
	client := controlFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	var action string
	var req node.Request
	switch fs.Arg(0) {
	case "pause":
		action = node.ActResyncPause
	case "resume":
		action = node.ActResyncResume
	case "full":
		action = node.ActResyncFull
	case "rate":
		if fs.NArg() != 2 {
			return usagef("resync rate takes one RATE, e.g. 100MB or 0 for no limit")
		}
		r, err := humanize.ParseBytes(fs.Arg(1))
		if err != nil {
			return usagef("bad rate %q: %v", fs.Arg(1), err)
		}
		action, req.Rate = node.ActResyncRate, int64(r)
	case "":
		return usagef("resync needs pause, resume, rate RATE or full")
	default:
		return usagef("unknown resync action %q", fs.Arg(0))
	}
	if action != node.ActResyncRate && fs.NArg() != 1 {
		return usagef("unexpected argument %q", fs.Arg(1))
	}
	return printDo(ctx, e, client(), action, req)
}

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "verify", "[--all] [--repair] [--no-wait]", `
Compare the primary's and the secondary's copies region by region, by
checksum: the secondary computes its own checksums, so the data does not
cross the link. Mismatched regions are reported; with --repair they are
copied again from the primary. Run it on the primary.

By default only the regions the primary has written are compared; --all
compares every region, so that nothing written to the secondary's disks
some other way goes unseen. The first verify after a node was promoted
or after a full sync compares every region anyway ('netraid status'
says when the last full verify ran).`)
	all := fs.Bool("all", false, "compare every region, not only those the primary has written")
	repair := fs.Bool("repair", false, "resync mismatched regions from the primary")
	noWait := fs.Bool("no-wait", false, "start the verify and return; 'netraid status' shows its progress")
	client := controlFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return printDo(ctx, e, client(), node.ActVerify, node.Request{All: *all, Repair: *repair, Wait: !*noWait})
}
