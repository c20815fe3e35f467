// Package sqlite implements [keys.Store] in an SQLite database file, the
// embedded default of Signet, with the pure-Go driver modernc.org/sqlite
// (no cgo). [Open] opens or creates a file; [DefaultPath] says where the
// default one lives.
//
// The database runs in WAL mode with synchronous=FULL: a write that
// returned is on disk, and a process killed mid-write leaves the file
// consistent (the transaction is there whole, or not at all). Readers do
// not wait for the writer. Each Store writes through one connection, and
// transactions begin IMMEDIATE, so that a writer in another process makes
// it wait (up to [Options.BusyTimeout]) rather than fail halfway.
//
// Any number of processes may share the file: [Store.Watch] polls PRAGMA
// data_version, which moves when another connection commits, and then
// reads which keys changed from a table that triggers fill. So a key
// revoked with the signet command is refused by a running server within
// [Options.PollInterval] or so.
//
// The schema is created and migrated by [Open], in a transaction begun
// IMMEDIATE, so that processes starting at once apply each migration once.
package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/internal/migrate"
)

// Defaults of [Options].
const (
	DefaultBusyTimeout  = 5 * time.Second
	DefaultPollInterval = 100 * time.Millisecond
)

// Options configures a [Store]. The zero value is ready to use.
type Options struct {
	// BusyTimeout is how long a write waits for another process's write
	// to end before it fails. Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration

	// PollInterval is how often Watch looks for changes made by other
	// connections. Zero means DefaultPollInterval.
	PollInterval time.Duration
}

// A Store keeps keys in an SQLite file. It is safe for concurrent use.
type Store struct {
	path string
	db   *sql.DB // readers
	wdb  *sql.DB // the one writer
	busy time.Duration
	poll time.Duration
}

var _ keys.Store = (*Store)(nil)

