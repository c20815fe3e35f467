package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/keyring"
)

// openGatewayKeys reads the gateway's keyring from path, or makes one of
// a new key and saves it there (mode 0600) when the file does not exist:
// a gateway given --gateway-keys signs from its first start. Several
// gateways that share one file should have it made beforehand (signet
// gateway-keys init), or two first starts may each make their own.
func openGatewayKeys(e *Env, path string, log *slog.Logger) (*keyring.Ring, error) {
	if path == "" {
		return nil, nil
	}
	r, err := keyring.Load(path)
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("--gateway-keys: %w", err)
	}
	if r, err = keyring.New(e.Now()); err != nil {
		return nil, err
	}
	if err := r.Save(path); err != nil {
		return nil, fmt.Errorf("--gateway-keys: %w", err)
	}
	log.Info("made a gateway keyring", "file", path, "key_id", r.Keys[0].ID)
	return r, nil
}

// watchGatewayKeys reloads the keyring file on SIGHUP (hup) and when its
// content changes (read every interval), until ctx ends. A file that
// does not load is reported, and the keyring in force kept.
func watchGatewayKeys(ctx context.Context, path string, g *gateway.Gateway, log *slog.Logger, hup <-chan os.Signal, interval time.Duration) {
	seen, _ := os.ReadFile(path)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		cause := "file"
		select {
		case <-ctx.Done():
			return
		case <-hup:
			cause = "signal"
		case <-tick.C:
		}
		data, err := os.ReadFile(path)
		if cause == "file" && (err != nil || bytes.Equal(data, seen)) {
			continue
		}
		seen = data
		r, err := keyring.Load(path)
		if err == nil {
			err = g.SetKeyring(r)
		}
		if err != nil {
			log.Error("gateway keys not reloaded; the keyring in force stays", "cause", cause, "file", path, "error", err.Error())
			continue
		}
		ids := make([]string, len(r.Keys))
		for i, k := range r.Keys {
			ids[i] = k.ID
		}
		log.Info("gateway keys reloaded", "cause", cause, "file", path, "keys", ids)
	}
}

// keySetCacheAge is how long the published key set may be kept: its
// Cache-Control max-age.
const keySetCacheAge = 5 * time.Minute

func newCmdGatewayKeys(e *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway-keys",
		Short: "Make, rotate and list the gateway's own signing keys (serve --gateway-keys)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "init FILE",
		Short: "Make a keyring of one new Ed25519 key (mode 0600)",
		Args:  oneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err == nil {
				return usageErrorf("%s exists; rotate it instead", args[0])
			}
			r, err := keyring.New(e.Now())
			if err != nil {
				return err
			}
			if err := r.Save(args[0]); err != nil {
				return err
			}
			fmt.Fprintln(e.Stdout, r.Keys[0].ID)
			return nil
		},
	})
	var ahead, overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate FILE",
		Short: "Add a successor key: published at once, signing after --publish-ahead; the old keys stay published for --overlap after that",
		Long: "Add a successor to the key that signs now. The new key is published at once\n" +
			"and starts signing after --publish-ahead (at least the five minutes clients\n" +
			"cache the key set); the keys it replaces stay published for --overlap after\n" +
			"that. Running gateways reload the file by themselves (or on SIGHUP).\n" +
			"Prints the new key's id.",
		Args: oneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ahead < 0 || overlap < 0 {
				return usageErrorf("--publish-ahead and --overlap cannot be negative")
			}
			r, err := keyring.Load(args[0])
			if err != nil {
				return err
			}
			k, err := r.Rotate(e.Now(), ahead, overlap)
			if err != nil {
				return err
			}
			if err := r.Save(args[0]); err != nil {
				return err
			}
			if ahead < keySetCacheAge {
				fmt.Fprintf(e.Stderr, "warning: the new key signs in %v, before the %v for which clients and caches may keep the key set they have: until they fetch it again, they cannot verify what it signs\n", ahead, keySetCacheAge)
			}
			fmt.Fprintln(e.Stdout, k.ID)
			return nil
		},
	}
	rotate.Flags().DurationVar(&ahead, "publish-ahead", 10*time.Minute, "how long the new key is published before it signs")
	rotate.Flags().DurationVar(&overlap, "overlap", time.Hour, "how long the replaced keys stay published after the new one signs")
	cmd.AddCommand(rotate)
	cmd.AddCommand(&cobra.Command{
		Use:   "list FILE",
		Short: "List the keys of a keyring: id, when each signs from, when it stops being published",
		Args:  oneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := keyring.Load(args[0])
			if err != nil {
				return err
			}
			now := e.Now()
			signing, _ := r.Signer(now)
			for _, k := range r.Keys {
				state, exp := "published", "-"
				switch {
				case k.ID == signing.ID:
					state = "signing"
				case k.NotBefore.After(now):
					state = "next"
				}
				if !k.Expires.IsZero() {
					exp = k.Expires.UTC().Format(time.RFC3339)
					if !now.Before(k.Expires) {
						state = "expired"
					}
				}
				fmt.Fprintf(e.Stdout, "%s  %-9s  from %s  until %s\n", k.ID, state, k.NotBefore.UTC().Format(time.RFC3339), exp)
			}
			return nil
		},
	})
	return cmd
}

func oneFile(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErrorf("give one keyring file")
	}
	return nil
}
