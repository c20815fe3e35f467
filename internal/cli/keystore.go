package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/postgres"
	"github.com/signet-dev/signet/keys/sqlite"
)

// masterKeyEnv holds a master key in base64 text.
const masterKeyEnv = "SIGNET_MASTER_KEY"

// dbHelp documents --db for every command that takes it.
const dbHelp = "key store: an SQLite file (a path, sqlite://PATH or file:PATH) or a postgres:// URL (default: $SIGNET_DB, else $XDG_DATA_HOME/signet/signet.db or ~/.local/share/signet/signet.db)"

const masterKeyFileHelp = "file holding the master key that seals HMAC secrets, base64 (default: $SIGNET_MASTER_KEY; for an SQLite file, DB.master.key beside it, made on first use)"

// keyStore is an open key service and where its master key came from.
type keyStore struct {
	*keys.Service
	// autoMasterFile is the master key file beside an SQLite database
	// that was used because no master key was given; empty otherwise.
	autoMasterFile string
}

// openKeys opens the key store named by dbURL (see dbHelp) with the master
// key from masterKeyFile, or $SIGNET_MASTER_KEY, or (for SQLite) the file
// beside the database, made on first use; and returns the key service over
// it. The caller closes it.
func openKeys(e *Env, dbURL, masterKeyFile string) (*keys.Service, error) {
	ks, err := openKeyStore(e, dbURL, masterKeyFile)
	if err != nil {
		return nil, err
	}
	return ks.Service, nil
}

func openKeyStore(e *Env, dbURL, masterKeyFile string) (*keyStore, error) {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	kind, target, err := parseDB(e, dbURL)
	if err != nil {
		return nil, err
	}
	var st keys.Store
	switch kind {
	case "postgres":
		st, err = postgres.Open(ctx, target, postgres.Options{})
	default:
		st, err = sqlite.Open(ctx, target, sqlite.Options{})
	}
	if err != nil {
		return nil, err
	}
	master, autoFile, err := masterKey(ctx, e, masterKeyFile, kind, target, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	svc, err := keys.New(ctx, st, keys.Options{
		MasterKey: master,
		Logger:    slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &keyStore{Service: svc, autoMasterFile: autoFile}, nil
}

// parseDB tells a PostgreSQL URL from an SQLite file, and returns the URL
// or the file's path. The default file's directory is made if need be.
func parseDB(e *Env, dbURL string) (kind, target string, err error) {
	switch {
	case postgres.IsURL(dbURL):
		return "postgres", dbURL, nil
	case dbURL == "":
		path, err := sqlite.DefaultPath(e.Getenv)
		if err != nil {
			return "", "", err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", "", fmt.Errorf("making the database directory: %w", err)
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
			return "", "", fmt.Errorf("--db: unsupported scheme %q: give a file path, sqlite://PATH or a postgres:// URL", scheme)
		}
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return "", "", fmt.Errorf("--db %q: give the SQLite file's path, without parameters", dbURL)
	}
	return "sqlite", path, nil
}

// masterKey finds the master key: from the file given, from the
// environment, or for SQLite from the file beside the database, which is
// made, with a new key, if the database has no secrets sealed yet.
func masterKey(ctx context.Context, e *Env, file, kind, dbPath string, st keys.Store) (key []byte, autoFile string, err error) {
	switch {
	case file != "":
		key, err := readMasterKeyFile(e, file)
		return key, "", err
	case e.Getenv(masterKeyEnv) != "":
		key, err := keys.ParseMasterKey([]byte(e.Getenv(masterKeyEnv)))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %s", masterKeyEnv, strings.TrimPrefix(err.Error(), "keys: "))
		}
		return key, "", nil
	case kind == "postgres":
		return nil, "", fmt.Errorf("a master key is required: set %s or give --master-key-file (it seals the HMAC secrets, and is never stored in the database)", masterKeyEnv)
	}
	path := masterKeyPathFor(dbPath)
	if _, err := os.Stat(path); err == nil {
		key, err := readMasterKeyFile(e, path)
		return key, path, err
	}
	check, err := st.MasterCheck(ctx, nil)
	if err != nil {
		return nil, "", err
	}
	if check != nil {
		return nil, "", fmt.Errorf("the secrets in %s are sealed with a master key, and none was given: set %s or give --master-key-file (the default, %s, does not exist)", dbPath, masterKeyEnv, path)
	}
	key = keys.NewMasterKey()
	err = writeNew(path, keys.FormatMasterKey(key), 0o600, false)
	if errors.Is(err, fs.ErrExist) || err != nil && strings.Contains(err.Error(), "exists") {
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

func readMasterKeyFile(e *Env, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(e.Stderr, "signet: warning: master key file %s can be read by others (mode %04o): chmod 600 it\n", path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	key, err := keys.ParseMasterKey(data)
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %s", path, strings.TrimPrefix(err.Error(), "keys: "))
	}
	return key, nil
}

// storeResolver returns a key resolver over the key store, which accepts
// only keyID if it is not empty, and a function that closes it.
func storeResolver(e *Env, dbURL, masterKeyFile, keyID string) (httpsig.KeyResolver, func(), error) {
	svc, err := openKeys(e, dbURL, masterKeyFile)
	if err != nil {
		return nil, nil, err
	}
	closeFn := func() { svc.Close() }
	if keyID == "" {
		return svc, closeFn, nil
	}
	return onlyKeyID{keyID, svc}, closeFn, nil
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
