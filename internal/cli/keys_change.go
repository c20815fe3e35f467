package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
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
