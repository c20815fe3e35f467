// Package testenv gives tests the real services they run against: the
// PostgreSQL and Redis servers on 127.0.0.1, a database or key prefix of
// their own that is removed at the end, and a TCP proxy that can take a
// service away from the code under test without touching the shared
// server.
//
// Without a server, tests skip, unless CI=true, when they fail: CI must
// never pass by skipping. SIGNET_TEST_POSTGRES and SIGNET_REDIS_URL point
// at other servers.
package testenv

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"
)

// PostgresURL is the server the tests use.
func PostgresURL() string {
	if u := os.Getenv("SIGNET_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisURL is the server the tests use.
func RedisURL() string {
	if u := os.Getenv("SIGNET_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379"
}

var (
	pgOnce, redisOnce sync.Once
	pgErr, redisErr   error
)

// missing ends a test that needs a service that is not there.
func missing(tb testing.TB, what, u string, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("no %s at %s: %v (CI=true requires one)", what, u, err)
	}
	tb.Skipf("no %s at %s: %v; start one (with CI=true this test fails instead)", what, u, err)
}

// RequirePostgres returns the server's URL, or ends the test.
func RequirePostgres(tb testing.TB) string {
	tb.Helper()
	u := PostgresURL()
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var conn *pgx.Conn
		if conn, pgErr = pgx.Connect(ctx, u); pgErr == nil {
			pgErr = conn.Ping(ctx)
			conn.Close(ctx)
		}
	})
	if pgErr != nil {
		missing(tb, "PostgreSQL", u, pgErr)
	}
	return u
}

// PostgresExec runs a statement on the server's own database.
func PostgresExec(tb testing.TB, q string) {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, RequirePostgres(tb))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, q); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// NewDatabase makes an empty database, dropped at the end of the test, and
// returns its URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	base := RequirePostgres(tb)
	name := "signet_test_" + strings.ToLower(rand.Text()[:16])
	PostgresExec(tb, "CREATE DATABASE "+name)
	tb.Cleanup(func() { PostgresExec(tb, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("SIGNET_TEST_POSTGRES must be a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// RequireRedis returns the server's URL, or ends the test.
func RequireRedis(tb testing.TB) string {
	tb.Helper()
	u := RedisURL()
	redisOnce.Do(func() {
		var c rueidis.Client
		if c, redisErr = newRedisClient(u); redisErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			redisErr = c.Do(ctx, c.B().Ping().Build()).Error()
			c.Close()
		}
	})
	if redisErr != nil {
		missing(tb, "Redis", u, redisErr)
	}
	return u
}

func newRedisClient(u string) (rueidis.Client, error) {
	opt, err := rueidis.ParseURL(u)
	if err != nil {
		return nil, err
	}
	opt.DisableCache = true
	return rueidis.NewClient(opt)
}

// RedisPrefix returns a key prefix of the test's own; the keys under it
// are deleted at the end of the test.
func RedisPrefix(tb testing.TB) string {
	tb.Helper()
	u := RequireRedis(tb)
	prefix := "signet-test-" + strings.ToLower(rand.Text()[:12]) + ":"
	tb.Cleanup(func() { DeleteRedisKeys(tb, u, prefix) })
	return prefix
}

// DeleteRedisKeys removes every key under prefix.
func DeleteRedisKeys(tb testing.TB, u, prefix string) {
	tb.Helper()
	c, err := newRedisClient(u)
	if err != nil {
		tb.Errorf("redis: %v", err)
		return
	}
	defer c.Close()
	ctx := context.Background()
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			tb.Errorf("redis: scanning %s*: %v", prefix, err)
			return
		}
		if len(e.Elements) > 0 {
			if err := c.Do(ctx, c.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				tb.Errorf("redis: deleting %s*: %v", prefix, err)
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return
		}
	}
}
