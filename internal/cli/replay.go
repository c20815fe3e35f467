package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/replay/redis"
)

// newCmdReplay returns signet replay, which manages the replay cache that
// gateways share.
func newCmdReplay(e *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Prepare the Redis replay cache that gateways share",
		RunE:  needSubcommand,
	}
	cmd.AddCommand(newCmdReplayInit(e, nil))
	return cmd
}

type replayInitOptions struct {
	redisURL, prefix string
}

func newCmdReplayInit(e *Env, runF func(*replayInitOptions) error) *cobra.Command {
	o := &replayInitOptions{}
	cmd := &cobra.Command{
		Use:   "init --redis URL [--redis-prefix PREFIX]",
		Short: "Prepare a new, empty Redis, so that gateways vouch for signatures from their start",
		Long: "Prepare a Redis that has never held the nonces of signet serve --redis, so that\n" +
			"the first gateways on it accept requests at once. Without it they cannot tell a\n" +
			"new Redis from one that lost its data, and refuse signatures created before\n" +
			"--max-skew (30s) after their start, as possible replays.\n\n" +
			"Run it only on a Redis you know to be new. On a Redis that lost its data\n" +
			"(restarted without persistence, failed over to an empty replica, flushed), it\n" +
			"would let through again every request captured in the last --max-age; the\n" +
			"gateways find such a loss themselves, and need nothing. It changes nothing on a\n" +
			"Redis already prepared (or used by gateways), and refuses one that holds part\n" +
			"of what a prepared one holds (a Cluster node that restarted empty).",
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.redisURL == "" {
				return usageErrorf("--redis is required")
			}
			if runF != nil {
				return runF(o)
			}
			return replayInitRun(e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.redisURL, "redis", "", "redis:// `URL` of the new Redis, as given to signet serve --redis")
	f.StringVar(&o.prefix, "redis-prefix", redis.DefaultKeyPrefix, "`PREFIX` of the nonce keys, as given to signet serve --redis-prefix")
	return cmd
}

func replayInitRun(e *Env, o *replayInitOptions) error {
	ctx, cancel := context.WithTimeout(e.Context, 30*time.Second)
	defer cancel()
	n, err := redis.Init(ctx, o.redisURL, redis.Options{KeyPrefix: o.prefix})
	switch {
	case errors.Is(err, redis.ErrPartlyPrepared):
		return fmt.Errorf("%w; nothing changed", err)
	case err != nil:
		return err
	case n == 0:
		fmt.Fprintf(e.Stdout, "this Redis was prepared already for the prefix %q: nothing changed\n", o.prefix)
	default:
		fmt.Fprintf(e.Stdout, "prepared: %d sentinels set for the prefix %q; gateways on this Redis accept signatures from their start\n", n, o.prefix)
	}
	return nil
}
