// Package postgres implements [keys.Store] in PostgreSQL, for a gateway of
// many instances, with the pgx driver: [Open] takes a postgres:// or
// postgresql:// URL.
//
// Every change to a key that matters to a verifier is announced with
// NOTIFY on the channel signet_keys by a trigger, so changes made by hand
// in SQL are announced too. [Store.Watch] LISTENs on a connection of its
// own, checks it every [Options.Heartbeat], and reconnects by itself; while
// it is down it reports so, and a [keys.Service] stops trusting its cache.
//
// Errors that mean the server cannot answer or write now (the connection
// failed or timed out; out of disk, 53100; shutting down; a standby) wrap
// [keys.ErrUnavailable].
//
// The audit log is append-only: a trigger refuses UPDATE, DELETE and
// TRUNCATE on it. The schema is created and migrated by [Open] under an
// advisory lock, so that instances starting at once apply each migration
// once.
package postgres

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/internal/migrate"
)

// DefaultHeartbeat is the Heartbeat of a zero [Options].
const DefaultHeartbeat = 500 * time.Millisecond

// channel is the NOTIFY channel of key changes.
const channel = "signet_keys"

// migrationLock is the advisory lock key held while migrating:
// the first 8 bytes of "signet m" as a big-endian integer.
const migrationLock int64 = 0x7369676e6574206d

// Options configures a [Store]. The zero value is ready to use.
type Options struct {
	// Heartbeat is how often the listening connection is checked while it
	// hears nothing, and how long the check may take: a connection that
	// died silently is noticed within about twice this. Zero means
	// DefaultHeartbeat.
	Heartbeat time.Duration
}

// A Store keeps keys in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	listenCfg *pgx.ConnConfig
	heartbeat time.Duration
}

var _ keys.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// or postgresql://
// URL, or a key=value connection string) and brings its schema up to date.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("keys/postgres: %w", err)
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "signet"
	}
	listenCfg := cfg.ConnConfig.Copy()
	listenCfg.RuntimeParams["application_name"] += " (listen)"
	s := &Store{listenCfg: listenCfg, heartbeat: opts.Heartbeat}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("keys/postgres: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	return s, nil
}

