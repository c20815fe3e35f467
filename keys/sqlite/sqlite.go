// Package sqlite implements [keys.Store] in an SQLite database file, the
// embedded default of Signet, with the pure-Go driver modernc.org/sqlite
// (no cgo). [Open] opens a file, creating it only when asked to.
//
// The database runs in WAL mode with synchronous=FULL: a write that
// returned is on disk, and a process killed mid-write leaves the file
// consistent (the transaction is there whole, or not at all). Readers do
// not wait for the writer. Each Store writes through one connection, and
// transactions begin IMMEDIATE, so that a writer in another process makes
// it wait (up to [Options.BusyTimeout]) rather than fail halfway. The file
// and its -wal and -shm companions are made readable by their owner alone:
// they hold sealed secrets, owners and the audit log.
//
// Any number of processes may share the file: [Store.Watch] polls PRAGMA
// data_version, which moves when another connection commits, and then
// reads which keys changed from a table that triggers fill. So a key
// revoked with the signet command is refused by a running server within
// [Options.PollInterval] or so.
//
// A Store holds on to the file it opened, not to its name. At the same pace
// it checks that the path still names that file: if the file was replaced
// (a restore moved over it) or deleted, the Store fails closed (every call
// returns an error wrapping [keys.ErrUnavailable], Ping included, and Watch
// reports the loss), logs it, and reopens the path as soon as it names a
// signet database again, never creating one. Before it lets go of the old
// file it empties the write-ahead log left at the path, so that the old
// file's last transactions cannot be replayed into the new one.
//
// The schema is created and migrated by [Open], in a transaction begun
// IMMEDIATE, so that processes starting at once apply each migration once.
package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// Create makes Open create the file, mode 0600, if it does not exist;
	// its directory must. Without it, Open of a missing file fails with
	// an error wrapping fs.ErrNotExist, so that a mistyped or vanished
	// path is not silently taken for an empty store.
	Create bool

	// BusyTimeout is how long a write waits for another process's write
	// to end before it fails. Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration

	// PollInterval is how often Watch looks for changes made by other
	// connections, and how often the Store checks that its path still
	// names the file it opened. Zero means DefaultPollInterval.
	PollInterval time.Duration

	// Logger receives what the Store notices by itself: its file replaced
	// or deleted, and reopened. If nil, slog.Default() is used.
	Logger *slog.Logger
}

// A Store keeps keys in an SQLite file. It is safe for concurrent use.
type Store struct {
	path string // absolute
	busy time.Duration
	poll time.Duration
	log  *slog.Logger

	// cur is the file in use, or why there is none.
	cur atomic.Pointer[state]

	// Owned by the monitor goroutine.
	old     *handle // let go of but not yet drained
	lastErr string  // the fault last logged

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// state is either a handle on the file, or the reason the Store has none.
type state struct {
	h   *handle
	err error // wraps keys.ErrUnavailable; set when h is nil
}

// A handle is the connections to one file.
type handle struct {
	db   *sql.DB     // readers
	wdb  *sql.DB     // the one writer
	file os.FileInfo // the file they are open on, by identity
	// Steps of letting go of the handle, done by the monitor.
	checkpointed, closed bool
}

var _ keys.Store = (*Store)(nil)

// Open opens the database file at path and brings its schema up to date.
// If the file does not exist, Open creates it when opts.Create is set, and
// otherwise fails with an error wrapping fs.ErrNotExist.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("keys/sqlite: no database path")
	}
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("keys/sqlite: %q: give a plain file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("keys/sqlite: %w", err)
	}
	s := &Store{path: abs, busy: opts.BusyTimeout, poll: opts.PollInterval, log: opts.Logger,
		stop: make(chan struct{}), done: make(chan struct{})}
	if s.busy <= 0 {
		s.busy = DefaultBusyTimeout
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if opts.Create {
		if _, err := os.Stat(filepath.Dir(abs)); err != nil {
			return nil, fmt.Errorf("keys/sqlite: database directory: %w", err)
		}
		if err := createFile(abs); err != nil {
			return nil, fmt.Errorf("keys/sqlite: creating %s: %w", abs, err)
		}
	}
	h, err := s.openHandle(ctx, false)
	if err != nil {
		return nil, err
	}
	s.cur.Store(&state{h: h})
	go s.monitor()
	return s, nil
}