// DefaultPath returns the path of the default database file: $SIGNET_DB if
// set, else $XDG_DATA_HOME/signet/signet.db, else
// ~/.local/share/signet/signet.db. getenv reads the environment (os.Getenv
// if nil).
func DefaultPath(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if p := getenv("SIGNET_DB"); p != "" {
		return p, nil
	}
	if d := getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "signet", "signet.db"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("keys/sqlite: no default database path: set SIGNET_DB, XDG_DATA_HOME or HOME: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".local", "share", "signet", "signet.db"), nil
}

// Open opens the database file at path, creating it if it does not exist
// (its directory must), and brings its schema up to date.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("keys/sqlite: no database path")
	}
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("keys/sqlite: %q: give a plain file path", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("keys/sqlite: database directory: %w", err)
		}
	}
	s := &Store{path: path, busy: opts.BusyTimeout, poll: opts.PollInterval}
	if s.busy <= 0 {
		s.busy = DefaultBusyTimeout
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	dsn := path + "?_pragma=busy_timeout(" + strconv.FormatInt(s.busy.Milliseconds(), 10) + ")" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	var err error
	if s.wdb, err = sql.Open("sqlite", dsn+"&_pragma=journal_mode(WAL)&_txlock=immediate"); err != nil {
		return nil, s.wrap("opening", err)
	}
	s.wdb.SetMaxOpenConns(1)
	if s.db, err = sql.Open("sqlite", dsn); err != nil {
		s.wdb.Close()
		return nil, s.wrap("opening", err)
	}
	s.db.SetMaxOpenConns(16)
	s.db.SetMaxIdleConns(4)
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies the migrations the file lacks, in one IMMEDIATE
// transaction: a second process starting at once waits, then finds them
// applied.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("keys/sqlite: %w", err)
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("starting the schema migration", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS signet_schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return s.wrap("creating the migrations table", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM signet_schema_migrations`).Scan(&current); err != nil {
		return s.wrap("reading the schema version", err)
	}
	if latest := migrate.Latest(ms); current > latest {
		return fmt.Errorf("keys/sqlite: %s has schema version %d, newer than this signet knows (%d): upgrade signet", s.path, current, latest)
	}
	for _, m := range ms {
		if m.Version <= current {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return s.wrap("applying migration "+m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO signet_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return s.wrap("recording migration "+m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.wrap("committing the schema migration", err)
	}
	return nil
}

// wrap turns a driver error into one that says what went wrong in terms a
// person can act on.
func (s *Store) wrap(op string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("keys/sqlite: %s: %s is locked by another writer (waited %s): %w", op, s.path, s.busy, err)
		case sqlite3.SQLITE_READONLY:
			return fmt.Errorf("keys/sqlite: %s: %s is read-only (check its permissions, and those of its directory): %w", op, s.path, err)
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
			return fmt.Errorf("keys/sqlite: %s: cannot open %s for writing (check its permissions, and those of its directory): %w", op, s.path, err)
		}
	}
	return fmt.Errorf("keys/sqlite: %s: %w", op, err)
}

func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// Path returns the path of the database file.
func (s *Store) Path() string { return s.path }

const keyColumns = `id, owner, alg, scopes, label, created, expires, revoked, last_used, predecessor, successor, public_key, secret, version`

type scanner interface{ Scan(dest ...any) error }

func scanRecord(sc scanner) (*keys.Record, error) {
	var r keys.Record
	var alg, scopes string
	var created int64
	var expires, revoked, lastUsed sql.NullInt64
	if err := sc.Scan(&r.ID, &r.Owner, &alg, &scopes, &r.Label, &created, &expires, &revoked, &lastUsed,
		&r.Predecessor, &r.Successor, &r.PublicKey, &r.Secret, &r.Version); err != nil {
		return nil, err
	}
	r.Alg = httpsig.Algorithm(alg)
	r.Scopes = strings.Fields(scopes)
	if r.Scopes == nil {
		r.Scopes = []string{}
	}
	r.Created = fromMicro(created)
	r.Expires, r.Revoked, r.LastUsed = fromNull(expires), fromNull(revoked), fromNull(lastUsed)
	return &r, nil
}

func fromMicro(us int64) time.Time { return time.UnixMicro(us).UTC() }

func fromNull(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicro(n.Int64)
}

func toNull(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// Get implements [keys.Store].
func (s *Store) Get(ctx context.Context, id string) (*keys.Record, error) {
	r, err := scanRecord(s.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM signet_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", keys.ErrNotFound, id)
	}
	if err != nil {
		return nil, s.wrap("reading key", err)
	}
	return r, nil
}

// List implements [keys.Store].
func (s *Store) List(ctx context.Context, f keys.ListFilter) ([]keys.Key, error) {
	q := `SELECT ` + keyColumns + ` FROM signet_keys WHERE (? = '' OR owner = ?) AND (? OR revoked IS NULL) ORDER BY created, id`
	rows, err := s.db.QueryContext(ctx, q, f.Owner, f.Owner, f.IncludeRevoked)
	if err != nil {
		return nil, s.wrap("listing keys", err)
	}
	defer rows.Close()
	out := []keys.Key{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, s.wrap("listing keys", err)
		}
		out = append(out, r.Key)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("listing keys", err)
	}
	return out, nil
}

// write runs f in a transaction on the writer connection, begun IMMEDIATE.
func (s *Store) write(ctx context.Context, op string, f func(tx *sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(op, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return s.wrap(op, err)
	}
	return nil
}

const masterCheckName = "master_check"

// Apply implements [keys.Store].
func (s *Store) Apply(ctx context.Context, w *keys.Write) error {
	return s.write(ctx, "writing", func(tx *sql.Tx) error {
		if w.Check != nil {
			var check []byte
			err := tx.QueryRowContext(ctx, `SELECT value FROM signet_meta WHERE name = ?`, masterCheckName).Scan(&check)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return s.wrap("reading the master key check value", err)
			}
			if !bytes.Equal(check, w.Check) {
				return fmt.Errorf("keys/sqlite: %w", keys.ErrWrongMasterKey)
			}
		}
		for i := range w.Insert {
			r := &w.Insert[i]
			_, err := tx.ExecContext(ctx, `INSERT INTO signet_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
				r.ID, r.Owner, string(r.Alg), strings.Join(r.Scopes, " "), r.Label, r.Created.UnixMicro(),
				toNull(r.Expires), toNull(r.Revoked), toNull(r.LastUsed), r.Predecessor, r.Successor, r.PublicKey, r.Secret)
			if isConstraint(err) {
				return fmt.Errorf("%w: key id %s is taken", keys.ErrConflict, r.ID)
			}
			if err != nil {
				return s.wrap("adding key", err)
			}
		}
		for i := range w.Update {
			r := &w.Update[i]
			res, err := tx.ExecContext(ctx, `UPDATE signet_keys SET scopes = ?, expires = ?, revoked = ?, successor = ?, version = version + 1
				WHERE id = ? AND version = ?`,
				strings.Join(r.Scopes, " "), toNull(r.Expires), toNull(r.Revoked), r.Successor, r.ID, r.Version)
			if err != nil {
				return s.wrap("updating key", err)
			}
			if n, err := res.RowsAffected(); err != nil || n == 1 {
				if err != nil {
					return s.wrap("updating key", err)
				}
				continue
			}
			var one int
			err = tx.QueryRowContext(ctx, `SELECT 1 FROM signet_keys WHERE id = ?`, r.ID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: %s", keys.ErrNotFound, r.ID)
			}
			if err != nil {
				return s.wrap("updating key", err)
			}
			return fmt.Errorf("%w: key %s was changed by someone else meanwhile", keys.ErrConflict, r.ID)
		}
		return s.appendEvents(ctx, tx, w.Events)
	})
}

