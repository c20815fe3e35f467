package cli

import (
	"errors"
	"flag"
	"fmt"

	"github.com/spf13/cobra"
)

// newCmdServe runs signet serve, whose flags are still parsed by the flag
// package while the gateway's work on serve.go goes on.
func newCmdServe(e *Env) *cobra.Command {
	return &cobra.Command{
		Use:                "serve --upstream URL [flags]",
		Short:              "Run the authenticating reverse proxy in front of an API",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := runServe(e, args); code != exitOK {
				return exitError(code)
			}
			return nil
		},
	}
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

// errFlagUsage marks an error the flag package has printed.
var errFlagUsage = errors.New("usage error")

// parseArgs parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errFlagUsage
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

// parseError reports an error from a command's options and returns its
// exit code: 0 for -h, 2 otherwise.
func parseError(e *Env, name string, err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != errFlagUsage:
		fmt.Fprintf(e.Stderr, "signet %s: %v\n", name, err)
	}
	return exitUsage
}
