package main

import (
	"context"

	"github.com/netraid/netraid/node"
)

func init() {
	register(command{name: "disk", summary: "fail or replace a member disk", run: runDisk, actions: []string{"fail", "replace", "inject-error", "heal"}})
}

func runDisk(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "disk", "fail DISK | replace OLD NEW | inject-error DISK | heal DISK", `
Manage this node's member disks while the volume runs.

  fail DISK          mark a member failed: this node's copy stops being used
                     (a primary serves through its peer) until it is replaced
  replace OLD NEW    put NEW in OLD's place: NEW gets a superblock and the
                     share of the volume that lived on OLD is rebuilt onto it
                     from the peer while the volume keeps serving
  inject-error DISK  make every I/O on DISK fail, as a dying disk does
  heal DISK          undo inject-error
                     (both only on a node served with --fault-injection:
                     for tests and failure drills)`)
	client := controlFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch fs.Arg(0) {
	case "fail":
		if fs.NArg() != 2 {
			return usagef("disk fail takes one DISK")
		}
		return printDo(ctx, e, client(), node.ActDiskFail, node.Request{Disk: fs.Arg(1)})
	case "replace":
		if fs.NArg() != 3 {
			return usagef("disk replace takes OLD and NEW")
		}
		return printDo(ctx, e, client(), node.ActDiskReplace, node.Request{Disk: fs.Arg(1), NewDisk: fs.Arg(2)})
	case "inject-error", "heal":
		if fs.NArg() != 2 {
			return usagef("disk %s takes one DISK", fs.Arg(0))
		}
		act := node.ActDiskInject
		if fs.Arg(0) == "heal" {
			act = node.ActDiskHeal
		}
		return printDo(ctx, e, client(), act, node.Request{Disk: fs.Arg(1)})
	case "":
		return usagef("disk needs fail, replace, inject-error or heal")
	}
	return usagef("unknown disk action %q", fs.Arg(0))
}