// createFile creates an empty file at path, which is an empty SQLite
// database, unless there is one. The file is
// made aside and linked into place, so that no descriptor of this process
// is ever open on the file at path: closing one would drop the locks that
// SQLite holds on it for another Store in this process.
func createFile(path string) error {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".signet-new-*")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// openHandle opens connections to the file at the path, which must exist,
// and brings its schema up to date. When reopening (the file was replaced),
// a file that holds no signet schema is refused rather than initialised.
func (s *Store) openHandle(ctx context.Context, reopen bool) (*handle, error) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return nil, fmt.Errorf("keys/sqlite: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keys/sqlite: %s is not a regular file", s.path)
	}
	h := &handle{file: fi}
	// mode=rw: a connection never creates the file, should it vanish.
	// Nothing in the DSN reads the database, so that a connection can be
	// checked to be on the right file before it touches the write-ahead
	// log (see connector).
	dsn := (&url.URL{Scheme: "file", Path: s.path}).String() + "?mode=rw" +
		"&_pragma=busy_timeout(" + strconv.FormatInt(s.busy.Milliseconds(), 10) + ")" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	wc, err := sqlite.NewConnector(dsn + "&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("keys/sqlite: %w", err)
	}
	rc, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("keys/sqlite: %w", err)
	}
	h.wdb = sql.OpenDB(&connector{Connector: wc, s: s, file: fi})
	h.wdb.SetMaxOpenConns(1)
	h.db = sql.OpenDB(&connector{Connector: rc, s: s, file: fi})
	h.db.SetMaxOpenConns(16)
	h.db.SetMaxIdleConns(4)
	if err := s.migrate(ctx, h, reopen); err != nil {
		h.db.Close()
		h.wdb.Close()
		return nil, err
	}
	return h, nil
}

// A connector opens connections only while the path names the file of its
// handle: a connection opened by name on a file that replaced it would read
// the write-ahead log of the old one.
type connector struct {
	driver.Connector
	s    *Store
	file os.FileInfo
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := c.s.sameFile(c.file); err != nil {
		return nil, err
	}
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.s.sameFile(c.file); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// sameFile returns nil if the path still names file, and otherwise an error
// wrapping keys.ErrUnavailable that says what became of it.
func (s *Store) sameFile(file os.FileInfo) error {
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: keys/sqlite: %s was deleted", keys.ErrUnavailable, s.path)
	case err != nil:
		return fmt.Errorf("%w: keys/sqlite: %w", keys.ErrUnavailable, err)
	case !os.SameFile(fi, file):
		return fmt.Errorf("%w: keys/sqlite: %s was replaced by another file", keys.ErrUnavailable, s.path)
	}
	return nil
}

// handle returns the handle in use, or an error wrapping keys.ErrUnavailable
// if there is none.
func (s *Store) handle() (*handle, error) {
	st := s.cur.Load()
	if st.h == nil {
		return nil, st.err
	}
	return st.h, nil
}

// monitor checks, every poll interval until Close, that the path still
// names the file in use; if not, it lets go of the file and reopens the
// path.
func (s *Store) monitor() {
	defer close(s.done)
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.check()
	}
}

