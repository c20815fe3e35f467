package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/keys"
)

type keysRevokeOptions struct {
	store storeFlags
	id    string
}

func newCmdKeysRevoke(e *Env, runF func(*keysRevokeOptions) error) *cobra.Command {
	o := &keysRevokeOptions{}
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key: refused everywhere from now on",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.id = args[0]
			if runF != nil {
				return runF(o)
			}
			return keysRevokeRun(e, o)
		},
	}
	o.store.register(cmd.Flags())
	return cmd
}

func keysRevokeRun(e *Env, o *keysRevokeOptions) error {
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	if err := ks.Revoke(e.Context, o.id, actor(e)); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "revoked %s: refused from now on\n", o.id)
	return nil
}

type keysSetScopesOptions struct {
	store  storeFlags
	id     string
	scopes string
}

func newCmdKeysSetScopes(e *Env, runF func(*keysSetScopesOptions) error) *cobra.Command {
	o := &keysSetScopesOptions{}
	cmd := &cobra.Command{
		Use:   "set-scopes ID --scopes a,b",
		Short: "Replace the scopes of a key",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.id = args[0]
			if !cmd.Flags().Changed("scopes") {
				return usageErrorf("--scopes is required")
			}
			if runF != nil {
				return runF(o)
			}
			return keysSetScopesRun(e, o)
		},
	}
	f := cmd.Flags()
	o.store.register(f)
	f.StringVar(&o.scopes, "scopes", "", "the new `SCOPES`, comma-separated (--scopes \"\" for none) (required)")
	return cmd
}

func keysSetScopesRun(e *Env, o *keysSetScopesOptions) error {
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	scopes := splitList(o.scopes)
	if err := ks.SetScopes(e.Context, o.id, scopes, actor(e)); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "scopes of %s: %s\n", o.id, orDash(strings.Join(scopes, ", ")))
	return nil
}

type keysDisableOptions struct {
	store storeFlags
	id    string
	json  bool
}

func newCmdKeysDisable(e *Env, runF func(*keysDisableOptions) error) *cobra.Command {
	o := &keysDisableOptions{}
	cmd := &cobra.Command{
		Use:   "disable ID [--json]",
		Short: "Disable a key: refused everywhere (key-disabled) until enabled again",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.id = args[0]
			if runF != nil {
				return runF(o)
			}
			return keysToggleRun(e, o.store, o.id, o.json, true)
		},
	}
	o.store.register(cmd.Flags())
	cmd.Flags().BoolVar(&o.json, "json", false, "print the key as JSON")
	return cmd
}

type keysEnableOptions = keysDisableOptions

func newCmdKeysEnable(e *Env, runF func(*keysEnableOptions) error) *cobra.Command {
	o := &keysEnableOptions{}
	cmd := &cobra.Command{
		Use:   "enable ID [--json]",
		Short: "Enable a disabled key again",
		Args:  oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.id = args[0]
			if runF != nil {
				return runF(o)
			}
			return keysToggleRun(e, o.store, o.id, o.json, false)
		},
	}
	o.store.register(cmd.Flags())
	cmd.Flags().BoolVar(&o.json, "json", false, "print the key as JSON")
	return cmd
}

// keysToggleRun disables or enables a key.
func keysToggleRun(e *Env, store storeFlags, id string, asJSON, disable bool) error {
	ks, err := store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	change := ks.Enable
	if disable {
		change = ks.Disable
	}
	k, err := change(e.Context, id, actor(e))
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(e, k)
	}
	switch {
	case disable && k.Status(e.Now()) == keys.StatusDisabled:
		fmt.Fprintf(e.Stdout, "disabled %s since %s: refused until enabled again\n", id, k.Disabled.Format(time.RFC3339))
	case disable:
		fmt.Fprintf(e.Stdout, "disabled %s, which is %s anyway\n", id, k.Status(e.Now()))
	default:
		fmt.Fprintf(e.Stdout, "enabled %s: %s\n", id, k.Status(e.Now()))
	}
	return nil
}

