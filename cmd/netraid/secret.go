package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

func init() {
	register(command{name: "secret", summary: "make the shared secret that authenticates the replication link", run: runSecret})
}

func runSecret(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "secret", "new FILE", `
Write a new random secret (32 bytes, in hex) to FILE, readable by its
owner only. Copy it to the other node (over a channel you trust) and
serve both with --peer-secret FILE, --name and --peer-name: each end of
the replication link then proves it holds the secret, under its name,
before anything is said. The secret authenticates the nodes, not the
stream: where others can reach the network between the nodes, use
--tls-dir instead.`)
	force := fs.Bool("force", false, "replace FILE if it exists")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "new" {
		return usagef("give 'new FILE'")
	}
	path := fs.Arg(1)
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: --force replaces it (the other node then needs the new one too)", path)
	}
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, hex.EncodeToString(b)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote a new secret to %s: copy it to the other node, and serve both with --peer-secret %s\n", path, path)
	return nil
}