func (s *Store) check() {
	st := s.cur.Load()
	if st.h != nil {
		err := s.sameFile(st.h.file)
		if err == nil {
			return
		}
		s.cur.Store(&state{err: err})
		s.old = st.h
		s.report(err)
	}
	if s.old != nil {
		if !s.letGo(s.old) {
			return
		}
		s.old = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.busy)
	defer cancel()
	h, err := s.openHandle(ctx, true)
	if errors.Is(err, fs.ErrNotExist) {
		s.report(fmt.Errorf("%w: keys/sqlite: cannot reopen %s: it was deleted", keys.ErrUnavailable, s.path))
		return
	}
	if err != nil {
		s.report(fmt.Errorf("%w: keys/sqlite: cannot reopen %s: %w", keys.ErrUnavailable, s.path, err))
		return
	}
	s.cur.Store(&state{h: h})
	s.lastErr = ""
	s.log.Warn("keys/sqlite: reopened the key store", "path", s.path)
}

// report records why the Store is unavailable, and logs it when the reason
// changes.
func (s *Store) report(err error) {
	if st := s.cur.Load(); st.h == nil {
		s.cur.Store(&state{err: err})
	}
	if msg := err.Error(); msg != s.lastErr {
		s.lastErr = msg
		s.log.Error("keys/sqlite: key store unavailable, failing closed until the file can be reopened", "path", s.path, "error", msg)
	}
}

// letGo empties the write-ahead log of a handle's file, closes it, and
// reports whether all its connections are gone. SQLite leaves the log of a
// file that was moved or deleted at the path, unchecked; a connection that
// opened the new file at the path would replay it into that file. So the
// log is checkpointed into the old file and truncated first: if that
// cannot be done yet (a reader holds it), letGo is tried again at the next
// poll, and meanwhile nothing is opened.
func (s *Store) letGo(h *handle) bool {
	if !h.checkpointed {
		ctx, cancel := context.WithTimeout(context.Background(), s.busy)
		var busy, logFrames, done int
		err := h.wdb.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done)
		cancel()
		if err != nil || busy != 0 {
			if err == nil {
				err = errors.New("a reader holds the write-ahead log")
			}
			s.log.Warn("keys/sqlite: emptying the write-ahead log of the old file", "path", s.path, "error", err.Error())
			return false
		}
		h.checkpointed = true
	}
	if !h.closed {
		h.db.Close()
		h.wdb.Close()
		h.closed = true
	}
	// Connections in use close as they are released: a watcher's within a
	// poll interval.
	return h.db.Stats().OpenConnections == 0 && h.wdb.Stats().OpenConnections == 0
}

//go:embed migrations/*.sql
var migrations embed.FS

