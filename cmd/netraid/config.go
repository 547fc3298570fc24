package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/netraid/netraid/internal/conffile"
	"github.com/netraid/netraid/volume"
	"github.com/spf13/pflag"
)

// defaultConfig is the file the service unit reads.
const defaultConfig = "/etc/netraid/netraid.toml"

// serveFile is where each of serve's flags goes in a --config file: the
// daemon's keys at its top, the volume's in its table [volume.NAME] with
// the disks. A new flag of serve is one line here (a test checks that
// none is missing); one the file must not set goes in serveFlagsNotInFile.
var serveFile = conffile.Schema{
	ArgsKey: "disks",
	Keys: []conffile.Key{
		{Flag: "control", Scope: conffile.Daemon},
		{Flag: "debug", Scope: conffile.Daemon},
		{Flag: "listen", Scope: conffile.Volume},
		{Flag: "export", Scope: conffile.Volume},
		{Flag: "read-only", Scope: conffile.Volume},
		{Flag: "listen-peer", Scope: conffile.Volume},
		{Flag: "peer", Scope: conffile.Volume},
		{Flag: "primary", Scope: conffile.Volume},
		{Flag: "peer-timeout", Scope: conffile.Volume},
		{Flag: "reconnect-interval", Scope: conffile.Volume},
		{Flag: "ping-interval", Scope: conffile.Volume},
		{Flag: "ping-timeout", Scope: conffile.Volume},
		{Flag: "disk-timeout", Scope: conffile.Volume},
		{Flag: "resync-rate", Scope: conffile.Volume},
		{Flag: "resync-adaptive", Scope: conffile.Volume},
		{Flag: "fault-injection", Scope: conffile.Volume},
		{Flag: "tls-dir", Scope: conffile.Volume},
		{Flag: "tls-required", Scope: conffile.Volume},
		{Flag: "tls-optional", Scope: conffile.Volume},
		{Flag: "tls-allow-node-clients", Scope: conffile.Volume},
		{Flag: "readahead", Scope: conffile.Volume},
		{Flag: "max-connections", Scope: conffile.Volume},
		{Flag: "memory-budget", Scope: conffile.Volume},
		{Flag: "name", Scope: conffile.Daemon},
		{Flag: "peer-secret", Scope: conffile.Volume},
		{Flag: "insecure-link", Scope: conffile.Volume},
		{Flag: "peer-name", Scope: conffile.Volume},
		{Flag: "etcd", Scope: conffile.Daemon},
		{Flag: "etcd-ca", Scope: conffile.Daemon},
		{Flag: "etcd-cert", Scope: conffile.Daemon},
		{Flag: "etcd-key", Scope: conffile.Daemon},
		{Flag: "lease-ttl", Scope: conffile.Daemon},
		{Flag: "on-no-quorum", Scope: conffile.Volume},
		{Flag: "on-promote", Scope: conffile.Volume},
		{Flag: "on-demote", Scope: conffile.Volume},
		{Flag: "command-timeout", Scope: conffile.Volume},
		{Flag: "metrics", Scope: conffile.Daemon},
	},
}

// serveFlagsNotInFile are serve's flags that only the command line
// gives.
var serveFlagsNotInFile = []string{"config", "print-config"}

// applyConfig sets fs's flags from the file named by --config in args,
// if any; fs parses args after, so that the command line overrides the
// file. A file that cannot be read or is wrong is a usage error (exit
// 2: the service manager does not restart a daemon for it).
func applyConfig(fs *pflag.FlagSet, args []string, s conffile.Schema) (*conffile.File, error) {
	path, ok := conffile.Find(args, "config")
	if !ok {
		return nil, nil
	}
	if path == "" {
		return nil, usagef("--config needs a file, such as %s", defaultConfig)
	}
	f, err := conffile.Apply(path, fs, s)
	var ce *conffile.Error
	switch {
	case errors.As(err, &ce):
		return nil, &usageError{ce.Error()}
	case err != nil:
		return nil, usagef("--config: %v", err)
	}
	return f, nil
}

// checkVolumeName refuses disks of another volume than the config file's
// table names: the wrong file, or the wrong disks.
func checkVolumeName(f *conffile.File, disks []string) error {
	if f == nil || f.Volume == "" {
		return nil
	}
	sb, _, err := volume.Examine(disks[0])
	if err != nil {
		return nil // serve says what is wrong with the disk
	}
	if sb.Name != f.Volume {
		return usagef("%s holds volume %q, but %s's table is [volume.%s]: name the table after the volume, or give that volume's disks",
			disks[0], sb.Name, f.Path, f.Volume)
	}
	return nil
}

// writeConfig prints serve's settings in effect as a config file.
func writeConfig(w io.Writer, fs *pflag.FlagSet, s conffile.Schema, f *conffile.File, disks []string) error {
	name := ""
	if f != nil {
		name = f.Volume
	}
	if name == "" {
		sb, _, err := volume.Examine(disks[0])
		if err != nil {
			return fmt.Errorf("naming the volume's table: %w", err)
		}
		name = sb.Name
	}
	fmt.Fprintf(w, "# netraid serve --config: the daemon's settings at the top, the volume's in its table.\n")
	return conffile.Write(w, fs, s, name, disks)
}
