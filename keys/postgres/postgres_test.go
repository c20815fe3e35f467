package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/keystest"
)

// The tests use the PostgreSQL server testenv names; without one they
// skip, unless CI=true, when they fail. Each test makes a database of its
// own and drops it at the end.
var (
	newDatabase = testenv.NewDatabase
	adminExec   = testenv.PostgresExec
)

type testDB struct{ url string }

func newTestDB(t *testing.T) keystest.DB { return &testDB{url: newDatabase(t)} }

func (d *testDB) Open(t *testing.T) keys.Store { return openStore(t, d.url) }

func openStore(tb testing.TB, u string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), u, Options{})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

func (d *testDB) Exec(t *testing.T, q string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, d.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, q)
	return err
}

// Dump returns what pg_dump writes of the database: schema and data.
func (d *testDB) Dump(t *testing.T) []byte {
	out, err := exec.Command("pg_dump", "--dbname", d.url).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("pg_dump: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("pg_dump: %v", err)
	}
	return out
}

func TestConformance(t *testing.T) {
	keystest.Run(t, keystest.Harness{NewDB: newTestDB})
}

// TestConcurrentStart checks that instances starting at once on a new
// database migrate it once.
func TestConcurrentStart(t *testing.T) {
	u := newDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(context.Background(), u, Options{})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	s := openStore(t, u)
	defer s.Close()
	var n, v int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*), max(version) FROM signet_schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if latest := latestVersion(t); n != latest || v != latest {
		t.Errorf("%d migration rows up to version %d; want each of the %d migrations once", n, v, latest)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	u := newDatabase(t)
	s := openStore(t, u)
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO signet_schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), u, Options{}); err == nil || !strings.Contains(err.Error(), "upgrade signet") {
		t.Errorf("Open of a database from a newer signet = %v", err)
	}
}

func TestAuditNoTruncate(t *testing.T) {
	d := newTestDB(t)
	d.Open(t).Close()
	if err := d.Exec(t, `TRUNCATE signet_audit`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("TRUNCATE signet_audit = %v, want refused", err)
	}
}

func newService(t *testing.T, st keys.Store, master []byte) *keys.Service {
	t.Helper()
	svc, err := keys.New(context.Background(), st, keys.Options{MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// waitFor waits up to limit for cond, and returns how long it took.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return testtime.Eventually(t, limit, func() error {
		if !cond() {
			return errors.New(what)
		}
		return nil
	})
}