//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies the migrations the database lacks, in one transaction
// holding an advisory lock: a second instance starting at once waits for
// it, then finds them applied.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("keys/postgres: %w", err)
	}
	return s.inTx(ctx, "migrating the schema", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return wrap("locking for the schema migration", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS signet_schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return wrap("creating the migrations table", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM signet_schema_migrations`).Scan(&current); err != nil {
			return wrap("reading the schema version", err)
		}
		if latest := migrate.Latest(ms); current > latest {
			return fmt.Errorf("keys/postgres: the database has schema version %d, newer than this signet knows (%d): upgrade signet", current, latest)
		}
		for _, m := range ms {
			if m.Version <= current {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return wrap("applying migration "+m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO signet_schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return wrap("recording migration "+m.Name, err)
			}
		}
		return nil
	})
}

// wrap says what failed. Errors that mean the server cannot answer or
// write now wrap keys.ErrUnavailable: the same call may succeed later.
func wrap(op string, err error) error {
	if errors.Is(err, keys.ErrUnavailable) {
		return err
	}
	e := fmt.Errorf("keys/postgres: %s: %w", op, err)
	if unavailable(err) {
		return fmt.Errorf("%w: %w", keys.ErrUnavailable, e)
	}
	return e
}

// unavailable reports whether err means that the server cannot answer or
// write now: the connection failed or timed out, or the server says so
// (out of disk, memory or connections; shutting down; a standby; a lock
// or serialization conflict). An error the server returns for the
// statement itself (a constraint, bad SQL) does not.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources: 53100 disk full, out of memory, too many connections
			"57": // operator intervention: shutdown, cannot connect now, statement timeout
			return true
		}
		switch pe.Code {
		case "25006", // read-only transaction: a standby after a failover
			"40001", "40P01", // serialization failure, deadlock
			"55P03": // lock not available
			return true
		}
		return false
	}
	// Anything else comes from the connection (refused, broken, timed
	// out), unless the caller gave up.
	return !errors.Is(err, context.Canceled)
}

// inTx runs f in a transaction. Errors of f are returned as they are; f
// must wrap its own.
func (s *Store) inTx(ctx context.Context, op string, f func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(op, err)
	}
	defer tx.Rollback(ctx)
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(op, err)
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

const keyColumns = `id, owner, alg, scopes, label, created, expires, revoked, last_used, predecessor, successor, public_key, secret, version, ` +
	`disabled, metadata, rate, burst, uses_remaining, uses_refill, uses_refilled, uses_set`

func scanRecord(row pgx.Row) (*keys.Record, error) {
	var r keys.Record
	var alg, metadata, rate, refill string
	var burst int64
	var remaining *int64
	var expires, revoked, lastUsed, disabled, refilled, set *time.Time
	var pub *string
	if err := row.Scan(&r.ID, &r.Owner, &alg, &r.Scopes, &r.Label, &r.Created, &expires, &revoked, &lastUsed,
		&r.Predecessor, &r.Successor, &pub, &r.Secret, &r.Version,
		&disabled, &metadata, &rate, &burst, &remaining, &refill, &refilled, &set); err != nil {
		return nil, err
	}
	r.Alg = httpsig.Algorithm(alg)
	if r.Scopes == nil {
		r.Scopes = []string{}
	}
	r.Created = r.Created.UTC()
	r.Expires, r.Revoked, r.LastUsed, r.Disabled = utc(expires), utc(revoked), utc(lastUsed), utc(disabled)
	if pub != nil {
		r.PublicKey = []byte(*pub)
	}
	if metadata != "" {
		r.Metadata = []byte(metadata)
	}
	if rate != "" {
		rt, err := keys.ParseRate(rate)
		if err != nil {
			return nil, fmt.Errorf("key %s: stored %w", r.ID, err)
		}
		r.RateLimit = &keys.RateLimit{Rate: rt, Burst: burst}
	}
	if remaining != nil {
		u := &keys.Uses{Remaining: *remaining, Refilled: utc(refilled), Set: utc(set)}
		if refill != "" {
			rt, err := keys.ParseRate(refill)
			if err != nil {
				return nil, fmt.Errorf("key %s: stored refill %w", r.ID, err)
			}
			u.Refill = rt
		}
		r.Uses = u
	}
	return &r, nil
}

// limitColumns returns the values of the columns rate, burst,
// uses_remaining, uses_refill, uses_refilled and uses_set of r.
func limitColumns(r *keys.Record) (rate string, burst int64, remaining *int64, refill string, refilled, set any) {
	if l := r.RateLimit; l != nil {
		rate, burst = l.Rate.String(), l.Burst
	}
	if u := r.Uses; u != nil {
		remaining = &u.Remaining
		refill, refilled, set = u.Refill.String(), orNull(u.Refilled), orNull(u.Set)
	}
	return
}

func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// orNull returns nil for the zero time, which pgx writes as NULL.
func orNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func pemOrNull(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// Get implements [keys.Store].
func (s *Store) Get(ctx context.Context, id string) (*keys.Record, error) {
	r, err := scanRecord(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM signet_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", keys.ErrNotFound, id)
	}
	if err != nil {
		return nil, wrap("reading key", err)
	}
	return r, nil
}

// List implements [keys.Store].
func (s *Store) List(ctx context.Context, q keys.ListQuery) ([]keys.Key, error) {
	var where []string
	var args []any
	cond := func(c string, a ...any) {
		for _, v := range a {
			args = append(args, v)
			c = strings.Replace(c, "$?", "$"+strconv.Itoa(len(args)), 1)
		}
		where = append(where, c)
	}
	if q.Owner != "" {
		cond(`owner = $?`, q.Owner)
	}
	if q.IDPrefix != "" {
		cond(`starts_with(id, $?)`, q.IDPrefix)
	}
	if q.Scope != "" {
		cond(`$? = ANY (scopes)`, q.Scope)
	}
	const live = `revoked IS NULL AND (expires IS NULL OR expires > $?)`
	switch q.Status {
	case "":
		if !q.IncludeRevoked {
			cond(`revoked IS NULL`)
		}
	case keys.StatusRevoked:
		cond(`revoked IS NOT NULL`)
	case keys.StatusExpired:
		cond(`revoked IS NULL AND expires <= $?`, q.Now)
	case keys.StatusDisabled:
		cond(live+` AND disabled IS NOT NULL`, q.Now)
	case keys.StatusExpiring:
		cond(live+` AND disabled IS NULL AND successor != ''`, q.Now)
	case keys.StatusActive:
		cond(live+` AND disabled IS NULL AND successor = ''`, q.Now)
	default:
		return nil, fmt.Errorf("%w: no status %q", keys.ErrInvalid, q.Status)
	}
	if q.After.ID != "" {
		cond(`(created, id) > ($?, $?)`, q.After.Created, q.After.ID)
	}
	query := `SELECT ` + keyColumns + ` FROM signet_keys`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY created, id`
	if q.Limit > 0 {
		args = append(args, q.Limit)
		query += ` LIMIT $` + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, wrap("listing keys", err)
	}
	defer rows.Close()
	out := []keys.Key{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, wrap("listing keys", err)
		}
		out = append(out, r.Key)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("listing keys", err)
	}
	return out, nil
}

const masterCheckName = "master_check"

// Apply implements [keys.Store]. A write that carries a check value holds
// the check value's row shared until it commits, so that a Reseal, which
// locks it exclusively, comes wholly before or after it.
func (s *Store) Apply(ctx context.Context, w *keys.Write) error {
	return s.inTx(ctx, "writing", func(tx pgx.Tx) error {
		if w.Check != nil {
			var check []byte
			err := tx.QueryRow(ctx, `SELECT value FROM signet_meta WHERE name = $1 FOR SHARE`, masterCheckName).Scan(&check)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return wrap("reading the master key check value", err)
			}
			if !bytes.Equal(check, w.Check) {
				return fmt.Errorf("keys/postgres: %w", keys.ErrWrongMasterKey)
			}
		}
		for i := range w.Insert {
			r := &w.Insert[i]
			rate, burst, remaining, refill, refilled, set := limitColumns(r)
			_, err := tx.Exec(ctx, `INSERT INTO signet_keys (`+keyColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $15, $16, $17, $18, $19, $20, $21)`,
				r.ID, r.Owner, string(r.Alg), scopesOf(r.Scopes), r.Label, r.Created, orNull(r.Expires), orNull(r.Revoked), orNull(r.LastUsed),
				r.Predecessor, r.Successor, pemOrNull(r.PublicKey), r.Secret,
				orNull(r.Disabled), string(r.Metadata), rate, burst, remaining, refill, refilled, set)
			if isUniqueViolation(err) {
				return fmt.Errorf("%w: key id %s is taken", keys.ErrConflict, r.ID)
			}
			if err != nil {
				return wrap("adding key", err)
			}
		}
		for i := range w.Update {
			r := &w.Update[i]
			rate, burst, remaining, refill, refilled, set := limitColumns(r)
			tag, err := tx.Exec(ctx, `UPDATE signet_keys SET label = $1, scopes = $2, metadata = $3, expires = $4, disabled = $5, revoked = $6,
					successor = $7, rate = $8, burst = $9,
					uses_remaining = CASE WHEN uses_set IS NOT DISTINCT FROM $10::timestamptz THEN uses_remaining ELSE $11 END,
					uses_refilled = CASE WHEN uses_set IS NOT DISTINCT FROM $10::timestamptz THEN uses_refilled ELSE $12 END,
					uses_refill = $13, uses_set = $10, version = version + 1
				WHERE id = $14 AND version = $15`,
				r.Label, scopesOf(r.Scopes), string(r.Metadata), orNull(r.Expires), orNull(r.Disabled), orNull(r.Revoked),
				r.Successor, rate, burst, set, remaining, refilled, refill, r.ID, r.Version)
			if err != nil {
				return wrap("updating key", err)
			}
			if tag.RowsAffected() == 1 {
				continue
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT exists (SELECT 1 FROM signet_keys WHERE id = $1)`, r.ID).Scan(&exists); err != nil {
				return wrap("updating key", err)
			}
			if !exists {
				return fmt.Errorf("%w: %s", keys.ErrNotFound, r.ID)
			}
			return fmt.Errorf("%w: key %s was changed by someone else meanwhile", keys.ErrConflict, r.ID)
		}
		return appendEvents(ctx, tx, w.Events)
	})
}

