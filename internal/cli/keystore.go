package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/postgres"
	"github.com/signet-dev/signet/keys/sqlite"
)

// masterKeyEnv holds a master key in base64 text.
const masterKeyEnv = "SIGNET_MASTER_KEY"

// Advice the command line adds to the errors of the keys package, which
// knows nothing of flags, environment variables or shells.
const (
	makeMasterKeyAdvice  = "make one with: head -c 32 /dev/urandom | base64"
	wrongMasterKeyAdvice = "check " + masterKeyEnv + " or --master-key-file"
)

// withAdvice appends advice to err's message, in parentheses, keeping err
// in the chain.
func withAdvice(err error, advice string) error {
	if strings.Contains(err.Error(), advice) {
		return err
	}
	return fmt.Errorf("%w (%s)", err, advice)
}

// dbHelp documents --db for every command that takes it.
const dbHelp = "key store: an SQLite file (a path, sqlite://PATH or file:PATH) or a postgres:// `URL` (default: $SIGNET_DB, else $XDG_DATA_HOME/signet/signet.db or ~/.local/share/signet/signet.db)"

const masterKeyFileHelp = "`FILE` holding the master key that seals HMAC secrets, base64 (default: $SIGNET_MASTER_KEY; for an SQLite file, the .master.key file beside it, e.g. signet.master.key, made with the database)"

// storeFlags are the flags that say which key store to open.
type storeFlags struct {
	db, masterKeyFile string
	// log receives what the key service and an SQLite store notice by
	// themselves (a file replaced, a background write that failed); nil
	// means warnings as text on stderr.
	log *slog.Logger
	// serving keeps the key service's deadline on a key lookup at its
	// default, for a server, which must fail closed fast; a one-shot
	// command (verify --db) waits longer for a store that is slow to
	// answer its first query (a cold file on a busy disk).
	serving bool
}

// commandLookupTimeout is the deadline on a key lookup of a one-shot
// command.
const commandLookupTimeout = 10 * time.Second

func (f *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.db, "db", "", dbHelp)
	fs.StringVar(&f.masterKeyFile, "master-key-file", "", masterKeyFileHelp)
}

// A createRule says whether opening a key store may make a new SQLite
// file. A missing file at the path given is more often a database moved,
// deleted or replaced under a running server, or a mistyped path, than a
// wish for an empty one: only signet keys create makes one, and not where
// traces of a database remain.
type createRule int

const (
	// mustExist refuses a missing file: every command but keys create.
	mustExist createRule = iota
	// createIfNew makes the file unless its master key file, -wal or
	// -shm file is there: keys create.
	createIfNew
	// createAlways makes the file if it is missing: keys create --init,
	// and the demo's own database.
	createAlways
)

// keyStore is an open key service and where its master key came from.
type keyStore struct {
	*keys.Service
	// autoMasterFile is the master key file beside an SQLite database
	// that was used because no master key was given; empty otherwise.
	autoMasterFile string
}

