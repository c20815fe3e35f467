package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay/memory"
	"github.com/signet-dev/signet/replay/redis"
)

// replayCache is the nonce store of signet serve, with what it needs at
// the end.
type replayCache struct {
	store    httpsig.NonceStore
	mem      *memory.Store    // nil with Redis
	redis    *redis.Store     // nil in memory
	snapshot string           // where mem is saved at the end; "" for nowhere
	lock     *memory.FileLock // held while mem is the only store for its key store
}

// openReplayCache opens Redis when --redis is given. Otherwise it makes the
// in-memory store, and, when it has a snapshot path (--replay-snapshot, or
// beside an SQLite key store), locks the path so that a second gateway on
// the same keys, which would keep nonces apart and accept the first one's
// replays, refuses to start. The snapshot of the last graceful stop is
// loaded; when the last gateway there stopped without one (it crashed),
// the store refuses signatures created before its horizon, since that one
// may have accepted them.
func openReplayCache(e *Env, o *serveOptions, log *slog.Logger) (*replayCache, error) {
	if o.redisURL != "" {
		rs, err := redis.New(o.redisURL, redis.Options{
			KeyPrefix: o.redisPrefix, MaxSkew: o.skew,
			OnLoss: func(horizon time.Time) {
				log.Error("replay cache: Redis has lost the nonces of earlier requests (restarted without persistence, failed over, flushed), or is new (signet replay init prepares a new one): refusing signatures created before the horizon as replayed",
					"horizon", horizon.UTC().Format(time.RFC3339))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("replay cache: %w", err)
		}
		return &replayCache{store: rs, redis: rs}, nil
	}
	c := &replayCache{snapshot: o.replaySnapshot}
	kind, path, err := parseDB(e, o.db)
	if err != nil {
		return nil, err
	}
	if c.snapshot == "" && kind == "sqlite" {
		c.snapshot = path + ".nonces"
	}
	opts := memory.Options{MaxEntries: o.replayCapacity, MaxAge: o.maxAge, MaxSkew: o.skew}
	if c.snapshot == "" {
		log.Warn("replay cache: in memory, not saved on shutdown, and not shared: run one gateway on this key store, or give every gateway --redis")
		c.mem = memory.New(opts)
		c.store = c.mem
		return c, nil
	}
	lockPath := c.snapshot + ".lock"
	_, err = os.Stat(lockPath)
	ranBefore := err == nil
	if c.lock, err = memory.Lock(lockPath); err != nil {
		var le *memory.LockedError
		if errors.As(err, &le) {
			who := "another process"
			if le.PID > 0 {
				who = fmt.Sprintf("process %d", le.PID)
			}
			return nil, fmt.Errorf("replay cache: another signet serve (%s) keeps its replay cache in memory for the same key store (lock %s); gateways that share a key store must share a replay cache: give each --redis", who, lockPath)
		}
		return nil, fmt.Errorf("replay cache: %w", err)
	}
	opts.Horizon = true
	c.mem = memory.New(opts)
	switch err := c.mem.LoadFile(c.snapshot); {
	case err == nil:
		log.Info("replay cache: restored the snapshot of the last graceful stop", "entries", c.mem.Len(), "horizon", horizonText(c.mem))
	case errors.Is(err, memory.ErrStale):
		// LoadFile removes what it reads, so no gateway ran since the one
		// that saved it, longer ago than any signature stays fresh.
		opts.Horizon = false
		c.mem = memory.New(opts)
		log.Info("replay cache: the snapshot of the last graceful stop is older than --max-age; starting empty")
	case errors.Is(err, fs.ErrNotExist) && !ranBefore:
		opts.Horizon = false // the first gateway on this key store
		c.mem = memory.New(opts)
	case errors.Is(err, fs.ErrNotExist):
		log.Warn("replay cache: the last gateway on this key store did not stop cleanly (no snapshot): refusing signatures created before the horizon, which it may have accepted",
			"horizon", horizonText(c.mem), "snapshot", c.snapshot)
	default:
		log.Warn("replay cache: cannot use the snapshot of the last stop: refusing signatures created before the horizon",
			"horizon", horizonText(c.mem), "error", err.Error())
	}
	c.store = c.mem
	return c, nil
}

func horizonText(s *memory.Store) string { return s.HorizonTime().UTC().Format(time.RFC3339) }

// close saves the in-memory store for the next start, once no request can
// reach it any more, and lets go of the lock.
func (c *replayCache) close(log *slog.Logger) error {
	if c.redis != nil {
		return c.redis.Close()
	}
	var err error
	if c.snapshot != "" {
		if err = c.mem.SaveFile(c.snapshot); err == nil {
			log.Info("replay cache: saved for the next start", "snapshot", c.snapshot, "entries", c.mem.Len())
		} else {
			err = fmt.Errorf("replay cache: the next start will refuse signatures created before it for --max-skew: %w", err)
		}
	}
	if c.lock != nil {
		err = errors.Join(err, c.lock.Unlock())
	}
	return err
}