func scopesOf(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func appendEvents(ctx context.Context, tx pgx.Tx, evs []keys.AuditEvent) error {
	for _, ev := range evs {
		if _, err := tx.Exec(ctx, `INSERT INTO signet_audit (at, actor, action, key_id, detail) VALUES ($1, $2, $3, $4, $5)`,
			ev.Time, ev.Actor, ev.Action, ev.KeyID, ev.Detail); err != nil {
			return wrap("writing the audit log", err)
		}
	}
	return nil
}

// Reseal implements [keys.Store].
func (s *Store) Reseal(ctx context.Context, reseal func(id string, sealed []byte) ([]byte, error), check []byte, ev keys.AuditEvent) error {
	return s.inTx(ctx, "re-sealing secrets", func(tx pgx.Tx) error {
		// Lock the check value first: writers that seal secrets wait.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM signet_meta WHERE name = $1 FOR UPDATE`, masterCheckName); err != nil {
			return wrap("locking the master key check value", err)
		}
		rows, err := tx.Query(ctx, `SELECT id, secret FROM signet_keys WHERE secret IS NOT NULL ORDER BY id FOR UPDATE`)
		if err != nil {
			return wrap("reading secrets", err)
		}
		var ids []string
		var sealed [][]byte
		for rows.Next() {
			var id string
			var old []byte
			if err := rows.Scan(&id, &old); err != nil {
				rows.Close()
				return wrap("reading secrets", err)
			}
			ids = append(ids, id)
			sealed = append(sealed, old)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap("reading secrets", err)
		}
		for i, id := range ids {
			if sealed[i], err = reseal(id, sealed[i]); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE signet_keys AS k SET secret = u.secret
			FROM unnest($1::text[], $2::bytea[]) AS u (id, secret) WHERE k.id = u.id`, ids, sealed); err != nil {
			return wrap("writing secrets", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO signet_meta (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, masterCheckName, check); err != nil {
			return wrap("writing the master key check value", err)
		}
		return appendEvents(ctx, tx, []keys.AuditEvent{ev})
	})
}

// MasterCheck implements [keys.Store].
func (s *Store) MasterCheck(ctx context.Context, init []byte) ([]byte, error) {
	var check []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM signet_meta WHERE name = $1`, masterCheckName).Scan(&check)
	if err == nil {
		return check, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap("reading the master key check value", err)
	}
	if init == nil {
		return nil, nil
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO signet_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, masterCheckName, init); err != nil {
		return nil, wrap("storing the master key check value", err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT value FROM signet_meta WHERE name = $1`, masterCheckName).Scan(&check); err != nil {
		return nil, wrap("reading the master key check value", err)
	}
	return check, nil
}

// Audit implements [keys.Store].
func (s *Store) Audit(ctx context.Context, f keys.AuditFilter) ([]keys.AuditEvent, error) {
	var limit any
	if f.Limit > 0 {
		limit = f.Limit
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, actor, action, key_id, detail FROM (
			SELECT * FROM signet_audit WHERE ($1 = '' OR key_id = $1) ORDER BY id DESC LIMIT $2
		) AS last ORDER BY id`, f.KeyID, limit)
	if err != nil {
		return nil, wrap("reading the audit log", err)
	}
	defer rows.Close()
	out := []keys.AuditEvent{}
	for rows.Next() {
		var ev keys.AuditEvent
		if err := rows.Scan(&ev.ID, &ev.Time, &ev.Actor, &ev.Action, &ev.KeyID, &ev.Detail); err != nil {
			return nil, wrap("reading the audit log", err)
		}
		ev.Time = ev.Time.UTC()
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("reading the audit log", err)
	}
	return out, nil
}

// TouchLastUsed implements [keys.Store], in one statement.
func (s *Store) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	ids := make([]string, 0, len(used))
	times := make([]time.Time, 0, len(used))
	for id, t := range used {
		ids = append(ids, id)
		times = append(times, t)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE signet_keys AS k SET last_used = u.t
		FROM unnest($1::text[], $2::timestamptz[]) AS u (id, t)
		WHERE k.id = u.id AND (k.last_used IS NULL OR k.last_used < u.t)`, ids, times); err != nil {
		return wrap("writing last-used times", err)
	}
	return nil
}

// SpendUses implements [keys.Store]. It locks the key's row for the
// read and the write.
func (s *Store) SpendUses(ctx context.Context, id string, n int64, now time.Time) (keys.UsesGrant, error) {
	var g keys.UsesGrant
	err := s.inTx(ctx, "spending uses", func(tx pgx.Tx) error {
		var remaining *int64
		var refilled, set *time.Time
		var refill string
		err := tx.QueryRow(ctx, `SELECT uses_remaining, uses_refill, uses_refilled, uses_set FROM signet_keys WHERE id = $1 FOR NO KEY UPDATE`, id).
			Scan(&remaining, &refill, &refilled, &set)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", keys.ErrNotFound, id)
		}
		if err != nil {
			return wrap("spending uses", err)
		}
		if remaining == nil {
			g.Unlimited = true
			return nil
		}
		u := keys.Uses{Remaining: *remaining, Refilled: utc(refilled), Set: utc(set)}
		if refill != "" {
			if u.Refill, err = keys.ParseRate(refill); err != nil {
				return fmt.Errorf("keys/postgres: key %s: stored refill %w", id, err)
			}
		}
		before := u
		g = u.Spend(n, now)
		if u == before {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE signet_keys SET uses_remaining = $1, uses_refilled = $2 WHERE id = $3`,
			u.Remaining, orNull(u.Refilled), id); err != nil {
			return wrap("spending uses", err)
		}
		return nil
	})
	if err != nil {
		return keys.UsesGrant{}, err
	}
	return g, nil
}

