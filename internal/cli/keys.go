package cli

import (
	"encoding/json"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/keys"
)

// newCmdKeys returns signet keys; its subcommands live in the keys_*.go
// files by family: issuing (create, rotate), reading (list, show, audit),
// changing (revoke, set-scopes) and the master key (rekey).
func newCmdKeys(e *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Issue, list, rotate and revoke keys in the key store",
		Long: "Issue, list, rotate and revoke the keys clients sign with, in the key store.\n" +
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
		newCmdKeysSetScopes(e, nil),
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
