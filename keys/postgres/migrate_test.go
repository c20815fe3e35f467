package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// TestUpgrade opens a database made by the first schema, with a key in it,
// as an older signet left it: the later migrations apply, and the key
// reads and changes as one made now.
func TestUpgrade(t *testing.T) {
	u := newDatabase(t)
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE signet_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
		ms[0].SQL,
		`INSERT INTO signet_schema_migrations (version, name) VALUES (1, '` + ms[0].Name + `')`,
		`INSERT INTO signet_keys (id, owner, alg, scopes, created, secret) VALUES ('sk_upgrade000000000000001', 'alice', 'hmac-sha256', '{a,b}', now(), '\x00')`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close(ctx)

	s := openStore(t, u)
	defer s.Close()
	r, err := s.Get(ctx, "sk_upgrade000000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if r.Owner != "alice" || len(r.Scopes) != 2 || r.Version != 1 || r.Metadata != nil || r.RateLimit != nil || r.Uses != nil || !r.Disabled.IsZero() {
		t.Errorf("key after the upgrade = %+v", r)
	}
	r.Disabled = time.Unix(2, 0).UTC()
	r.Uses = &keys.Uses{Remaining: 3, Set: time.Unix(2, 0).UTC()}
	if err := s.Apply(ctx, &keys.Write{Update: []keys.Record{*r}}); err != nil {
		t.Fatal(err)
	}
	if r, err = s.Get(ctx, r.ID); err != nil || r.Disabled.IsZero() || r.Uses == nil || r.Uses.Remaining != 3 || r.Version != 2 {
		t.Errorf("key changed after the upgrade = %+v, %v", r, err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM signet_schema_migrations`).Scan(&n); err != nil || n != latestVersion(t) {
		t.Errorf("%d migrations recorded (%v), want %d", n, err, latestVersion(t))
	}
}