type keysUpdateOptions struct {
	store    storeFlags
	id       string
	label    string
	expires  string
	metadata string
	scopes   string
	limits   limitFlags
	version  int64
	json     bool

	labelSet, expiresSet, metadataSet, scopesSet bool
}

func newCmdKeysUpdate(e *Env, runF func(*keysUpdateOptions) error) *cobra.Command {
	o := &keysUpdateOptions{}
	cmd := &cobra.Command{
		Use:   "update ID [--label TEXT] [--expires 90d|TIME|never] [--metadata JSON|@FILE] [--scopes a,b] [--rate 100/s [--burst N]] [--uses N [--refill N/day]]",
		Short: "Change a key's label, expiry, metadata, scopes, rate limit or budget of uses",
		Long: "Change a key's label, expiry, metadata, scopes, rate limit or budget of uses, in one\n" +
			"write; what no flag names stays as it is. --uses sets a new budget, counted from now.",
		Args: oneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.id = args[0]
			f := cmd.Flags()
			o.labelSet, o.expiresSet, o.metadataSet, o.scopesSet = f.Changed("label"), f.Changed("expires"), f.Changed("metadata"), f.Changed("scopes")
			if err := o.limits.check(f); err != nil {
				return err
			}
			if !o.labelSet && !o.expiresSet && !o.metadataSet && !o.scopesSet && !o.limits.rateSet && !o.limits.usesSet && !o.limits.noRate && !o.limits.noUses {
				return usageErrorf("nothing to change: give --label, --expires, --metadata, --scopes, --rate, --uses, --no-rate or --no-uses")
			}
			if o.version < 0 {
				return usageErrorf("--version must not be negative")
			}
			if runF != nil {
				return runF(o)
			}
			return keysUpdateRun(e, o)
		},
	}
	f := cmd.Flags()
	o.store.register(f)
	f.StringVar(&o.label, "label", "", "a new `TEXT` for people (\"\" for none)")
	f.StringVar(&o.expires, "expires", "", "a new expiry: a `DURATION` from now (90d, 24h), an RFC 3339 time, or never")
	f.StringVar(&o.metadata, "metadata", "", "new metadata: a `JSON` object (at most 4 KiB; {} for none), or @FILE, or @- for stdin")
	f.StringVar(&o.scopes, "scopes", "", "the new `SCOPES`, comma-separated (\"\" for none)")
	o.limits.register(f, true)
	f.Int64Var(&o.version, "version", 0, "change the key only if it is still at this `VERSION` (see keys show)")
	f.BoolVar(&o.json, "json", false, "print the key as JSON")
	return cmd
}

func keysUpdateRun(e *Env, o *keysUpdateOptions) error {
	req := keys.UpdateRequest{ID: o.id, Version: o.version, Actor: actor(e)}
	if o.labelSet {
		req.Label = &o.label
	}
	if o.expiresSet {
		var exp time.Time
		if o.expires != "never" {
			t, err := keys.ParseExpiry(o.expires, e.Now())
			if err != nil || t.IsZero() {
				if err == nil {
					err = fmt.Errorf("give a duration, a time, or never")
				}
				return usageError{fmt.Errorf("--expires: %w", err)}
			}
			exp = t
		}
		req.Expires = &exp
	}
	if o.metadataSet {
		meta, err := readMetadata(e, o.metadata)
		if err != nil {
			return err
		}
		req.Metadata = meta
	}
	if o.scopesSet {
		scopes := splitList(o.scopes)
		req.Scopes = &scopes
	}
	switch l := &o.limits; {
	case l.noRate:
		req.RateLimit = &keys.RateLimit{}
	case l.rateSet:
		rl := l.rateLimit()
		req.RateLimit = &rl
	}
	switch l := &o.limits; {
	case l.noUses:
		req.Uses = &keys.Uses{}
	case l.usesSet:
		u := l.budget()
		req.Uses = &u
	}
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	k, err := ks.Update(e.Context, req)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(e, k)
	}
	fmt.Fprintf(e.Stdout, "%s is at version %d\n", k.ID, k.Version)
	return showKey(e, k)
}
