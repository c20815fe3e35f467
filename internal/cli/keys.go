package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signet-dev/signet/keys"
)

// newCmdKeys returns signet keys; its subcommands live in the keys_*.go
// files by family: issuing (create, rotate), reading (list, show, audit),
// changing (revoke, disable, enable, update, set-scopes), usage, and the
// master key (rekey).
func newCmdKeys(e *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Issue, list, rotate, disable and revoke keys in the key store",
		Long: "Issue, list, rotate, disable and revoke the keys clients sign with, in the key store,\n" +
			"and read how much they are used.\n" +
			"Every command takes --db URL and --master-key-file FILE.",
		RunE: needSubcommand,
	}
	cmd.AddCommand(
		newCmdKeysCreate(e, nil),
		newCmdKeysRotate(e, nil),
		newCmdKeysList(e, nil),
		newCmdKeysShow(e, nil),
		newCmdKeysAudit(e, nil),
		newCmdKeysRevoke(e, nil),
		newCmdKeysDisable(e, nil),
		newCmdKeysEnable(e, nil),
		newCmdKeysUpdate(e, nil),
		newCmdKeysSetScopes(e, nil),
		newCmdKeysUsage(e, nil),
		newCmdKeysRekey(e, nil),
	)
	return cmd
}

// actor names who runs the command, for the audit log.
func actor(e *Env) string {
	name := e.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	host, _ := os.Hostname()
	return "cli:" + name + "@" + host
}

func printJSON(e *Env, v any) error {
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04Z")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// overlapValue is a duration flag in the syntax of the admin API's
// overlap, keys.ParseDuration: "24h", "90m", "7d".
type overlapValue struct{ d *time.Duration }

func (v overlapValue) Set(s string) error {
	d, err := keys.ParseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (v overlapValue) String() string {
	if v.d == nil {
		return ""
	}
	s := v.d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (v overlapValue) Type() string { return "duration" }

// limitFlags are the flags of a key's rate limit and budget of uses, for
// keys create and keys update.
type limitFlags struct {
	rate, refill   string
	burst, uses    int64
	noRate, noUses bool // keys update only

	rateSet, usesSet bool // the flags were given
}

func (l *limitFlags) register(fs *pflag.FlagSet, update bool) {
	fs.StringVar(&l.rate, "rate", "", "rate limit: a `RATE` such as 100/s, 6000/min, 5/15m (enforced by the gateway)")
	fs.Int64Var(&l.burst, "burst", 0, "`N` requests the rate limit lets through at once (default: the rate's count)")
	fs.Int64Var(&l.uses, "uses", 0, "a budget of `N` requests; each accepted request spends one")
	fs.StringVar(&l.refill, "refill", "", "put the budget back to N every period: a `RATE` such as 1000/day (UTC days), 50000/week")
	if update {
		fs.BoolVar(&l.noRate, "no-rate", false, "remove the key's rate limit (the gateway's default applies)")
		fs.BoolVar(&l.noUses, "no-uses", false, "remove the key's budget of uses")
	}
}

// check checks the flags once they are parsed, and notes which were
// given.
func (l *limitFlags) check(fs *pflag.FlagSet) error {
	l.rateSet, l.usesSet = fs.Changed("rate"), fs.Changed("uses")
	switch {
	case fs.Changed("burst") && !l.rateSet:
		return usageErrorf("--burst goes with --rate")
	case fs.Changed("refill") && !l.usesSet:
		return usageErrorf("--refill goes with --uses, the budget to start from")
	case l.noRate && l.rateSet:
		return usageErrorf("--rate and --no-rate contradict each other")
	case l.noUses && l.usesSet:
		return usageErrorf("--uses and --no-uses contradict each other")
	case l.burst < 0:
		return usageErrorf("--burst must not be negative")
	case l.uses < 0:
		return usageErrorf("--uses must not be negative")
	case l.usesSet && l.uses == 0 && l.refill == "":
		return usageErrorf("--uses 0 without --refill leaves the key no use: disable it instead")
	}
	for _, f := range []struct{ name, v string }{{"rate", l.rate}, {"refill", l.refill}} {
		if f.v != "" {
			if _, err := keys.ParseRate(f.v); err != nil {
				return usageError{fmt.Errorf("--%s: %w", f.name, err)}
			}
		}
	}
	return nil
}

// rateLimit returns the rate limit the flags give; zero for none.
func (l *limitFlags) rateLimit() keys.RateLimit {
	if !l.rateSet {
		return keys.RateLimit{}
	}
	r, _ := keys.ParseRate(l.rate)
	return keys.RateLimit{Rate: r, Burst: l.burst}
}

// budget returns the budget of uses the flags give; zero for none.
func (l *limitFlags) budget() keys.Uses {
	if !l.usesSet {
		return keys.Uses{}
	}
	u := keys.Uses{Remaining: l.uses}
	if l.refill != "" {
		u.Refill, _ = keys.ParseRate(l.refill)
	}
	return u
}

// maxMetadataFile bounds what --metadata @FILE reads.
const maxMetadataFile = 64 << 10

// readMetadata reads the value of --metadata: a JSON object, or @FILE, or
// @- for stdin.
func readMetadata(e *Env, v string) (json.RawMessage, error) {
	name, ok := strings.CutPrefix(v, "@")
	if !ok {
		return json.RawMessage(v), nil
	}
	var r io.Reader = e.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageError{fmt.Errorf("--metadata: %w", err)}
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxMetadataFile+1))
	if err != nil {
		return nil, usageError{fmt.Errorf("--metadata: %w", err)}
	}
	if len(data) > maxMetadataFile {
		return nil, usageErrorf("--metadata: %s is over %d bytes", v[1:], maxMetadataFile)
	}
	return data, nil
}
