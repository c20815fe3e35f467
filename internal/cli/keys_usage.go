package cli

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
)

type keysUsageOptions struct {
	store        storeFlags
	id           string
	owner        string
	since, until string
	byKey        bool
	json         bool
}

func newCmdKeysUsage(e *Env, runF func(*keysUsageOptions) error) *cobra.Command {
	o := &keysUsageOptions{}
	cmd := &cobra.Command{
		Use:   "usage [ID | --owner ID] [--since 7d] [--until TIME] [--by-key] [--json]",
		Short: "Show the requests of a key (or an owner's keys, or all keys) per hour: accepted, and refused by reason",
		Long: "Show the requests a gateway counted for a key, an owner's keys, or every key, per hour\n" +
			"and route: accepted, and refused by reason. Gateways write their counts every 10 s.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("unexpected argument %q", args[1])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.id = args[0]
			}
			if o.id != "" && o.owner != "" {
				return usageErrorf("give a key id or --owner, not both")
			}
			for _, f := range []struct{ name, v string }{{"since", o.since}, {"until", o.until}} {
				if _, err := parseSince(f.v, time.Now()); err != nil {
					return usageError{fmt.Errorf("--%s: %w", f.name, err)}
				}
			}
			if runF != nil {
				return runF(o)
			}
			return keysUsageRun(e, o)
		},
	}
	f := cmd.Flags()
	o.store.register(f)
	f.StringVar(&o.owner, "owner", "", "the keys of the owner `ID`, summed")
	f.StringVar(&o.since, "since", "24h", "from this far back: a `DURATION` (7d, 12h) or an RFC 3339 time")
	f.StringVar(&o.until, "until", "", "up to this `TIME`: a duration back from now, or an RFC 3339 time (default: now)")
	f.BoolVar(&o.byKey, "by-key", false, "keep each key's counts apart")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// parseSince parses a time back from now: a duration ("7d") or an RFC 3339
// time; empty is the zero time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := keys.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("want a duration back from now, such as 7d or 12h, or an RFC 3339 time")
	}
	return now.Add(-d), nil
}

func keysUsageRun(e *Env, o *keysUsageOptions) error {
	now := e.Now()
	since, _ := parseSince(o.since, now)
	until, _ := parseSince(o.until, now)
	if !until.IsZero() {
		// The hour under way is in the report up to now.
		until = until.Add(time.Hour)
	}
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	r, err := ks.Usage(e.Context, keys.UsageQuery{KeyID: o.id, Owner: o.owner, Since: since, Until: until, ByKey: o.byKey})
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(e, r)
	}
	what := "every key"
	switch {
	case o.id != "":
		what = o.id
	case o.owner != "":
		what = "the keys of " + o.owner
	}
	fmt.Fprintf(e.Stdout, "requests of %s from %s to %s\n", what, shortTime(r.Since), shortTime(r.Until))
	fmt.Fprintf(e.Stdout, "accepted %d, refused %d%s\n", r.Total.Accepted, refusedTotal(r.Total), refusedList(r.Total, " (", ")"))
	if len(r.Hours) == 0 {
		return nil
	}
	fmt.Fprintln(e.Stdout)
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	header := "HOUR\tROUTE\tACCEPTED\tREFUSED"
	if o.byKey {
		header = "HOUR\tKEY\tROUTE\tACCEPTED\tREFUSED"
	}
	fmt.Fprintln(tw, header)
	for _, h := range r.Hours {
		key := ""
		if o.byKey {
			key = orDash(h.KeyID) + "\t"
		}
		fmt.Fprintf(tw, "%s\t%s%s\t%d\t%s\n", shortTime(h.Hour), key, orDash(h.Route), h.Accepted, orDash(refusedList(h.UsageTotals, "", "")))
	}
	return tw.Flush()
}

func refusedTotal(t keys.UsageTotals) int64 {
	var n int64
	for _, c := range t.Refused {
		n += c
	}
	return n
}

// refusedList writes the refusals by reason, most first: "bad-signature
// 3, replayed 1", between before and after; empty if there are none.
func refusedList(t keys.UsageTotals, before, after string) string {
	if len(t.Refused) == 0 {
		return ""
	}
	reasons := slices.SortedFunc(maps.Keys(t.Refused), func(a, b httpsig.Reason) int {
		if c := cmp.Compare(t.Refused[b], t.Refused[a]); c != 0 {
			return c
		}
		return strings.Compare(string(a), string(b))
	})
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = fmt.Sprintf("%s %d", r, t.Refused[r])
	}
	return before + strings.Join(parts, ", ") + after
}