func (s *Store) appendEvents(ctx context.Context, tx *sql.Tx, evs []keys.AuditEvent) error {
	for _, ev := range evs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO signet_audit (at, actor, action, key_id, detail) VALUES (?, ?, ?, ?, ?)`,
			ev.Time.UnixMicro(), ev.Actor, ev.Action, ev.KeyID, ev.Detail); err != nil {
			return s.wrap("writing the audit log", err)
		}
	}
	return nil
}

// Reseal implements [keys.Store].
func (s *Store) Reseal(ctx context.Context, reseal func(id string, sealed []byte) ([]byte, error), check []byte, ev keys.AuditEvent) error {
	return s.write(ctx, "re-sealing secrets", func(tx *sql.Tx) error {
		type row struct {
			id     string
			sealed []byte
		}
		var all []row
		rows, err := tx.QueryContext(ctx, `SELECT id, secret FROM signet_keys WHERE secret IS NOT NULL ORDER BY id`)
		if err != nil {
			return s.wrap("reading secrets", err)
		}
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.sealed); err != nil {
				rows.Close()
				return s.wrap("reading secrets", err)
			}
			all = append(all, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.wrap("reading secrets", err)
		}
		for _, r := range all {
			sealed, err := reseal(r.id, r.sealed)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE signet_keys SET secret = ? WHERE id = ?`, sealed, r.id); err != nil {
				return s.wrap("writing secrets", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO signet_meta (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, masterCheckName, check); err != nil {
			return s.wrap("writing the master key check value", err)
		}
		return s.appendEvents(ctx, tx, []keys.AuditEvent{ev})
	})
}

// MasterCheck implements [keys.Store].
func (s *Store) MasterCheck(ctx context.Context, init []byte) ([]byte, error) {
	var check []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM signet_meta WHERE name = ?`, masterCheckName).Scan(&check)
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		if err != nil {
			return nil, s.wrap("reading the master key check value", err)
		}
		return check, nil
	}
	if init == nil {
		return nil, nil
	}
	err = s.write(ctx, "storing the master key check value", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO signet_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, masterCheckName, init); err != nil {
			return s.wrap("storing the master key check value", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT value FROM signet_meta WHERE name = ?`, masterCheckName).Scan(&check); err != nil {
			return s.wrap("reading the master key check value", err)
		}
		return nil
	})
	return check, err
}