// open is the one way the commands open the key store: the one f names
// (see dbHelp), with the master key from --master-key-file, or
// $SIGNET_MASTER_KEY, or (for SQLite) the file beside the database; rule
// says whether a new SQLite file may be made, and with it that master key
// file. The caller closes it.
func (f *storeFlags) open(e *Env, rule createRule) (*keyStore, error) {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	kind, target, err := parseDB(e, f.db)
	if err != nil {
		return nil, err
	}
	if kind == "sqlite" {
		if err := checkSQLiteFile(target, f.db == "", rule); err != nil {
			return nil, err
		}
	}
	master, err := givenMasterKey(e, f.masterKeyFile)
	if err != nil {
		return nil, err
	}
	if master == nil && kind == "postgres" {
		return nil, fmt.Errorf("a master key is required: set %s or give --master-key-file (it seals the HMAC secrets, and is never stored in the database)", masterKeyEnv)
	}
	var st keys.Store
	log := f.log
	if log == nil {
		log = slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	switch kind {
	case "postgres":
		st, err = postgres.Open(ctx, target, postgres.Options{})
	default:
		st, err = sqlite.Open(ctx, target, sqlite.Options{Create: rule != mustExist, Logger: log})
	}
	if err != nil {
		return nil, err
	}
	autoFile := ""
	if master == nil {
		if master, autoFile, err = besideMasterKey(ctx, e, target, st); err != nil {
			st.Close()
			return nil, err
		}
	}
	opts := keys.Options{MasterKey: master, Logger: log}
	if !f.serving {
		opts.LookupTimeout = commandLookupTimeout
	}
	svc, err := keys.New(ctx, st, opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &keyStore{Service: svc, autoMasterFile: autoFile}, nil
}

// openKeys opens the key store named by dbURL, which must exist, with the
// master key from masterKeyFile or its defaults, and returns the key
// service over it, logging to log (see storeFlags). The caller closes it.
func openKeys(e *Env, dbURL, masterKeyFile string, log *slog.Logger) (*keys.Service, error) {
	ks, err := (&storeFlags{db: dbURL, masterKeyFile: masterKeyFile, log: log, serving: true}).open(e, mustExist)
	if err != nil {
		return nil, err
	}
	return ks.Service, nil
}

// checkSQLiteFile applies rule to the SQLite file at path, the default
// one if isDefault, whose directory it makes if the file may be made.
func checkSQLiteFile(path string, isDefault bool, rule createRule) error {
	_, err := os.Stat(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return nil // sqlite.Open reports what else is wrong
	}
	if rule == mustExist {
		return fmt.Errorf("no key store at %s: signet keys create makes one (check --db and $SIGNET_DB if it should be there)", path)
	}
	if rule == createIfNew {
		for _, trace := range []string{masterKeyPathFor(path), path + "-wal", path + "-shm"} {
			if _, err := os.Stat(trace); err == nil {
				return fmt.Errorf("no key store at %s, but %s is there: the database was moved or deleted; restore it, or give --init to start a new, empty one", path, trace)
			}
		}
	}
	if isDefault {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("making the database directory: %w", err)
		}
	}
	return nil
}

// parseDB tells a PostgreSQL URL from an SQLite file, and returns the URL
// or the file's path. Without dbURL (--db), $SIGNET_DB is read the same way.
func parseDB(e *Env, dbURL string) (kind, target string, err error) {
	name := "--db"
	if dbURL == "" {
		dbURL, name = e.Getenv("SIGNET_DB"), "$SIGNET_DB"
	}
	switch {
	case isPostgresURL(dbURL):
		return "postgres", dbURL, nil
	case dbURL == "":
		path, err := defaultDBPath(e.Getenv)
		if err != nil {
			return "", "", err
		}
		return "sqlite", path, nil
	}
	path := dbURL
	for _, prefix := range []string{"sqlite://", "sqlite:", "file://", "file:"} {
		if strings.HasPrefix(dbURL, prefix) {
			path = strings.TrimPrefix(dbURL, prefix)
			break
		}
	}
	if path == dbURL {
		if scheme, _, ok := strings.Cut(dbURL, "://"); ok && !strings.ContainsAny(scheme, `/\`) {
			return "", "", usageErrorf("%s: unsupported scheme %q: give a file path, sqlite://PATH or a postgres:// URL", name, scheme)
		}
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return "", "", usageErrorf("%s %q: give the SQLite file's path, without parameters", name, dbURL)
	}
	return "sqlite", path, nil
}

// givenMasterKey returns the master key in the file given, or else in the
// environment, or nil if there is neither.
func givenMasterKey(e *Env, file string) ([]byte, error) {
	if file != "" {
		return readMasterKeyFile(e, file)
	}
	text := e.Getenv(masterKeyEnv)
	if text == "" {
		return nil, nil
	}
	key, err := keys.ParseMasterKey([]byte(text))
	if err != nil {
		return nil, withAdvice(fmt.Errorf("%s: %w", masterKeyEnv, err), makeMasterKeyAdvice)
	}
	return key, nil
}

// besideMasterKey returns the master key in the file beside an SQLite
// database, making the file with a new key if the database has no secrets
// sealed yet, and the file's path.
func besideMasterKey(ctx context.Context, e *Env, dbPath string, st keys.Store) ([]byte, string, error) {
	path := masterKeyPathFor(dbPath)
	// The check value first: a process that made the file made it before
	// storing one, so if there is a check value and no file, the file is
	// gone, not about to appear.
	check, err := st.MasterCheck(ctx, nil)
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(path); err == nil {
		key, err := readMasterKeyFile(e, path)
		return key, path, err
	}
	if check != nil {
		return nil, "", fmt.Errorf("the secrets in %s are sealed with a master key, and none was given: set %s or give --master-key-file (the default, %s, does not exist)", dbPath, masterKeyEnv, path)
	}
	key := keys.NewMasterKey()
	err = writeFile(path, keys.FormatMasterKey(key), 0o600, false)
	if errors.Is(err, fs.ErrExist) {
		// Another process made it first.
		key, err = readMasterKeyFile(e, path)
		return key, path, err
	}
	if err != nil {
		return nil, "", fmt.Errorf("writing the master key file: %w", err)
	}
	fmt.Fprintf(e.Stderr, "signet: made a master key for %s in %s (mode 0600): back it up and keep it apart from the database; without it the HMAC secrets cannot be used\n", dbPath, path)
	return key, path, nil
}

// masterKeyPathFor returns where the master key of an SQLite database
// lives when none is given: signet.db → signet.master.key.
func masterKeyPathFor(dbPath string) string {
	return strings.TrimSuffix(dbPath, filepath.Ext(dbPath)) + ".master.key"
}

// readMasterKeyFile reads the master key in a file, warning if others may
// read it.
func readMasterKeyFile(e *Env, path string) ([]byte, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(e.Stderr, "signet: warning: master key file %s can be read by others (mode %04o): chmod 600 it\n", path, fi.Mode().Perm())
	}
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	key, err := keys.ParseMasterKey(data)
	if err != nil {
		return nil, withAdvice(fmt.Errorf("master key file %s: %w", path, err), makeMasterKeyAdvice)
	}
	return key, nil
}

// onlyKeyID resolves one keyid through another resolver.
type onlyKeyID struct {
	id   string
	next httpsig.KeyResolver
}

func (o onlyKeyID) ResolveKey(ctx context.Context, keyID string) (httpsig.VerifyingKey, error) {
	if keyID != o.id {
		return nil, httpsig.ErrUnknownKey
	}
	return o.next.ResolveKey(ctx, keyID)
}
