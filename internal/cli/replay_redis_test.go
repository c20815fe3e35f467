package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/internal/testenv"
)

// TestReplayInit prepares a Redis of the test's own with signet replay
// init: a gateway on it accepts a request at once, where one on a Redis
// that was not prepared refuses it (it cannot tell a new Redis from one
// that lost its nonces). A second init changes nothing; a Redis that lost
// part of its sentinels is refused.
func TestReplayInit(t *testing.T) {
	db, c := newClientKey(t)
	up, _, _ := heldBackend(t)
	first := func(redisURL string) (int, *serveProc) {
		srv := startServe(t, "--upstream", up, "--db", db, "--redis", redisURL)
		defer srv.stop(t)
		resp, err := c.Get("http://" + srv.addrs.Addr + "/v1/orders/7")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, srv
	}

	unprepared := testenv.StartRedis(t)
	if code, srv := first(unprepared.URL()); code != http.StatusUnauthorized || !strings.Contains(srv.logs.String(), "lost the nonces") {
		t.Fatalf("the first request through a gateway on a Redis not prepared: %d (want 401)\n%s", code, srv.logs)
	}

	r := testenv.StartRedis(t)
	code, out, stderr := run(t, "", "replay", "init", "--redis", r.URL())
	if code != exitOK || !strings.Contains(out, "prepared: 1024 sentinels set") {
		t.Fatalf("replay init: exit %d, %s %s", code, out, stderr)
	}
	code, out, stderr = run(t, "", "replay", "init", "--redis", r.URL())
	if code != exitOK || !strings.Contains(out, "prepared already") {
		t.Fatalf("replay init again: exit %d, %s %s", code, out, stderr)
	}
	if code, srv := first(r.URL()); code != http.StatusOK || strings.Contains(srv.logs.String(), "lost the nonces") {
		t.Fatalf("the first request through a gateway on a prepared Redis: %d (want 200)\n%s", code, srv.logs)
	}

	// One sentinel gone: part of the nonces may be gone with it.
	co, _ := rueidis.ParseURL(r.URL())
	rc, err := rueidis.NewClient(co)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := rc.Do(context.Background(), rc.B().Del().Key("signet:nonce:{123}").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "", "replay", "init", "--redis", r.URL())
	if code != exitRefused || !strings.Contains(stderr, "1023 of 1024 there") || !strings.Contains(stderr, "nothing changed") {
		t.Fatalf("replay init on a Redis missing a sentinel: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(t, "", "replay", "init"); code != exitUsage || !strings.Contains(stderr, "--redis is required") {
		t.Fatalf("replay init without --redis: exit %d, %s", code, stderr)
	}
}

// TestServeRedisMaxSkew: the horizon a gateway sets on a new (or emptied)
// Redis is its --max-skew after the start, not the default 30 s, since
// clients may sign up to --max-skew ahead of its clock.
func TestServeRedisMaxSkew(t *testing.T) {
	r := testenv.StartRedis(t)
	db, _ := newClientKey(t)
	before := time.Now().Truncate(time.Second)
	srv := startServe(t, "--upstream", "http://127.0.0.1:1", "--db", db, "--redis", r.URL(), "--max-skew", "2m")
	srv.stop(t)
	var loss struct {
		Horizon time.Time `json:"horizon"`
	}
	for _, line := range strings.Split(srv.logs.String(), "\n") {
		if strings.Contains(line, "lost the nonces") {
			json.Unmarshal([]byte(line), &loss)
		}
	}
	if loss.Horizon.Before(before.Add(2 * time.Minute)) {
		t.Fatalf("horizon %v, want --max-skew (2m) after the start (%v)\n%s", loss.Horizon, before, srv.logs)
	}
}