// Audit implements [keys.Store].
func (s *Store) Audit(ctx context.Context, f keys.AuditFilter) ([]keys.AuditEvent, error) {
	limit := int64(f.Limit)
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, actor, action, key_id, detail FROM signet_audit
		WHERE (? = '' OR key_id = ?) ORDER BY id DESC LIMIT ?`, f.KeyID, f.KeyID, limit)
	if err != nil {
		return nil, s.wrap("reading the audit log", err)
	}
	defer rows.Close()
	out := []keys.AuditEvent{}
	for rows.Next() {
		var ev keys.AuditEvent
		var at int64
		if err := rows.Scan(&ev.ID, &at, &ev.Actor, &ev.Action, &ev.KeyID, &ev.Detail); err != nil {
			return nil, s.wrap("reading the audit log", err)
		}
		ev.Time = fromMicro(at)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("reading the audit log", err)
	}
	slices.Reverse(out)
	return out, nil
}

// TouchLastUsed implements [keys.Store].
func (s *Store) TouchLastUsed(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return s.write(ctx, "writing last-used times", func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE signet_keys SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)`)
		if err != nil {
			return s.wrap("writing last-used times", err)
		}
		defer stmt.Close()
		for id, t := range used {
			us := t.UnixMicro()
			if _, err := stmt.ExecContext(ctx, us, id, us); err != nil {
				return s.wrap("writing last-used times", err)
			}
		}
		return nil
	})
}

// Watch implements [keys.Store]. It polls PRAGMA data_version on a
// connection of its own every PollInterval; when it moves, it reads the
// ids of the keys changed since the last poll.
func (s *Store) Watch(ctx context.Context, fn func(keys.Event)) {
	lost := false
	for ctx.Err() == nil {
		err := s.watch(ctx, fn, &lost)
		if ctx.Err() != nil {
			return
		}
		if !lost {
			lost = true
			fn(keys.Event{Lost: true, Err: s.wrap("watching for changes", err)})
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.poll):
		}
	}
}

// watch polls on one connection until ctx is done or an error occurs.
func (s *Store) watch(ctx context.Context, fn func(keys.Event), lost *bool) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var version, cursor int64
	if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&version); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM signet_key_changes`).Scan(&cursor); err != nil {
		return err
	}
	*lost = false
	fn(keys.Event{Reset: true})
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var v int64
		if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
			return err
		}
		if v == version {
			continue
		}
		ev, next, err := s.changesSince(ctx, conn, cursor)
		if err != nil {
			return err
		}
		version, cursor = v, next
		if ev.Reset || len(ev.Changed) > 0 {
			fn(ev)
		}
	}
}

// changesSince reads the keys changed after the change numbered cursor,
// and the new cursor. If changes it has not seen were dropped from the
// table, it reports a Reset instead.
func (s *Store) changesSince(ctx context.Context, conn *sql.Conn, cursor int64) (keys.Event, int64, error) {
	var ev keys.Event
	var oldest, latest sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT min(seq), max(seq) FROM signet_key_changes`).Scan(&oldest, &latest); err != nil {
		return ev, cursor, err
	}
	if !latest.Valid || latest.Int64 <= cursor {
		return ev, cursor, nil
	}
	if oldest.Int64 > cursor+1 {
		return keys.Event{Reset: true}, latest.Int64, nil
	}
	rows, err := conn.QueryContext(ctx, `SELECT seq, key_id FROM signet_key_changes WHERE seq > ? AND seq <= ? ORDER BY seq`, cursor, latest.Int64)
	if err != nil {
		return ev, cursor, err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var id string
		if err := rows.Scan(&seq, &id); err != nil {
			return ev, cursor, err
		}
		if !slices.Contains(ev.Changed, id) {
			ev.Changed = append(ev.Changed, id)
		}
	}
	return ev, latest.Int64, rows.Err()
}

// Ping implements [keys.Store].
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// Close implements [keys.Store].
func (s *Store) Close() error {
	var errs []error
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	return errors.Join(errs...)
}
