package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/internal/migrate"
)

func latestVersion(t *testing.T) int {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	return migrate.Latest(ms)
}

// TestUpgrade opens a file made by the first schema, with a key in it, as
// an older signet left it: the later migrations apply, and the key reads
// and changes as one made now.
func TestUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	for _, q := range []string{
		`PRAGMA journal_mode=WAL`,
		`CREATE TABLE signet_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`,
		ms[0].SQL,
		`INSERT INTO signet_schema_migrations VALUES (1, '` + ms[0].Name + `', 0)`,
		`INSERT INTO signet_keys (id, owner, alg, scopes, created, secret) VALUES ('sk_upgrade000000000000001', 'alice', 'hmac-sha256', 'a b', 1000000, x'00')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Get(context.Background(), "sk_upgrade000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if r.Owner != "alice" || len(r.Scopes) != 2 || r.Version != 1 || r.Metadata != nil || r.RateLimit != nil || r.Uses != nil || !r.Disabled.IsZero() {
		t.Errorf("key after the upgrade = %+v", r)
	}
	r.Disabled = time.Unix(2, 0).UTC()
	r.Uses = &keys.Uses{Remaining: 3, Set: time.Unix(2, 0).UTC()}
	if err := s.Apply(context.Background(), &keys.Write{Update: []keys.Record{*r}}); err != nil {
		t.Fatal(err)
	}
	if r, err = s.Get(context.Background(), r.ID); err != nil || r.Disabled.IsZero() || r.Uses == nil || r.Uses.Remaining != 3 || r.Version != 2 {
		t.Errorf("key changed after the upgrade = %+v, %v", r, err)
	}
	var n int
	raw := rawDB(t, path)
	defer raw.Close()
	if err := raw.QueryRow(`SELECT count(*) FROM signet_schema_migrations`).Scan(&n); err != nil || n != latestVersion(t) {
		t.Errorf("%d migrations recorded (%v), want %d", n, err, latestVersion(t))
	}
}