// usageBatchTTL is how long the ids of added usage batches are kept.
const usageBatchTTL = 7 * 24 * time.Hour

// AddUsage implements [keys.Store], in one statement for the counts. Rows
// are written in the order of their primary key, so that two batches
// written at once wait for each other rather than deadlock.
func (s *Store) AddUsage(ctx context.Context, b *keys.UsageBatch) error {
	if b.ID == "" || len(b.ID) > 64 {
		return fmt.Errorf("keys/postgres: a usage batch needs an id of 1 to 64 bytes")
	}
	n := len(b.Counts)
	ids, hours, routes, outcomes, counts := make([]string, n), make([]time.Time, n), make([]string, n), make([]string, n), make([]int64, n)
	for i, c := range b.Counts {
		ids[i], hours[i], routes[i], outcomes[i], counts[i] = c.KeyID, c.Hour, c.Route, string(c.Outcome), c.N
	}
	return s.inTx(ctx, "adding usage counts", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO signet_usage_batches (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, b.ID, b.Time)
		if err != nil {
			return wrap("adding usage counts", err)
		}
		if tag.RowsAffected() == 0 {
			return nil // added before
		}
		if _, err := tx.Exec(ctx, `INSERT INTO signet_usage (key_id, hour, route, outcome, n)
			SELECT key_id, hour, route, outcome, sum(n) FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[])
				AS c (key_id, hour, route, outcome, n)
			GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
			ON CONFLICT (key_id, hour, route, outcome) DO UPDATE SET n = signet_usage.n + excluded.n`,
			ids, hours, routes, outcomes, counts); err != nil {
			return wrap("adding usage counts", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM signet_usage_batches WHERE at < $1`, b.Time.Add(-usageBatchTTL)); err != nil {
			return wrap("adding usage counts", err)
		}
		return nil
	})
}

// Usage implements [keys.Store].
func (s *Store) Usage(ctx context.Context, q keys.UsageQuery) ([]keys.UsageCount, error) {
	cols := `u.hour, u.route, u.outcome`
	if q.ByKey {
		cols = `u.hour, u.route, u.key_id, u.outcome`
	}
	query := `SELECT ` + cols + `, sum(u.n)::bigint FROM signet_usage AS u`
	args := []any{q.Since}
	where := `u.hour >= $1`
	if q.Owner != "" {
		args = append(args, q.Owner)
		query += ` JOIN signet_keys AS k ON k.id = u.key_id AND k.owner = $` + strconv.Itoa(len(args))
	}
	if q.KeyID != "" {
		args = append(args, q.KeyID)
		where += ` AND u.key_id = $` + strconv.Itoa(len(args))
	}
	if !q.Until.IsZero() {
		args = append(args, q.Until)
		where += ` AND u.hour < $` + strconv.Itoa(len(args))
	}
	query += ` WHERE ` + where + ` GROUP BY ` + cols + ` ORDER BY ` + cols
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, wrap("reading usage counts", err)
	}
	defer rows.Close()
	var out []keys.UsageCount
	for rows.Next() {
		var c keys.UsageCount
		var outcome string
		dest := []any{&c.Hour, &c.Route, &outcome, &c.N}
		if q.ByKey {
			dest = []any{&c.Hour, &c.Route, &c.KeyID, &outcome, &c.N}
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, wrap("reading usage counts", err)
		}
		c.Hour, c.Outcome = c.Hour.UTC(), httpsig.Reason(outcome)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("reading usage counts", err)
	}
	return out, nil
}

// Watch implements [keys.Store] with LISTEN on a connection of its own.
func (s *Store) Watch(ctx context.Context, fn func(keys.Event)) {
	lost := false
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listen(ctx, fn, &lost)
		if ctx.Err() != nil {
			return
		}
		if !lost {
			lost = true
			backoff = 50 * time.Millisecond
			fn(keys.Event{Lost: true, Err: wrap("listening for changes", err)})
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// listen connects, LISTENs and reports notifications until ctx is done or
// the connection fails.
func (s *Store) listen(ctx context.Context, fn func(keys.Event), lost *bool) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.ConnectConfig(cctx, s.listenCfg)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+channel); err != nil {
		return err
	}
	*lost = false
	fn(keys.Event{Reset: true})
	for {
		wctx, cancel := context.WithTimeout(ctx, s.heartbeat)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if n.Payload == "*" {
				fn(keys.Event{Reset: true})
			} else {
				fn(keys.Event{Changed: []string{n.Payload}})
			}
			continue
		case ctx.Err() != nil:
			return nil
		case !pgconn.Timeout(err):
			return err
		}
		// Nothing heard for a while: make sure the connection is alive,
		// for a dead one hears nothing too.
		pctx, cancel := context.WithTimeout(ctx, s.heartbeat)
		_, err = conn.Exec(pctx, `SELECT 1`)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// Ping implements [keys.Store].
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Close implements [keys.Store].
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