// listener returns the pid of the LISTEN connection of the store at u.
func listenerPID(t *testing.T, u string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var pid int
	waitFor(t, 5*time.Second, "a listening connection", func() bool {
		err := conn.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'signet (listen)'`).Scan(&pid)
		return err == nil
	})
	return pid
}

// TestListenerLost kills the LISTEN connection of one instance, revokes a
// key it has cached through another, and checks that the first refuses it
// all the same within a second (it stops trusting its cache while it
// cannot hear), and that it reconnects and caches again.
func TestListenerLost(t *testing.T) {
	u := newDatabase(t)
	master := keys.NewMasterKey()
	admin := newService(t, openStore(t, u), master)
	gwStore := &keystest.CountingStore{Store: openStore(t, u)}
	gw := newService(t, gwStore, master)
	c, err := admin.Create(context.Background(), keys.CreateRequest{Owner: "alice", Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	keystest.WaitCached(t, gw, gwStore, c.Key.ID)
	pid := listenerPID(t, u)
	adminExec(t, fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid))
	if err := admin.Revoke(context.Background(), c.Key.ID, "t"); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, keystest.PropagationLimit, "the revoked key refused", func() bool {
		_, err := gw.ResolveKey(context.Background(), c.Key.ID)
		return errors.Is(err, httpsig.ErrKeyRevoked)
	})
	t.Logf("refused %v after the revocation", took)
	d, err := admin.Create(context.Background(), keys.CreateRequest{Owner: "alice", Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	keystest.WaitCached(t, gw, gwStore, d.Key.ID)
	if pid2 := listenerPID(t, u); pid2 == pid {
		t.Errorf("the listener pid %d did not change", pid)
	}
}

// TestStoreDown cuts the connection to the database and checks that a key
// cached before is not trusted: resolution fails closed, with an error that
// is not a refusal, and works again when the database is back.
func TestStoreDown(t *testing.T) {
	dbURL := newDatabase(t)
	u, _ := url.Parse(dbURL)
	p := testenv.StartProxy(t, u.Host)
	u.Host = p.Addr()
	master := keys.NewMasterKey()
	st, err := Open(context.Background(), u.String(), Options{Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cst := &keystest.CountingStore{Store: st}
	svc := newService(t, cst, master)
	c, err := svc.Create(context.Background(), keys.CreateRequest{Owner: "alice", Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	keystest.WaitCached(t, svc, cst, c.Key.ID)
	p.Cut()
	var last error
	waitFor(t, 2*time.Second, "resolution failing closed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, last = svc.ResolveKey(ctx, c.Key.ID)
		return last != nil
	})
	if errors.Is(last, httpsig.ErrUnknownKey) || errors.Is(last, httpsig.ErrKeyRevoked) || errors.Is(last, httpsig.ErrKeyExpired) {
		t.Errorf("with the database down, ResolveKey = %v; want an error that is not a refusal", last)
	}
	if err := svc.Ping(context.Background()); err == nil {
		t.Errorf("Ping succeeded with the database down")
	}
	p.Restore()
	waitFor(t, 10*time.Second, "resolution working again", func() bool {
		_, err := svc.ResolveKey(context.Background(), c.Key.ID)
		return err == nil
	})
	keystest.WaitCached(t, svc, cst, c.Key.ID)
}

// BenchmarkStore measures lookups that miss the cache: every resolution
// queries the database.
func BenchmarkStore(b *testing.B) {
	u := newDatabase(b)
	keystest.Bench(b, func(b *testing.B) keys.Store { return openStore(b, u) })
}

// TestServerHangs stops a private PostgreSQL server with SIGSTOP, as a
// server that hangs would be: a lookup fails within its deadline with an
// error wrapping ErrUnavailable (the gateway answers 503), a cached key is
// refused too once the watch notices, writes fail the same way, and all
// work again when the server goes on.
func TestServerHangs(t *testing.T) {
	pg := testenv.StartPostgres(t)
	u := pg.NewDatabase()
	ctx := context.Background()
	st, err := Open(ctx, u, Options{Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cst := &keystest.CountingStore{Store: st}
	svc, err := keys.New(ctx, cst, keys.Options{MasterKey: keys.NewMasterKey(), LookupTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cached := mustCreate(t, svc)
	uncached := mustCreate(t, svc)
	keystest.WaitCached(t, svc, cst, cached.Key.ID)

	pg.Hang()
	begin := time.Now()
	_, err = svc.ResolveKey(ctx, uncached.Key.ID)
	took := time.Since(begin)
	if !errors.Is(err, keys.ErrUnavailable) {
		t.Errorf("ResolveKey with the server hung = %v, want an error wrapping ErrUnavailable", err)
	}
	t.Logf("a lookup failed after %v: %v", took, err)
	if took > 2*time.Second {
		t.Errorf("a lookup waited %v for a hung server; the deadline is 200ms", took)
	}
	testtime.Eventually(t, 3*time.Second, func() error {
		if _, err := svc.ResolveKey(ctx, cached.Key.ID); !errors.Is(err, keys.ErrUnavailable) {
			return fmt.Errorf("a cached key with the server hung: %v", err)
		}
		return nil
	})
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = svc.Create(wctx, keys.CreateRequest{Owner: "bob", Actor: "t"})
	cancel()
	if !errors.Is(err, keys.ErrUnavailable) {
		t.Errorf("Create with the server hung = %v, want an error wrapping ErrUnavailable", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if err := svc.Ping(pctx); err == nil {
		t.Errorf("Ping succeeded with the server hung")
	}
	cancel()

	pg.Resume()
	testtime.Eventually(t, 10*time.Second, func() error {
		_, err := svc.ResolveKey(ctx, cached.Key.ID)
		return err
	})
	keystest.WaitCached(t, svc, cst, cached.Key.ID)
	if _, err := svc.ResolveKey(ctx, uncached.Key.ID); err != nil {
		t.Errorf("after the server went on: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs after the server went on")
	}
}

func mustCreate(t *testing.T, svc *keys.Service) *keys.Created {
	t.Helper()
	c, err := svc.Create(context.Background(), keys.CreateRequest{Owner: "alice", Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDiskFull fills the disk of a private PostgreSQL server: writes fail
// with an error wrapping ErrUnavailable (disk full, 53100), reads go on,
// and writes work again once there is room.
func TestDiskFull(t *testing.T) {
	disk := testenv.MountTmpfs(t, 128<<20)
	pg := testenv.StartPostgresIn(t, disk)
	ctx := context.Background()
	st, err := Open(ctx, pg.NewDatabase(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(t, st, keys.NewMasterKey())
	first := mustCreate(t, svc)
	filler, err := os.Create(filepath.Join(disk, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	filler.Close()
	defer os.Remove(filler.Name())

	var failure error
	n := 0
	for ; n < 5000 && failure == nil; n++ {
		_, failure = svc.Create(ctx, keys.CreateRequest{Owner: "bob", Label: strings.Repeat("x", 200), Actor: "t"})
	}
	if failure == nil {
		t.Fatal("5000 writes succeeded on a full disk")
	}
	t.Logf("after %d writes: %v", n-1, failure)
	var pe *pgconn.PgError
	if !errors.Is(failure, keys.ErrUnavailable) || !errors.As(failure, &pe) || pe.Code != "53100" {
		t.Errorf("a write on a full disk = %v, want an error wrapping ErrUnavailable and the server's 53100", failure)
	}
	if _, err := svc.ResolveKey(ctx, first.Key.ID); err != nil {
		t.Errorf("ResolveKey on a full disk: %v", err)
	}
	os.Remove(filler.Name())
	if _, err := svc.Create(ctx, keys.CreateRequest{Owner: "carol", Actor: "t"}); err != nil {
		t.Errorf("Create once there is room: %v", err)
	}
}
