package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/postgres"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/redis"
)

// node is one gateway instance of a cluster.
type node struct {
	keys  *keys.Service
	gw    *httptest.Server
	admin *httptest.Server
}

// cluster starts two gateways sharing a PostgreSQL database for keys and
// a Redis key prefix for nonces, each reaching Redis through its own proxy
// so that a test can take Redis away.
func cluster(t *testing.T) (a, b *node, proxies [2]*testenv.Proxy, up *upstream, master []byte) {
	t.Helper()
	dbURL := testenv.NewDatabase(t)
	redisURL := testenv.RequireRedis(t)
	prefix := testenv.RedisPrefix(t)
	if _, err := redis.Init(context.Background(), redisURL, redis.Options{KeyPrefix: prefix}); err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	master = keys.NewMasterKey()
	up = newUpstream(t)
	upURL, _ := url.Parse(up.srv.URL)
	var nodes [2]*node
	for i := range nodes {
		ctx := context.Background()
		store, err := postgres.Open(ctx, dbURL, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ks, err := keys.New(ctx, store, keys.Options{MasterKey: master})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ks.Close() })
		proxies[i] = testenv.StartProxy(t, target.Host)
		ru := *target
		ru.Host = proxies[i].Addr()
		rs, err := redis.New(ru.String(), redis.Options{KeyPrefix: prefix, Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Close() })
		g, err := gateway.New(gateway.Config{
			Upstream: upURL, Admin: ks,
			Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: ks, Nonces: rs}},
			Logger: slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		n := &node{keys: ks, gw: httptest.NewServer(g.Handler()), admin: httptest.NewServer(g.AdminHandler())}
		t.Cleanup(n.gw.Close)
		t.Cleanup(n.admin.Close)
		nodes[i] = n
	}
	return nodes[0], nodes[1], proxies, up, master
}

// signedFor returns a request to n's gateway signed by s.
func signedFor(t *testing.T, n *node, s *httpsig.Signer, path string) *http.Request {
	t.Helper()
	r, _ := http.NewRequest("GET", n.gw.URL+path, nil)
	if err := s.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// do sends r and returns the status and, for a refusal, its reason code.
func do(t *testing.T, r *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p problem
	if resp.StatusCode == http.StatusOK || json.NewDecoder(resp.Body).Decode(&p) != nil || p.Type == "" {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, p.reason()
}

func TestClusterSharesReplaysAndRevocations(t *testing.T) {
	a, b, _, up, _ := cluster(t)
	ctx := context.Background()
	admin, err := a.keys.Create(ctx, keys.CreateRequest{Owner: "ops", Scopes: []string{keys.ScopeAdmin}, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	client, err := b.keys.Create(ctx, keys.CreateRequest{Owner: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	cs := hmacSigner(t, client.Key.ID, client.Secret)

	// Accepted by one gateway, the same request is a replay at the other.
	r := signedFor(t, a, cs, "/orders")
	if code, reason := do(t, r.Clone(ctx)); code != 200 {
		t.Fatalf("first gateway: %d %s", code, reason)
	}
	r.URL.Host = strings.TrimPrefix(b.gw.URL, "http://")
	r.Host = strings.TrimPrefix(a.gw.URL, "http://") // the authority that was signed
	if code, reason := do(t, r); code != 401 || reason != "replayed" {
		t.Fatalf("second gateway: %d %s, want 401 replayed", code, reason)
	}
	if up.count() != 1 {
		t.Fatalf("the upstream saw %d requests, want 1", up.count())
	}

	// Both gateways have the key in their caches now.
	for _, n := range []*node{a, b} {
		if code, reason := do(t, signedFor(t, n, cs, "/warm")); code != 200 {
			t.Fatalf("warming %s: %d %s", n.gw.URL, code, reason)
		}
	}
	// Revoked through the admin API of one, refused by the other within 1 s.
	ae := &adminEnv{admin: a.admin}
	var k keys.Key
	if code := ae.call(t, hmacSigner(t, admin.Key.ID, admin.Secret), "POST", "/v1/keys/"+client.Key.ID+"/revoke", nil, &k); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	revoked := time.Now()
	for {
		code, reason := do(t, signedFor(t, b, cs, "/after"))
		if code == 401 && reason == "key-revoked" {
			t.Logf("the other gateway refused the revoked key after %v", time.Since(revoked).Round(time.Millisecond))
			break
		}
		if code != 200 {
			t.Fatalf("other gateway: %d %s", code, reason)
		}
		if time.Since(revoked) > time.Second {
			t.Fatal("the other gateway still accepted the key 1 s after it was revoked")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClusterRedisOutage(t *testing.T) {
	a, _, proxies, up, _ := cluster(t)
	ctx := context.Background()
	client, err := a.keys.Create(ctx, keys.CreateRequest{Owner: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	cs := hmacSigner(t, client.Key.ID, client.Secret)
	if code, reason := do(t, signedFor(t, a, cs, "/before")); code != 200 {
		t.Fatalf("before the outage: %d %s", code, reason)
	}

	proxies[0].Cut()
	before := up.count()
	for i := range 20 {
		code, reason := do(t, signedFor(t, a, cs, "/during"))
		if code != 503 || reason != "unavailable" {
			t.Fatalf("request %d during the outage: %d %s, want 503 unavailable", i, code, reason)
		}
	}
	// A hung Redis fails closed too, within the store's timeout.
	proxies[0].Restore()
	proxies[0].Hold()
	start := time.Now()
	if code, _ := do(t, signedFor(t, a, cs, "/hung")); code != 503 {
		t.Fatalf("with Redis hung: %d, want 503", code)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a hung Redis held the request %v", d)
	}
	if up.count() != before {
		t.Fatal("a request reached the upstream while Redis was down")
	}

	proxies[0].Release()
	testtime.Eventually(t, 5*time.Second, func() error {
		switch code, reason := do(t, signedFor(t, a, cs, "/after")); code {
		case 200:
			return nil
		case 503:
			return fmt.Errorf("after Redis came back: %d %s", code, reason)
		default:
			t.Fatalf("after Redis came back: %d %s", code, reason)
			return nil
		}
	})
}
