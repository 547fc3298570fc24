package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/netraid/netraid/internal/version"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// command is one subcommand: its name, a one-line summary, and the
// function that parses its own flags and runs it.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
	// actions are the words the command takes first (disk fail, certs
	// init): for completion, and for the manual, which describes those
	// that have flags of their own.
	actions []string
	// hidden commands are for the build (the manual, completion) and are
	// not listed.
	hidden bool
}

// env carries what every subcommand writes to.
type env struct {
	stdout, stderr io.Writer
	// describe, if set, is told of each FlagSet a command makes, with its
	// usage and help: how the manual and the completion are made from
	// what --help prints.
	describe func(u usage)
}

// usage is a subcommand's help: what newFlags was given and the flags
// defined on its FlagSet (complete once the command has parsed).
type usage struct {
	name, args, help string
	fs               *pflag.FlagSet
}

// usageError marks an error caused by how the command was called: it is
// printed with a hint and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		printUsage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		fmt.Fprintf(stdout, "netraid %s\n", version.String())
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "netraid: unknown command %q\nRun 'netraid --help' for the list of commands.\n", args[0])
		return exitUsage
	}
	err := c.run(ctx, e, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "netraid %s: %v\nRun 'netraid %s --help' for usage.\n", c.name, err, c.name)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "netraid %s: %v\n", c.name, err)
		return exitFail
	}
}

// intro is what netraid is, at the head of --help and of netraid(8).
const intro = `netraid: a replicated block volume. Local disks striped with O_DIRECT,
mirrored synchronously to a second machine, exported over NBD.`

func printUsage(w io.Writer) {
	fmt.Fprint(w, intro+`

Usage: netraid COMMAND [FLAGS] [ARGS]
       netraid --version

Commands:
`)
	for _, c := range listed() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'netraid COMMAND --help' for a command's flags.
`)
}

// listed returns the commands that --help lists, by name.
func listed() []command {
	var l []command
	for _, c := range commands {
		if !c.hidden {
			l = append(l, c)
		}
	}
	sort.Slice(l, func(i, j int) bool { return l[i].name < l[j].name })
	return l
}

// newFlags returns a FlagSet for a subcommand whose usage names its
// arguments and explains it.
func newFlags(e *env, name, args, help string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: netraid %s %s\n\n%s\n\nFlags:\n%s", name, args, strings.TrimSpace(help), fs.FlagUsages())
	}
	fs.SortFlags = false
	if e.describe != nil {
		e.describe(usage{name: name, args: args, help: help, fs: fs})
	}
	return fs
}

// parse parses args and turns a flag error into a usage error.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	return nil
}
