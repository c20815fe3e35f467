package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/keys"
)

type keysListOptions struct {
	store storeFlags
	owner string
	all   bool
	json  bool
}

func newCmdKeysList(e *Env, runF func(*keysListOptions) error) *cobra.Command {
	o := &keysListOptions{}
	cmd := &cobra.Command{
		Use:   "list [--owner ID] [--all] [--json]",
		Short: "List keys",
		Args:  noArgs(""),
		RunE: func(cmd *cobra.Command, args []string) error {
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
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func keysListRun(e *Env, o *keysListOptions) error {
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	list, err := ks.List(e.Context, keys.ListFilter{Owner: o.owner, IncludeRevoked: o.all})
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(e, list)
	}
	now := e.Now()
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tALG\tSTATUS\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tLABEL")
	for _, k := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Owner, k.Alg, k.Status(now), orDash(strings.Join(k.Scopes, ",")),
			shortTime(k.Created), shortTime(k.Expires), shortTime(k.LastUsed), orDash(k.Label))
	}
	return tw.Flush()
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
	row("status", string(k.Status(e.Now())))
	row("scopes", orDash(strings.Join(k.Scopes, ", ")))
	row("label", k.Label)
	timeRow("created", k.Created)
	timeRow("expires", k.Expires)
	timeRow("revoked", k.Revoked)
	timeRow("last used", k.LastUsed)
	row("predecessor", k.Predecessor)
	row("successor", k.Successor)
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