// migrate sets WAL mode and applies the migrations the file lacks, in one
// IMMEDIATE transaction: a second process starting at once waits, then
// finds them applied. With existing set, a file without the schema is
// refused.
func (s *Store) migrate(ctx context.Context, h *handle, existing bool) error {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("keys/sqlite: %w", err)
	}
	if existing {
		var n int
		if err := h.wdb.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = 'signet_schema_migrations'`).Scan(&n); err != nil {
			return s.wrap("reading the schema", err)
		}
		if n == 0 {
			return fmt.Errorf("keys/sqlite: %s is not a signet key store", s.path)
		}
	}
	// WAL mode is a property of the file: once set, it stays.
	if _, err := h.wdb.ExecContext(ctx, `PRAGMA journal_mode=WAL`); err != nil {
		return s.wrap("opening", err)
	}
	tx, err := h.wdb.BeginTx(ctx, nil)
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
// person can act on. Errors that mean the store cannot answer or write now
// (locked past the busy timeout, disk full, I/O errors, the file moved)
// wrap keys.ErrUnavailable: the same call may succeed later.
func (s *Store) wrap(op string, err error) error {
	if errors.Is(err, keys.ErrUnavailable) {
		return err
	}
	unavailable := func(what string) error {
		return fmt.Errorf("%w: keys/sqlite: %s: %s: %w", keys.ErrUnavailable, op, what, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return unavailable(fmt.Sprintf("%s is locked by another writer (waited %s)", s.path, s.busy))
		case sqlite3.SQLITE_FULL:
			return unavailable(fmt.Sprintf("the disk holding %s is full", s.path))
		case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
			return unavailable(s.path)
		case sqlite3.SQLITE_READONLY:
			if se.Code() == sqlite3.SQLITE_READONLY_DBMOVED {
				return unavailable(fmt.Sprintf("%s was moved or deleted", s.path))
			}
			return fmt.Errorf("keys/sqlite: %s: %s is read-only (check its permissions, and those of its directory): %w", op, s.path, err)
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
			return fmt.Errorf("keys/sqlite: %s: cannot open %s for writing (check its permissions, and those of its directory): %w", op, s.path, err)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return unavailable("timed out")
	}
	return fmt.Errorf("keys/sqlite: %s: %w", op, err)
}

func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

const keyColumns = `id, owner, alg, scopes, label, created, expires, revoked, last_used, predecessor, successor, public_key, secret, version, ` +
	`disabled, metadata, rate, burst, uses_remaining, uses_refill, uses_refilled, uses_set`

type scanner interface{ Scan(dest ...any) error }

func scanRecord(sc scanner) (*keys.Record, error) {
	var r keys.Record
	var alg, scopes, metadata, rate, refill string
	var created, burst int64
	var expires, revoked, lastUsed, disabled, remaining, refilled, set sql.NullInt64
	if err := sc.Scan(&r.ID, &r.Owner, &alg, &scopes, &r.Label, &created, &expires, &revoked, &lastUsed,
		&r.Predecessor, &r.Successor, &r.PublicKey, &r.Secret, &r.Version,
		&disabled, &metadata, &rate, &burst, &remaining, &refill, &refilled, &set); err != nil {
		return nil, err
	}
	r.Alg = httpsig.Algorithm(alg)
	r.Scopes = strings.Fields(scopes)
	if r.Scopes == nil {
		r.Scopes = []string{}
	}
	r.Created = fromMicro(created)
	r.Expires, r.Revoked, r.LastUsed, r.Disabled = fromNull(expires), fromNull(revoked), fromNull(lastUsed), fromNull(disabled)
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
	if remaining.Valid {
		u := &keys.Uses{Remaining: remaining.Int64, Refilled: fromNull(refilled), Set: fromNull(set)}
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
func limitColumns(r *keys.Record) (rate string, burst int64, remaining sql.NullInt64, refill string, refilled, set sql.NullInt64) {
	if l := r.RateLimit; l != nil {
		rate, burst = l.Rate.String(), l.Burst
	}
	if u := r.Uses; u != nil {
		remaining = sql.NullInt64{Int64: u.Remaining, Valid: true}
		refill, refilled, set = u.Refill.String(), toNull(u.Refilled), toNull(u.Set)
	}
	return
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
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	r, err := scanRecord(h.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM signet_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", keys.ErrNotFound, id)
	}
	if err != nil {
		return nil, s.wrap("reading key", err)
	}
	return r, nil
}

// List implements [keys.Store].
func (s *Store) List(ctx context.Context, q keys.ListQuery) ([]keys.Key, error) {
	var where []string
	var args []any
	cond := func(c string, a ...any) {
		where = append(where, c)
		args = append(args, a...)
	}
	if q.Owner != "" {
		cond(`owner = ?`, q.Owner)
	}
	if q.IDPrefix != "" {
		cond(`substr(id, 1, length(?)) = ?`, q.IDPrefix, q.IDPrefix)
	}
	if q.Scope != "" {
		cond(`instr(' ' || scopes || ' ', ?) > 0`, " "+q.Scope+" ")
	}
	now := q.Now.UnixMicro()
	const live = `revoked IS NULL AND (expires IS NULL OR expires > ?)`
	switch q.Status {
	case "":
		if !q.IncludeRevoked {
			cond(`revoked IS NULL`)
		}
	case keys.StatusRevoked:
		cond(`revoked IS NOT NULL`)
	case keys.StatusExpired:
		cond(`revoked IS NULL AND expires <= ?`, now)
	case keys.StatusDisabled:
		cond(live+` AND disabled IS NOT NULL`, now)
	case keys.StatusExpiring:
		cond(live+` AND disabled IS NULL AND successor != ''`, now)
	case keys.StatusActive:
		cond(live+` AND disabled IS NULL AND successor = ''`, now)
	default:
		return nil, fmt.Errorf("%w: no status %q", keys.ErrInvalid, q.Status)
	}
	if q.After.ID != "" {
		cond(`(created, id) > (?, ?)`, q.After.Created.UnixMicro(), q.After.ID)
	}
	query := `SELECT ` + keyColumns + ` FROM signet_keys`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY created, id`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := h.db.QueryContext(ctx, query, args...)
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
// The path is checked to name the file written both once the write lock
// is held and after the commit, so that a write to a file that was
// replaced or deleted meanwhile is never reported done.
func (s *Store) write(ctx context.Context, op string, f func(tx *sql.Tx) error) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	tx, err := h.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(op, err)
	}
	defer tx.Rollback()
	if err := s.sameFile(h.file); err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return s.wrap(op, err)
	}
	if err := s.sameFile(h.file); err != nil {
		return fmt.Errorf("%w (the write went to the old file and may be lost)", err)
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
		var insert *sql.Stmt
		if len(w.Insert) > 0 {
			var err error
			insert, err = tx.PrepareContext(ctx, `INSERT INTO signet_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)`)
			if err != nil {
				return s.wrap("adding key", err)
			}
			defer insert.Close()
		}
		for i := range w.Insert {
			r := &w.Insert[i]
			rate, burst, remaining, refill, refilled, set := limitColumns(r)
			_, err := insert.ExecContext(ctx,
				r.ID, r.Owner, string(r.Alg), strings.Join(r.Scopes, " "), r.Label, r.Created.UnixMicro(),
				toNull(r.Expires), toNull(r.Revoked), toNull(r.LastUsed), r.Predecessor, r.Successor, r.PublicKey, r.Secret,
				toNull(r.Disabled), string(r.Metadata), rate, burst, remaining, refill, refilled, set)
			if isConstraint(err) {
				return fmt.Errorf("%w: key id %s is taken", keys.ErrConflict, r.ID)
			}
			if err != nil {
				return s.wrap("adding key", err)
			}
		}
		for i := range w.Update {
			r := &w.Update[i]
			rate, burst, remaining, refill, refilled, set := limitColumns(r)
			res, err := tx.ExecContext(ctx, `UPDATE signet_keys SET label = ?, scopes = ?, metadata = ?, expires = ?, disabled = ?, revoked = ?, successor = ?,
					rate = ?, burst = ?,
					uses_remaining = CASE WHEN uses_set IS ? THEN uses_remaining ELSE ? END,
					uses_refilled = CASE WHEN uses_set IS ? THEN uses_refilled ELSE ? END,
					uses_refill = ?, uses_set = ?, version = version + 1
				WHERE id = ? AND version = ?`,
				r.Label, strings.Join(r.Scopes, " "), string(r.Metadata), toNull(r.Expires), toNull(r.Disabled), toNull(r.Revoked), r.Successor,
				rate, burst, set, remaining, set, refilled, refill, set, r.ID, r.Version)
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
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	var check []byte
	err = h.db.QueryRowContext(ctx, `SELECT value FROM signet_meta WHERE name = ?`, masterCheckName).Scan(&check)
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
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := h.db.QueryContext(ctx, `SELECT id, at, actor, action, key_id, detail FROM signet_audit
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

// SpendUses implements [keys.Store].
func (s *Store) SpendUses(ctx context.Context, id string, n int64, now time.Time) (keys.UsesGrant, error) {
	var g keys.UsesGrant
	err := s.write(ctx, "spending uses", func(tx *sql.Tx) error {
		var remaining, refilled, set sql.NullInt64
		var refill string
		err := tx.QueryRowContext(ctx, `SELECT uses_remaining, uses_refill, uses_refilled, uses_set FROM signet_keys WHERE id = ?`, id).
			Scan(&remaining, &refill, &refilled, &set)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", keys.ErrNotFound, id)
		}
		if err != nil {
			return s.wrap("spending uses", err)
		}
		if !remaining.Valid {
			g.Unlimited = true
			return nil
		}
		u := keys.Uses{Remaining: remaining.Int64, Refilled: fromNull(refilled), Set: fromNull(set)}
		if refill != "" {
			if u.Refill, err = keys.ParseRate(refill); err != nil {
				return fmt.Errorf("keys/sqlite: key %s: stored refill %w", id, err)
			}
		}
		before := u
		g = u.Spend(n, now)
		if u == before {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE signet_keys SET uses_remaining = ?, uses_refilled = ? WHERE id = ?`,
			u.Remaining, toNull(u.Refilled), id); err != nil {
			return s.wrap("spending uses", err)
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

// AddUsage implements [keys.Store].
func (s *Store) AddUsage(ctx context.Context, b *keys.UsageBatch) error {
	if b.ID == "" || len(b.ID) > 64 {
		return fmt.Errorf("keys/sqlite: a usage batch needs an id of 1 to 64 bytes")
	}
	return s.write(ctx, "adding usage counts", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO signet_usage_batches (id, at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, b.ID, b.Time.UnixMicro())
		if err != nil {
			return s.wrap("adding usage counts", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return s.wrap("adding usage counts", err)
			}
			return nil // added before
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO signet_usage (key_id, hour, route, outcome, n) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (key_id, hour, route, outcome) DO UPDATE SET n = n + excluded.n`)
		if err != nil {
			return s.wrap("adding usage counts", err)
		}
		defer stmt.Close()
		for _, c := range b.Counts {
			if _, err := stmt.ExecContext(ctx, c.KeyID, c.Hour.Unix(), c.Route, string(c.Outcome), c.N); err != nil {
				return s.wrap("adding usage counts", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM signet_usage_batches WHERE at < ?`, b.Time.Add(-usageBatchTTL).UnixMicro()); err != nil {
			return s.wrap("adding usage counts", err)
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
	query := `SELECT ` + cols + `, sum(u.n) FROM signet_usage AS u`
	var where []string
	var args []any
	if q.Owner != "" {
		query += ` JOIN signet_keys AS k ON k.id = u.key_id`
		where = append(where, `k.owner = ?`)
		args = append(args, q.Owner)
	}
	if q.KeyID != "" {
		where = append(where, `u.key_id = ?`)
		args = append(args, q.KeyID)
	}
	where = append(where, `u.hour >= ?`)
	args = append(args, q.Since.Unix())
	if !q.Until.IsZero() {
		where = append(where, `u.hour < ?`)
		args = append(args, q.Until.Unix())
	}
	query += ` WHERE ` + strings.Join(where, ` AND `) + ` GROUP BY ` + cols + ` ORDER BY ` + cols
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	rows, err := h.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap("reading usage counts", err)
	}
	defer rows.Close()
	var out []keys.UsageCount
	for rows.Next() {
		var c keys.UsageCount
		var hour int64
		var outcome string
		dest := []any{&hour, &c.Route, &outcome, &c.N}
		if q.ByKey {
			dest = []any{&hour, &c.Route, &c.KeyID, &outcome, &c.N}
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, s.wrap("reading usage counts", err)
		}
		c.Hour, c.Outcome = time.Unix(hour, 0).UTC(), httpsig.Reason(outcome)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("reading usage counts", err)
	}
	return out, nil
}

// Watch implements [keys.Store]. It polls PRAGMA data_version on a
// connection of its own every PollInterval; when it moves, it reads the
// ids of the keys changed since the last poll. While the file is replaced
// or deleted and not yet reopened, it reports the loss.
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

// errLetGo stops a watch on a file the Store has let go of.
var errLetGo = errors.New("the file is no longer in use")

// watch polls on one connection until ctx is done, an error occurs, or the
// Store lets go of the file.
func (s *Store) watch(ctx context.Context, fn func(keys.Event), lost *bool) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	conn, err := h.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var version int64
	if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&version); err != nil {
		return err
	}
	var c cursor
	if err := conn.QueryRowContext(ctx, `SELECT seq, key_id FROM signet_key_changes ORDER BY seq DESC LIMIT 1`).Scan(&c.seq, &c.key); err != nil && !errors.Is(err, sql.ErrNoRows) {
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
		if st := s.cur.Load(); st.h != h {
			if st.err != nil {
				return st.err
			}
			return errLetGo
		}
		var v int64
		if err := conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
			return err
		}
		if v == version {
			continue
		}
		ev, next, err := changesSince(ctx, conn, c)
		if err != nil {
			return err
		}
		version, c = v, next
		if ev.Reset || len(ev.Changed) > 0 {
			fn(ev)
		}
	}
}

// A cursor is the last change a watcher has read: its number, and the key
// it names, by which the watcher tells that the table was rewritten under
// it (the file restored from a backup through SQLite).
type cursor struct {
	seq int64
	key string
}

// changesSince reads the keys changed after the change at c, and the new
// cursor. If changes it has not seen were dropped from the table, or the
// table no longer holds the change at c as it was read, it reports a Reset
// instead.
func changesSince(ctx context.Context, conn *sql.Conn, c cursor) (keys.Event, cursor, error) {
	var ev keys.Event
	var oldest, latest sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT min(seq), max(seq) FROM signet_key_changes`).Scan(&oldest, &latest); err != nil {
		return ev, c, err
	}
	last := func() (cursor, error) {
		var n cursor
		err := conn.QueryRowContext(ctx, `SELECT seq, key_id FROM signet_key_changes ORDER BY seq DESC LIMIT 1`).Scan(&n.seq, &n.key)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
		return n, err
	}
	if c.seq > 0 && oldest.Valid && oldest.Int64 <= c.seq {
		var key string
		err := conn.QueryRowContext(ctx, `SELECT key_id FROM signet_key_changes WHERE seq = ?`, c.seq).Scan(&key)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return ev, c, err
		}
		if key != c.key {
			n, err := last()
			return keys.Event{Reset: true}, n, err
		}
	}
	switch {
	case !latest.Valid && c.seq == 0, latest.Valid && latest.Int64 == c.seq:
		return ev, c, nil
	case !latest.Valid || latest.Int64 < c.seq || oldest.Int64 > c.seq+1:
		n, err := last()
		return keys.Event{Reset: true}, n, err
	}
	rows, err := conn.QueryContext(ctx, `SELECT seq, key_id FROM signet_key_changes WHERE seq > ? AND seq <= ? ORDER BY seq`, c.seq, latest.Int64)
	if err != nil {
		return ev, c, err
	}
	defer rows.Close()
	next := c
	for rows.Next() {
		if err := rows.Scan(&next.seq, &next.key); err != nil {
			return ev, c, err
		}
		if !slices.Contains(ev.Changed, next.key) {
			ev.Changed = append(ev.Changed, next.key)
		}
	}
	if err := rows.Err(); err != nil {
		return ev, c, err
	}
	return ev, next, nil
}

// Ping implements [keys.Store]. It fails, with an error wrapping
// keys.ErrUnavailable, from the moment the path no longer names the file
// in use until the Store has reopened it.
func (s *Store) Ping(ctx context.Context) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	if err := s.sameFile(h.file); err != nil {
		return err
	}
	var one int
	if err := h.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// Close implements [keys.Store].
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		var errs []error
		for _, h := range []*handle{s.cur.Load().h, s.old} {
			if h == nil {
				continue
			}
			if s.sameFile(h.file) != nil {
				s.letGo(h)
			}
			if !h.closed {
				errs = append(errs, h.db.Close(), h.wdb.Close())
				h.closed = true
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
