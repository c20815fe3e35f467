// Package cli implements the signet command: one file per command, each an
// options struct, a flag parser and a run function, so that tests can
// check parsing apart from running.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Env is what a command may use of the world around it.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Now            func() time.Time
	// Context is cancelled on SIGINT or SIGTERM.
	Context context.Context
}

// Exit codes.
const (
	exitOK      = 0
	exitRefused = 1 // a signature was refused, or the command failed
	exitUsage   = 2
)

type command struct {
	name, summary string
	run           func(e *Env, args []string) int
}

// commands lists the subcommands; each lives in its own file.
var commands = []command{
	{"sign", "sign a raw HTTP request read on stdin", runSign},
	{"verify", "verify a signed raw HTTP request read on stdin", runVerify},
	{"keygen", "make a key pair for a client (private key stays with the client)", runKeygen},
	{"keys", "issue, list, rotate and revoke keys in the key store", runKeys},
	{"request", "sign and send a request, like curl", runRequest},
	{"serve", "run the authenticating reverse proxy in front of an API", runServe},
	{"demo", "show the gateway at work on loopback, then exit", runDemo},
}

// Main runs the signet command line and returns its exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now, Context: ctx}
	return Run(e, args)
}

// Run runs one command line in e.
func Run(e *Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.Stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(e, args[1:])
		}
	}
	fmt.Fprintf(e.Stderr, "signet: unknown command %q\n", args[0])
	usage(e.Stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Signet authenticates HTTP API requests with RFC 9421 HTTP Message Signatures.")
	fmt.Fprintln(w, "\nUsage: signet <command> [flags]\n\nCommands:")
	cs := append([]command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'signet <command> -h' for the flags of a command.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(e *Env, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet("signet "+name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.Stderr, "usage: signet %s %s\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// errUsage marks an error in how a command was called.
var errUsage = errors.New("usage error")

// parseArgs parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage // the flag package has printed why
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if rest[0] == "--" {
			return append(positional, rest[1:]...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// usageError prints a usage problem and returns the usage exit code.
func usageError(e *Env, name, format string, args ...any) int {
	fmt.Fprintf(e.Stderr, "signet %s: %s\n", name, fmt.Sprintf(format, args...))
	return exitUsage
}

// fail prints an error and returns the failure exit code.
func fail(e *Env, name string, err error) int {
	fmt.Fprintf(e.Stderr, "signet %s: %s\n", name, msgOf(err))
	return exitRefused
}

// msgOf returns an error's message without the package prefix of httpsig,
// which means nothing to someone at a terminal.
func msgOf(err error) string { return strings.TrimPrefix(err.Error(), "httpsig: ") }

// parseError reports an error from a command's options and returns its
// exit code: 0 for -h, 2 otherwise.
func parseError(e *Env, name string, err error) int {
	if err == errUsage || isHelp(err) {
		return flagExit(err)
	}
	return usageError(e, name, "%v", err)
}

// flagExit turns a flag parsing error into an exit code: 0 for -h.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// listFlag collects a flag given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// optionalString is a string flag that remembers whether it was given, so
// that an explicit empty value differs from the default.
type optionalString struct {
	v   string
	set bool
}

func (o *optionalString) String() string     { return o.v }
func (o *optionalString) Set(v string) error { o.v, o.set = v, true; return nil }
