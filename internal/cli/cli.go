// Package cli implements the signet command on spf13/cobra. Each command
// lives in its own file (the keys commands, one file per family) as an
// options struct, a newCmdX that parses flags into it, and an xRun that
// does the work and returns an error, so that tests can check parsing
// apart from running. [Run] turns the outcome of a command line into its
// message and exit code, in one place.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
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
	exitRefused = 1 // a signature or request was refused, or the command failed
	exitUsage   = 2
)

// Main runs the signet command line and returns its exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now, Context: ctx}
	return Run(e, args)
}

// Run runs one command line in e, reports its error on e.Stderr, and
// returns its exit code.
func Run(e *Env, args []string) int {
	root := newCmdRoot(e)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	return report(e, cmd, err)
}

func newCmdRoot(e *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "signet",
		Short: "Sign, verify and authenticate HTTP API requests",
		Long: "Signet authenticates HTTP API requests with RFC 9421 HTTP Message Signatures:\n" +
			"sign and send requests, verify them, issue keys, and run the gateway.",
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          needSubcommand,
	}
	root.SetIn(e.Stdin)
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	root.SetContext(e.Context)
	root.SetVersionTemplate("signet {{.Version}}\n")
	// A command that only groups others shows "signet keys [command]",
	// not also a usage line of its own.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newCmdSign(e, nil),
		newCmdVerify(e, nil),
		newCmdKeygen(e, nil),
		newCmdKeys(e),
		newCmdRequest(e, nil),
		newCmdPresign(e, nil),
		newCmdThumbprint(e),
		newCmdServe(e),
		newCmdGatewayKeys(e),
		newCmdReplay(e),
		newCmdPolicy(e),
		newCmdDemo(e),
		newCmdVersion(e),
	)
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.RunE = needSubcommand // a shell that is not there is a usage error
		}
	}
	markRuns(root)
	return root
}

// needSubcommand is the run of a command that only groups others: alone,
// it shows its help and is a usage error.
func needSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 1 && args[0] == "help" {
		return cmd.Help()
	}
	if len(args) > 0 {
		return usageErrorf("unknown command %q (run '%s --help' for the commands)", args[0], cmd.CommandPath())
	}
	cmd.SetOut(cmd.ErrOrStderr())
	cmd.Help()
	return usageErrorf("give a command")
}

// A usageError is a command called the wrong way: exit 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// A runError is an error returned by a command's run, as opposed to one
// cobra found in the command line, which is a usage error.
type runError struct{ err error }

func (r runError) Error() string { return r.err.Error() }
func (r runError) Unwrap() error { return r.err }

// markRuns wraps the errors of every command's run in runError.
func markRuns(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return runError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRuns(sub)
	}
}

// A refusal is a request the server refused: reported, like a signature
// signet verify refuses, with its reason code first.
type refusal struct{ reason, detail string }

func (r *refusal) Error() string { return r.reason + ": " + r.detail }

// exitError ends a command with a code after it has reported why itself.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// report prints err, the outcome of cmd, and returns the exit code: 0
// done; 1 refused (the reason code first) or failed; 2 usage.
func report(e *Env, cmd *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	var (
		ve   *httpsig.VerifyError
		rf   *refusal
		code exitError
	)
	switch {
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &ve):
		label := ""
		if ve.Label != "" {
			label = " (" + ve.Label + ")"
		}
		fmt.Fprintf(e.Stderr, "%s%s: %s\n", ve.Reason, label, oneLine(ve.Detail))
		return exitRefused
	case errors.As(err, &rf):
		fmt.Fprintln(e.Stderr, oneLine(rf.Error()))
		return exitRefused
	}
	name := "signet"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	if errors.Is(err, keys.ErrWrongMasterKey) {
		err = withAdvice(err, wrongMasterKeyAdvice)
	}
	fmt.Fprintf(e.Stderr, "%s: %s\n", name, message(err))
	var (
		usage usageError
		run   runError
	)
	if errors.As(err, &usage) || errors.Is(err, keys.ErrInvalid) || !errors.As(err, &run) {
		return exitUsage
	}
	return exitRefused
}

// packagePrefix matches the prefixes of the library packages' errors,
// and the names of the keys sentinels, which mean nothing at a terminal.
var packagePrefix = regexp.MustCompile(`(^|: )(?:(?:httpsig|client|keys|keys/sqlite|keys/postgres|middleware|gateway): )+(?:(?:invalid request|conflict): )?`)

// message is the one place where errors are shortened for a terminal: on
// one line, without the package prefixes that the libraries' errors carry.
func message(err error) string {
	return oneLine(packagePrefix.ReplaceAllString(err.Error(), "$1"))
}

// oneLine joins the lines of s (a driver's error may have several) with
// "; ", or a space after a colon or question mark, and its runs of spaces
// with one.
func oneLine(s string) string {
	var b strings.Builder
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		l = strings.Join(strings.Fields(l), " ")
		switch {
		case l == "":
			continue
		case b.Len() == 0:
		case strings.HasSuffix(b.String(), ":"), strings.HasSuffix(b.String(), "?"):
			b.WriteByte(' ')
		default:
			b.WriteString("; ")
		}
		b.WriteString(l)
	}
	return b.String()
}

// noArgs is the Args of a command that takes none.
func noArgs(hint string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			if hint != "" {
				return usageErrorf("unexpected argument %q (%s)", args[0], hint)
			}
			return usageErrorf("unexpected argument %q", args[0])
		}
		return nil
	}
}

// oneID is the Args of a command that takes one key id.
func oneID(_ *cobra.Command, args []string) error {
	switch len(args) {
	case 0:
		return usageErrorf("give the key id")
	case 1:
		return nil
	}
	return usageErrorf("unexpected argument %q", args[1])
}

// fromEnv returns v, or else the environment variable name.
func fromEnv(e *Env, v, name string) string {
	if v == "" {
		return e.Getenv(name)
	}
	return v
}

func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}
