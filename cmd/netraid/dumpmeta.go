package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/netraid/netraid/volume"
)

func init() {
	register(command{name: "dump-meta", summary: "print a member disk's superblock", run: runDumpMeta})
}

func runDumpMeta(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "dump-meta", "[--json] DISK...", `
Print the superblock of each member disk: the volume it belongs to, its
place in the stripe, the geometry, the replication state and the data
generations. Reads only; safe on a disk in use.`)
	asJSON := fs.Bool("json", false, "print as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give at least one DISK")
	}
	var errs []error
	for _, path := range fs.Args() {
		sb, slot, err := volume.Examine(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if *asJSON {
			b, _ := json.MarshalIndent(sb, "", "  ")
			fmt.Fprintf(e.stdout, "%s\n", b)
			continue
		}
		describe(e, path, slot, sb)
	}
	return errors.Join(errs...)
}

func humanizeUnix(s int64) string {
	return time.Unix(s, 0).UTC().Format(time.RFC3339)
}
