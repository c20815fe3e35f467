package cli

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/keys"
)

type keysListOptions struct {
	store  storeFlags
	owner  string
	all    bool
	status string
	prefix string
	scope  string
	limit  int
	cursor string
	json   bool
}

func newCmdKeysList(e *Env, runF func(*keysListOptions) error) *cobra.Command {
	o := &keysListOptions{}
	cmd := &cobra.Command{
		Use:   "list [--owner ID] [--status STATUS] [--prefix P] [--scope S] [--all] [--limit N [--cursor C]] [--json]",
		Short: "List keys",
		Long: "List keys, oldest first. With --limit, one page: the next page is --cursor, printed\n" +
			"last on stderr (and as \"next\" with --json).",
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.status != "" {
				if _, err := keys.ParseStatus(o.status); err != nil {
					return usageError{fmt.Errorf("--status: %w", err)}
				}
			}
			if o.limit < 0 || o.limit > keys.MaxPageSize {
				return usageErrorf("--limit must be from 1 to %d", keys.MaxPageSize)
			}
			if o.cursor != "" && o.limit == 0 {
				return usageErrorf("--cursor goes with --limit")
			}
			if runF != nil {
				return runF(o)
			}
			return keysListRun(e, o)
		},
	}
	f := cmd.Flags()
	o.store.register(f)
	f.StringVar(&o.owner, "owner", "", "only the keys of the owner `ID`")
	f.BoolVar(&o.all, "all", false, "include revoked keys")
	f.StringVar(&o.status, "status", "", "only keys of this `STATUS`: active, expiring, expired, disabled, revoked")
	f.StringVar(&o.prefix, "prefix", "", "only keys whose id starts with `PREFIX`")
	f.StringVar(&o.scope, "scope", "", "only keys with the `SCOPE`")
	f.IntVar(&o.limit, "limit", 0, "one page of at most `N` keys (default: all keys)")
	f.StringVar(&o.cursor, "cursor", "", "the page after the one that printed this `CURSOR`")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func keysListRun(e *Env, o *keysListOptions) error {
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	filter := keys.ListFilter{Owner: o.owner, IncludeRevoked: o.all, Status: keys.Status(o.status), IDPrefix: o.prefix, Scope: o.scope}
	var page *keys.KeyPage
	if o.limit > 0 {
		page, err = ks.ListPage(e.Context, keys.ListRequest{ListFilter: filter, Cursor: o.cursor, Limit: o.limit})
	} else {
		page = &keys.KeyPage{}
		page.Keys, err = ks.List(e.Context, filter)
	}
	if err != nil {
		return err
	}
	if o.json {
		if o.limit > 0 {
			return printJSON(e, page)
		}
		return printJSON(e, page.Keys)
	}
	now := e.Now()
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tALG\tSTATUS\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tLABEL")
	for _, k := range page.Keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Owner, k.Alg, k.Status(now), orDash(strings.Join(k.Scopes, ",")),
			shortTime(k.Created), shortTime(k.Expires), shortTime(k.LastUsed), orDash(k.Label))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(e.Stderr, "more: --cursor %s\n", page.Next)
	}
	return nil
}

type keysShowOptions struct {
	store storeFlags
	id    string
	json  bool
}

func newCmdKeysShow(e *Env, runF func(*keysShowOptions) error) *cobra.Command {
	o := &keysShowOptions{}
	cmd := &cobra.Command{
		Use:   "show ID [--json]",
		Short: "Show one key",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.id = args[0]
			if runF != nil {
				return runF(o)
			}
			return keysShowRun(e, o)
		},
	}
	f := cmd.Flags()
	o.store.register(f)
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func keysShowRun(e *Env, o *keysShowOptions) error {
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	k, err := ks.Get(e.Context, o.id)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(e, k)
	}
	return showKey(e, k)
}

// showKey prints a key as keys show does: a line for each field it has.
func showKey(e *Env, k *keys.Key) error {
	now := e.Now()
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 1, ' ', 0)
	row := func(label, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", label, value)
		}
	}
	timeRow := func(label string, t time.Time) {
		if !t.IsZero() {
			row(label, t.UTC().Format(time.RFC3339))
		}
	}
	row("id", k.ID)
	row("owner", k.Owner)
	row("alg", string(k.Alg))
	row("status", string(k.Status(now)))
	row("scopes", orDash(strings.Join(k.Scopes, ", ")))
	row("label", k.Label)
	row("metadata", string(k.Metadata))
	timeRow("created", k.Created)
	timeRow("expires", k.Expires)
	timeRow("disabled", k.Disabled)
	timeRow("revoked", k.Revoked)
	timeRow("last used", k.LastUsed)
	row("predecessor", k.Predecessor)
	row("successor", k.Successor)
	if l := k.RateLimit; l != nil {
		row("rate limit", fmt.Sprintf("%s, burst %d", l.Rate, l.Burst))
	}
	if u := k.Uses; u != nil {
		left := *u
		g := left.Spend(0, now)
		uses := fmt.Sprintf("%d left", g.Remaining)
		if !u.Refill.IsZero() {
			uses += fmt.Sprintf(", refilled to %d at %s (%s)", u.Refill.N, g.Until.Format(time.RFC3339), u.Refill)
		}
		row("uses", uses+", set "+u.Set.Format(time.RFC3339))
	}
	row("version", strconv.FormatInt(k.Version, 10))
	if err := tw.Flush(); err != nil {
		return err
	}
	if k.PublicKey != nil {
		fmt.Fprintf(e.Stdout, "public key:\n%s", k.PublicKey)
	}
	return nil
}

type keysAuditOptions struct {
	store storeFlags
	key   string
	limit int
	json  bool
}

func newCmdKeysAudit(e *Env, runF func(*keysAuditOptions) error) *cobra.Command {
	o := &keysAuditOptions{}
	cmd := &cobra.Command{
		Use:   "audit [--key ID] [--limit N] [--json]",
		Short: "Show the audit log",
		Args:  noArgs(""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.limit < 0 {
				return usageErrorf("--limit must not be negative")
			}
			if runF != nil {
				return runF(o)
			}
			return keysAuditRun(e, o)
		},
	}
	f := cmd.Flags()
	o.store.register(f)
	f.StringVar(&o.key, "key", "", "only events about the key `ID`")
	f.IntVar(&o.limit, "limit", 0, "only the last `N` events (default: all)")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func keysAuditRun(e *Env, o *keysAuditOptions) error {
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	evs, err := ks.Audit(e.Context, keys.AuditFilter{KeyID: o.key, Limit: o.limit})
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(e, evs)
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tKEY\tDETAIL")
	for _, ev := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(time.RFC3339), ev.Actor, ev.Action, orDash(ev.KeyID), ev.Detail)
	}
	return tw.Flush()
}
