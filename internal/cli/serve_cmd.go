package cli

import (
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newCmdServe returns signet serve. Its flags are defined, and checked once
// parsed, by newServeOptions.
func newCmdServe(e *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve (--upstream URL | --config FILE) [flags]",
		Short: "Run the authenticating reverse proxy in front of an API",
		Long: "Run the authenticating reverse proxy: verify the signature of every request,\n" +
			"and forward the accepted ones to the upstream with the key's owner and scopes.\n" +
			"With --config FILE, the policy file gives routes, upstreams and trusted proxies,\n" +
			"and any of the settings below; a flag given on the command line wins over it.",
		Args: noArgs(""),
	}
	o, check := newServeOptions(cmd.Flags())
	nameValues(cmd.Flags(), serveValueNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := check(); err != nil {
			return usageError{err}
		}
		if n, ok := serveGCPercent(e.Getenv); ok {
			debug.SetGCPercent(n)
		}
		log := newLogger(e.Stderr, o.logFormat, o.logLevel)
		if err := serve(e, o, log); err != nil {
			log.Error("signet serve stopped", "error", err.Error())
			return exitError(exitRefused)
		}
		return nil
	}
	return cmd
}

// serveValueNames are the names --help gives the values of serve's flags,
// as the README writes them; the flags not named here show their type.
var serveValueNames = map[string]string{
	"upstream": "URL", "listen": "ADDR", "admin-listen": "ADDR", "db": "PATH|URL",
	"master-key-file": "FILE", "redis": "URL", "redis-prefix": "PREFIX",
	"replay-snapshot": "FILE", "replay-capacity": "N", "tls-cert": "FILE", "tls-key": "FILE",
	"max-body": "SIZE", "body-budget": "SIZE", "scheme": "https|http",
	"max-age": "D", "max-skew": "D", "tag": "T", "log-format": "json|text", "log-level": "LEVEL",
	"shutdown-timeout": "D", "drain": "D", "max-in-flight": "N", "upstream-timeout": "D", "write-timeout": "D",
}

// nameValues gives the values of the flags of fs the names in names, for
// --help, where pflag would show their type ("string", "duration").
func nameValues(fs *pflag.FlagSet, names map[string]string) {
	for flag, name := range names {
		if f := fs.Lookup(flag); f != nil {
			f.Value = namedValue{f.Value, name}
		}
	}
}

// A namedValue is a flag's value that --help shows as name.
type namedValue struct {
	pflag.Value
	name string
}

func (v namedValue) Type() string { return v.name }

// serveGCPercent returns the garbage collector's target for signet serve,
// and false when the environment sets one (GOGC), which then stands. A
// gateway's heap is mostly the short-lived garbage of the requests in
// flight over a small live set (the replay cache's tables hold no
// pointers), so collecting when the heap has grown by twice the live
// set, rather than once, costs it about 8% less CPU per request
// (tools/loadbench) for a heap up to three times the live set instead of
// two.
func serveGCPercent(getenv func(string) string) (int, bool) {
	if getenv("GOGC") != "" {
		return 0, false
	}
	return 200, true
}
