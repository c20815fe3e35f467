package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/postgres"
	"github.com/signet-dev/signet/keys/sqlite"
	"github.com/signet-dev/signet/limit"
	limitmemory "github.com/signet-dev/signet/limit/memory"
	limitredis "github.com/signet-dev/signet/limit/redis"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
	replaymemory "github.com/signet-dev/signet/replay/memory"
	replayredis "github.com/signet-dev/signet/replay/redis"
)

// usageSetup says how to build the gateways of a usage test.
type usageSetup struct {
	db       string // postgres:// URL; "" for an SQLite file of the test's own
	redis    string // URL of the limits' Redis (and nonces'); "" for memory
	prefix   string
	policy   string // YAML, with %s for the upstream's URL; "" for none
	interval time.Duration
	now      func() time.Time // the clock of the key store and the limiter; nil: time.Now
	mutate   func(*gateway.Config)
}

// storeTimeout bounds the Redis calls of the tests' gateways: long, so that
// a busy machine does not fail tests that are not about timeouts.
const storeTimeout = 2 * time.Second

// usageNode is one gateway with usage controls.
type usageNode struct {
	keys  *keys.Service
	meter *keys.Meter
	gw    *httptest.Server
}

// startUsage starts n gateways on one key store and, with setup.redis,
// one Redis, each with its limiter and meter, in front of up.
func startUsage(t *testing.T, n int, setup usageSetup, up *upstream) []*usageNode {
	t.Helper()
	ctx := context.Background()
	master := keys.NewMasterKey()
	sqlitePath := filepath.Join(t.TempDir(), "keys.db")
	var p *policy.Policy
	upURL, _ := url.Parse(up.srv.URL)
	if setup.policy != "" {
		var err error
		p, err = policy.Parse("test.yaml", []byte(strings.ReplaceAll(setup.policy, "%s", up.srv.URL)), policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
	}
	var nodes []*usageNode
	for range n {
		var store keys.Store
		var err error
		if setup.db != "" {
			store, err = postgres.Open(ctx, setup.db, postgres.Options{})
		} else {
			store, err = sqlite.Open(ctx, sqlitePath, sqlite.Options{Create: true})
		}
		if err != nil {
			t.Fatal(err)
		}
		ks, err := keys.New(ctx, store, keys.Options{MasterKey: master, LookupTimeout: storeTimeout, Now: setup.now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ks.Close() })
		var lim interface {
			limit.Limiter
			limit.Counter
		}
		var nonces httpsig.NonceStore
		if setup.redis != "" {
			rs, err := limitredis.New(setup.redis, limitredis.Options{KeyPrefix: setup.prefix + "limit:", Ledger: gateway.Ledger(ks), Timeout: storeTimeout})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rs.Close() })
			lim = rs
			ns, err := replayredis.New(setup.redis, replayredis.Options{KeyPrefix: setup.prefix + "nonce:", Timeout: storeTimeout})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ns.Close() })
			nonces = ns
		} else {
			lim = limitmemory.New(limitmemory.Options{Ledger: gateway.Ledger(ks), Now: setup.now})
			nonces = replaymemory.New(replaymemory.Options{})
		}
		meter := keys.NewMeter(ks, keys.MeterOptions{Interval: setup.interval})
		t.Cleanup(func() { meter.Close() })
		cfg := gateway.Config{
			Upstream: upURL, Policy: p, Admin: ks,
			Verify:  middleware.Options{Verifier: httpsig.Verifier{Keys: ks, Nonces: nonces}},
			Limiter: lim, Uses: lim, Meter: meter,
			Logger: slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
		}
		if setup.mutate != nil {
			setup.mutate(&cfg)
		}
		g, err := gateway.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		node := &usageNode{keys: ks, meter: meter, gw: httptest.NewServer(g.Handler())}
		t.Cleanup(node.gw.Close)
		nodes = append(nodes, node)
	}
	return nodes
}

// redisSetup returns the shared Redis and a prefix of the test's own,
// with its nonce keys initialised.
func redisSetup(t *testing.T) (string, string) {
	t.Helper()
	u := testenv.RequireRedis(t)
	prefix := testenv.RedisPrefix(t)
	if _, err := replayredis.Init(context.Background(), u, replayredis.Options{KeyPrefix: prefix + "nonce:"}); err != nil {
		t.Fatal(err)
	}
	return u, prefix
}

func createKey(t *testing.T, ks *keys.Service, req keys.CreateRequest) *httpsig.Signer {
	t.Helper()
	if req.Owner == "" {
		req.Owner = "acme"
	}
	req.Actor = "test"
	c, err := ks.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return hmacSigner(t, c.Key.ID, c.Secret)
}

func rate(n int64, per time.Duration, burst int64) keys.RateLimit {
	return keys.RateLimit{Rate: keys.Rate{N: n, Per: per}, Burst: burst}
}

// result is what a client got.
type result struct {
	code   int
	reason string
	h      http.Header
}

// call signs (if s is set) and sends a GET of path to base.
func call(t testing.TB, base string, s *httpsig.Signer, path string) result {
	r, _ := http.NewRequest("GET", base+path, nil)
	if s != nil {
		if err := s.SignRequest(r, nil); err != nil {
			t.Error(err)
			return result{}
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Error(err)
		return result{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	res := result{code: resp.StatusCode, h: resp.Header}
	var p problem
	if resp.Header.Get("Content-Type") == "application/problem+json" && json.Unmarshal(b, &p) == nil {
		res.reason = p.reason()
	}
	return res
}

func TestUsageKeyRate(t *testing.T) {
	up := newUpstream(t)
	n := startUsage(t, 1, usageSetup{}, up)[0]
	s := createKey(t, n.keys, keys.CreateRequest{RateLimit: rate(2, time.Minute, 3)})
	for i := range 3 {
		res := call(t, n.gw.URL, s, "/orders")
		if res.code != 200 {
			t.Fatalf("request %d: %d %s", i, res.code, res.reason)
		}
		if got := res.h.Get("RateLimit-Policy"); got != `"key";q=2;w=60;signet-burst=3` {
			t.Errorf("request %d: RateLimit-Policy %q", i, got)
		}
		if got, want := res.h.Get("RateLimit"), `"key";r=`+string(rune('2'-i)); !strings.HasPrefix(got, want) {
			t.Errorf("request %d: RateLimit %q, want %s…", i, got, want)
		}
	}
	res := call(t, n.gw.URL, s, "/orders")
	if res.code != 429 || res.reason != "rate-limited" {
		t.Fatalf("over the limit: %d %s, want 429 rate-limited", res.code, res.reason)
	}
	if ra := res.h.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	if got := res.h.Get("RateLimit"); !strings.HasPrefix(got, `"key";r=0;t=`) {
		t.Errorf("RateLimit of the refusal %q", got)
	}
	if res.h.Get("RateLimit-Policy") == "" {
		t.Error("no RateLimit-Policy on the refusal")
	}
	if up.count() != 3 {
		t.Fatalf("the upstream saw %d requests, want 3", up.count())
	}
	// A key without limits gets no fields.
	free := createKey(t, n.keys, keys.CreateRequest{})
	if res := call(t, n.gw.URL, free, "/x"); res.code != 200 || res.h.Get("RateLimit") != "" || res.h.Get("RateLimit-Policy") != "" {
		t.Fatalf("key without limits: %d %v", res.code, res.h)
	}
}

func TestUsageDefaultAndOwnerRates(t *testing.T) {
	up := newUpstream(t)
	n := startUsage(t, 1, usageSetup{mutate: func(c *gateway.Config) {
		c.DefaultRate = limit.Rate{N: 1, Per: time.Minute, Burst: 2}
		c.OwnerRate = limit.Rate{N: 1, Per: time.Minute, Burst: 5}
	}}, up)[0]
	// The default applies to a key that sets no rate of its own…
	plain := createKey(t, n.keys, keys.CreateRequest{Owner: "initech"})
	for i := range 2 {
		if res := call(t, n.gw.URL, plain, "/a"); res.code != 200 {
			t.Fatalf("default rate, request %d: %d %s", i, res.code, res.reason)
		}
	}
	if res := call(t, n.gw.URL, plain, "/a"); res.code != 429 || res.reason != "rate-limited" {
		t.Fatalf("over the default rate: %d %s", res.code, res.reason)
	}
	// …not to one that sets its own; the owner's rate covers all its keys.
	k1 := createKey(t, n.keys, keys.CreateRequest{Owner: "acme", RateLimit: rate(100, time.Second, 100)})
	k2 := createKey(t, n.keys, keys.CreateRequest{Owner: "acme", RateLimit: rate(100, time.Second, 100)})
	passed := 0
	for i := range 8 {
		res := call(t, n.gw.URL, []*httpsig.Signer{k1, k2}[i%2], "/b")
		switch {
		case res.code == 200:
			passed++
			if !strings.Contains(res.h.Get("RateLimit-Policy"), `"owner";q=1;w=60;signet-burst=5`) {
				t.Errorf("RateLimit-Policy %q", res.h.Get("RateLimit-Policy"))
			}
		case res.code == 429 && res.reason == "rate-limited":
		default:
			t.Fatalf("request %d: %d %s", i, res.code, res.reason)
		}
	}
	if passed != 5 {
		t.Fatalf("%d requests of the owner's keys passed, want its burst of 5", passed)
	}
}

const routePolicy = `
upstream: %s
routes:
  - {name: by-route, match: "GET /shared/", rate: {limit: 1/m, burst: 2, by: route}}
  - {name: by-owner, match: "GET /owner/", rate: {limit: 1/m, burst: 2, by: owner}}
  - {name: by-key, match: "GET /key/", rate: {limit: 1/m, burst: 2}}
  - {name: free, match: "/"}
`

func TestUsageRouteRates(t *testing.T) {
	up := newUpstream(t)
	n := startUsage(t, 1, usageSetup{policy: routePolicy}, up)[0]
	a1 := createKey(t, n.keys, keys.CreateRequest{Owner: "acme"})
	a2 := createKey(t, n.keys, keys.CreateRequest{Owner: "acme"})
	g := createKey(t, n.keys, keys.CreateRequest{Owner: "globex"})
	seq := func(path string, signers ...*httpsig.Signer) []int {
		var codes []int
		for _, s := range signers {
			res := call(t, n.gw.URL, s, path)
			if res.code == 429 && res.reason != "rate-limited" {
				t.Fatalf("%s: 429 %s", path, res.reason)
			}
			codes = append(codes, res.code)
		}
		return codes
	}
	check := func(what string, got []int, want ...int) {
		t.Helper()
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: %v, want %v", what, got, want)
			}
		}
	}
	// by route: every client together.
	check("by route", seq("/shared/x", a1, g, a2), 200, 200, 429)
	// by owner: acme's two keys share, globex has its own.
	check("by owner", seq("/owner/x", a1, a2, a1, g, g), 200, 200, 429, 200, 200)
	// by key.
	check("by key", seq("/key/x", a1, a1, a1, a2, g), 200, 200, 429, 200, 200)
	// A route without a rate is not limited.
	check("free", seq("/free", a1, a1, a1, a1), 200, 200, 200, 200)
	if res := call(t, n.gw.URL, a2, "/shared/y"); res.code != 429 || !strings.Contains(res.h.Get("RateLimit-Policy"), `"route";q=1;w=60;signet-burst=2`) {
		t.Fatalf("route limit fields: %d %v", res.code, res.h)
	}
}

// TestUsageRefusedRequestsSpendNothing: requests that do not verify never
// spend a key's rate or uses.
func TestUsageRefusedRequestsSpendNothing(t *testing.T) {
	up := newUpstream(t)
	n := startUsage(t, 1, usageSetup{policy: routePolicy}, up)[0]
	s := createKey(t, n.keys, keys.CreateRequest{RateLimit: rate(1, time.Hour, 2), Uses: keys.Uses{Remaining: 2}})
	ctx := context.Background()
	for i := range 30 {
		r, _ := http.NewRequest("GET", n.gw.URL+"/key/x", nil)
		switch i % 3 {
		case 0: // unsigned
		case 1: // signed, then tampered with
			s.SignRequest(r, nil)
			r.URL.Path = "/key/y"
		case 2: // signed for another host
			s.SignRequest(r, nil)
			r.Host = "elsewhere.example"
		}
		resp, err := http.DefaultClient.Do(r.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("RateLimit") != "" {
			t.Fatalf("bad request %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
	for i := range 2 {
		if res := call(t, n.gw.URL, s, "/key/x"); res.code != 200 {
			t.Fatalf("request %d after the bad ones: %d %s", i, res.code, res.reason)
		}
	}
	k, err := n.keys.Get(ctx, s.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	if k.Uses == nil || k.Uses.Remaining != 0 {
		t.Fatalf("uses left %+v, want 0: the two good requests took the budget", k.Uses)
	}
}

func TestUsageUsesExhausted(t *testing.T) {
	up := newUpstream(t)
	n := startUsage(t, 1, usageSetup{}, up)[0]
	s := createKey(t, n.keys, keys.CreateRequest{Uses: keys.Uses{Remaining: 3}})
	for i := range 3 {
		res := call(t, n.gw.URL, s, "/x")
		if res.code != 200 {
			t.Fatalf("use %d: %d %s", i, res.code, res.reason)
		}
		if got, want := res.h.Get("RateLimit"), `"uses";r=`+string(rune('2'-i)); got != want {
			t.Errorf("use %d: RateLimit %q, want %q", i, got, want)
		}
	}
	res := call(t, n.gw.URL, s, "/x")
	if res.code != 429 || res.reason != "uses-exhausted" || res.h.Get("RateLimit") != `"uses";r=0` || res.h.Get("Retry-After") != "" {
		t.Fatalf("exhausted: %d %s %v", res.code, res.reason, res.h)
	}
	// A refilled budget says when the refill comes.
	r := createKey(t, n.keys, keys.CreateRequest{Uses: keys.Uses{Remaining: 1, Refill: keys.Rate{N: 1, Per: 24 * time.Hour}}})
	call(t, n.gw.URL, r, "/x")
	res = call(t, n.gw.URL, r, "/x")
	if res.code != 429 || res.h.Get("Retry-After") == "" || res.h.Get("RateLimit-Policy") != `"uses";q=1;w=86400` {
		t.Fatalf("refilled budget exhausted: %d %s %v", res.code, res.reason, res.h)
	}
	// keys update sets a new budget, which the gateway follows.
	id := s.KeyID
	if _, err := n.keys.Update(context.Background(), keys.UpdateRequest{ID: id, Uses: &keys.Uses{Remaining: 1}, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	testtime.Eventually(t, 5*time.Second, func() error {
		if res := call(t, n.gw.URL, s, "/x"); res.code != 200 {
			return errorf("after a new budget: %d %s", res.code, res.reason)
		}
		return nil
	})
	if up.count() != 3+1+1 {
		t.Fatalf("the upstream saw %d requests, want 5", up.count())
	}
}

// TestUsageLimiterDown: with the limits' Redis unreachable, a limited key
// fails closed with 503, and an unsigned request is still 401.
func TestUsageLimiterDown(t *testing.T) {
	u, prefix := redisSetup(t)
	target, _ := url.Parse(u)
	proxy := testenv.StartProxy(t, target.Host)
	up := newUpstream(t)
	var lim *limitredis.Store
	n := startUsage(t, 1, usageSetup{mutate: func(c *gateway.Config) {
		ru := *target
		ru.Host = proxy.Addr()
		var err error
		lim, err = limitredis.New(ru.String(), limitredis.Options{KeyPrefix: prefix + "limit:", Ledger: gateway.Ledger(c.Admin.(*keys.Service)), Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Limiter, c.Uses = lim, lim
	}}, up)[0]
	t.Cleanup(func() { lim.Close() })
	limited := createKey(t, n.keys, keys.CreateRequest{RateLimit: rate(100, time.Second, 100)})
	budget := createKey(t, n.keys, keys.CreateRequest{Uses: keys.Uses{Remaining: 100}})
	free := createKey(t, n.keys, keys.CreateRequest{})
	for _, s := range []*httpsig.Signer{limited, budget, free} {
		if res := call(t, n.gw.URL, s, "/before"); res.code != 200 {
			t.Fatalf("before the outage: %d %s", res.code, res.reason)
		}
	}
	proxy.Cut()
	before := up.count()
	for _, s := range []*httpsig.Signer{limited, budget} {
		if res := call(t, n.gw.URL, s, "/during"); res.code != 503 || res.reason != "unavailable" {
			t.Fatalf("during the outage: %d %s, want 503 unavailable", res.code, res.reason)
		}
	}
	if res := call(t, n.gw.URL, nil, "/during"); res.code != 401 {
		t.Fatalf("unsigned during the outage: %d", res.code)
	}
	// A key with no limits does not need the limiter.
	if res := call(t, n.gw.URL, free, "/during"); res.code != 200 {
		t.Fatalf("key without limits during the outage: %d %s", res.code, res.reason)
	}
	if up.count() != before+1 {
		t.Fatalf("the upstream saw %d requests during the outage, want 1", up.count()-before)
	}
	proxy.Restore()
	testtime.Eventually(t, 5*time.Second, func() error {
		if res := call(t, n.gw.URL, limited, "/after"); res.code != 200 {
			return errorf("after the outage: %d %s", res.code, res.reason)
		}
		return nil
	})
}

// TestUsageClusterRate: two gateways on one PostgreSQL and one Redis, a
// key limited to 60 an hour with a burst of 40, many clients at once on
// both: no more pass than the rate allows across both.
func TestUsageClusterRate(t *testing.T) {
	u, prefix := redisSetup(t)
	up := newUpstream(t)
	nodes := startUsage(t, 2, usageSetup{db: testenv.NewDatabase(t), redis: u, prefix: prefix}, up)
	const n, burst, sent = 60, 40, 400
	s := createKey(t, nodes[0].keys, keys.CreateRequest{RateLimit: rate(n, time.Hour, burst)})
	start := time.Now()
	codes := hammer(t, nodes, s, "/x", sent, 16)
	elapsed := time.Since(start)
	// In any stretch d, at most burst + d×N/Per pass.
	most := burst + int(elapsed*n/time.Hour) + 1
	if codes[200] > most || codes[200] < burst || codes[200]+codes[429] != sent {
		t.Fatalf("%v in %v: want %d to %d passed, the rest 429", codes, elapsed, burst, most)
	}
	if up.count() != codes[200] {
		t.Fatalf("upstream saw %d, %d passed", up.count(), codes[200])
	}
	t.Logf("%v in %v (at most %d may pass)", codes, elapsed, most)
}

// TestUsageClusterUses: a budget of 150 uses, spent by two gateways at once
// sharing Redis: exactly 150 requests pass.
func TestUsageClusterUses(t *testing.T) {
	u, prefix := redisSetup(t)
	up := newUpstream(t)
	nodes := startUsage(t, 2, usageSetup{db: testenv.NewDatabase(t), redis: u, prefix: prefix}, up)
	s := createKey(t, nodes[0].keys, keys.CreateRequest{Uses: keys.Uses{Remaining: 150}})
	codes := hammer(t, nodes, s, "/x", 400, 16)
	if codes[200] != 150 || codes[429] != 250 {
		t.Fatalf("%v, want 150 passed and 250 429 uses-exhausted", codes)
	}
	k, err := nodes[1].keys.Get(context.Background(), s.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	if k.Uses.Remaining != 0 {
		t.Fatalf("the key store shows %d uses left", k.Uses.Remaining)
	}
}

// TestUsageClusterMetering: thousands of requests over two gateways, some
// refused; once the gateways stop, the key store's counts are exactly what
// was sent.
func TestUsageClusterMetering(t *testing.T) {
	u, prefix := redisSetup(t)
	up := newUpstream(t)
	nodes := startUsage(t, 2, usageSetup{db: testenv.NewDatabase(t), redis: u, prefix: prefix, interval: 200 * time.Millisecond, policy: routePolicy}, up)
	s := createKey(t, nodes[0].keys, keys.CreateRequest{Uses: keys.Uses{Remaining: 2500}})
	codes := hammer(t, nodes, s, "/metered", 3000, 16)
	if codes[200] != 2500 || codes[429] != 500 {
		t.Fatalf("%v", codes)
	}
	// Refusals before the key is known are counted without it.
	for i := range 10 {
		call(t, nodes[i%2].gw.URL, nil, "/free")
	}
	for _, n := range nodes {
		n.gw.Close()
		if err := n.meter.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	rep, err := nodes[0].keys.Usage(ctx, keys.UsageQuery{KeyID: s.KeyID, Since: time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.Accepted != 2500 || rep.Total.Refused["uses-exhausted"] != 500 {
		t.Fatalf("counted %+v, want 2500 accepted and 500 uses-exhausted", rep.Total)
	}
	for _, h := range rep.Hours {
		if h.Route != "free" {
			t.Errorf("counted under route %q", h.Route)
		}
	}
	all, err := nodes[0].keys.Usage(ctx, keys.UsageQuery{Since: time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if all.Total.Refused["missing-signature"] != 10 {
		t.Fatalf("all keys: %+v, want 10 missing-signature", all.Total)
	}
}

// TestUsageClusterDisable: a key disabled through one gateway's key
// service is refused by the other within a second.
func TestUsageClusterDisable(t *testing.T) {
	u, prefix := redisSetup(t)
	up := newUpstream(t)
	nodes := startUsage(t, 2, usageSetup{db: testenv.NewDatabase(t), redis: u, prefix: prefix}, up)
	s := createKey(t, nodes[0].keys, keys.CreateRequest{RateLimit: rate(1000, time.Second, 1000)})
	if res := call(t, nodes[1].gw.URL, s, "/warm"); res.code != 200 {
		t.Fatalf("warm: %d %s", res.code, res.reason)
	}
	ctx := context.Background()
	if _, err := nodes[0].keys.Disable(ctx, s.KeyID, "test"); err != nil {
		t.Fatal(err)
	}
	took := testtime.Eventually(t, time.Second, func() error {
		if res := call(t, nodes[1].gw.URL, s, "/after"); res.code != 401 {
			return errorf("the other gateway still answers %d", res.code)
		}
		return nil
	})
	t.Logf("disabled everywhere after %v", took)
	if _, err := nodes[0].keys.Enable(ctx, s.KeyID, "test"); err != nil {
		t.Fatal(err)
	}
	testtime.Eventually(t, time.Second, func() error {
		if res := call(t, nodes[1].gw.URL, s, "/again"); res.code != 200 {
			return errorf("the other gateway still answers %d", res.code)
		}
		return nil
	})
}

// hammer sends total requests signed by s from workers clients at once,
// alternating gateways, and returns the count of each status; any other
// than 200 and 429 fails the test.
func hammer(t *testing.T, nodes []*usageNode, s *httpsig.Signer, path string, total, workers int) map[int]int {
	t.Helper()
	var next atomic.Int64
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				res := call(t, nodes[i%int64(len(nodes))].gw.URL, s, path)
				if res.code != 200 && res.code != 429 {
					t.Errorf("request %d: %d %s", i, res.code, res.reason)
				}
				mu.Lock()
				codes[res.code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return codes
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// TestUsageRedisCluster: two gateways on one PostgreSQL and one Redis
// Cluster (three masters) for nonces and limits: a budget of uses and a
// rate hold across both.
func TestUsageRedisCluster(t *testing.T) {
	c := testenv.StartRedisCluster(t)
	prefix := "signet-test:"
	if _, err := replayredis.Init(context.Background(), c.URL(), replayredis.Options{KeyPrefix: prefix + "nonce:"}); err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	nodes := startUsage(t, 2, usageSetup{db: testenv.NewDatabase(t), redis: c.URL(), prefix: prefix, mutate: func(c *gateway.Config) {
		c.OwnerRate = limit.Rate{N: 1, Per: time.Hour, Burst: 1000}
	}}, up)
	// A key with a rate, an owner and uses: on a Cluster, decided in
	// turn (the states are in different slots).
	owned := createKey(t, nodes[0].keys, keys.CreateRequest{Owner: "acme", RateLimit: rate(1000, time.Second, 1000), Uses: keys.Uses{Remaining: 50}})
	if codes := hammer(t, nodes, owned, "/x", 80, 12); codes[200] != 50 || codes[429] != 30 {
		t.Fatalf("owned key's uses: %v, want 50 passed", codes)
	}
	uses := createKey(t, nodes[0].keys, keys.CreateRequest{Uses: keys.Uses{Remaining: 120}})
	if codes := hammer(t, nodes, uses, "/x", 300, 12); codes[200] != 120 || codes[429] != 180 {
		t.Fatalf("uses: %v, want 120 passed", codes)
	}
	const n, burst = 60, 30
	limited := createKey(t, nodes[1].keys, keys.CreateRequest{Owner: "globex", RateLimit: rate(n, time.Hour, burst)})
	start := time.Now()
	codes := hammer(t, nodes, limited, "/x", 200, 12)
	most := burst + int(time.Since(start)*n/time.Hour) + 1
	if codes[200] < burst || codes[200] > most {
		t.Fatalf("rate: %v, want %d to %d passed", codes, burst, most)
	}
}

// TestUsageBudgetWithoutCounter: a gateway with no Config.Uses does not
// let a key with a budget of uses through unchecked.
func TestUsageBudgetWithoutCounter(t *testing.T) {
	up := newUpstream(t)
	n := startUsage(t, 1, usageSetup{mutate: func(c *gateway.Config) { c.Limiter, c.Uses = nil, nil }}, up)[0]
	free := createKey(t, n.keys, keys.CreateRequest{})
	budget := createKey(t, n.keys, keys.CreateRequest{Uses: keys.Uses{Remaining: 5}})
	if res := call(t, n.gw.URL, free, "/x"); res.code != 200 {
		t.Fatalf("key without a budget: %d %s", res.code, res.reason)
	}
	if res := call(t, n.gw.URL, budget, "/x"); res.code != 503 || res.reason != "unavailable" {
		t.Fatalf("key with a budget: %d %s, want 503", res.code, res.reason)
	}
}

// TestUsageConfigRefused: rates a gateway could not enforce are refused
// when it is made, not ignored.
func TestUsageConfigRefused(t *testing.T) {
	up := newUpstream(t)
	p, err := policy.Parse("test.yaml", []byte(strings.ReplaceAll(routePolicy, "%s", up.srv.URL)), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keyTab := &keyTable{keys: map[string]testKey{}, state: map[string]error{}}
	base := gateway.Config{Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: keyTab, Nonces: replaymemory.New(replaymemory.Options{})}}}
	for _, tt := range []struct {
		name   string
		mutate func(*gateway.Config)
		want   string
	}{
		{"route rate without a limiter", func(c *gateway.Config) { c.Policy = p }, "has a rate limit, and the gateway has no Config.Limiter"},
		{"default rate without a limiter", func(c *gateway.Config) {
			c.Policy, c.DefaultRate = nil, limit.Rate{N: 1, Per: time.Second}
			c.Upstream, _ = url.Parse(up.srv.URL)
		}, "Config.DefaultRate needs a Config.Limiter"},
		{"invalid owner rate", func(c *gateway.Config) {
			c.Upstream, _ = url.Parse(up.srv.URL)
			c.Limiter = limitmemory.New(limitmemory.Options{})
			c.OwnerRate = limit.Rate{N: 1, Per: 366 * 24 * time.Hour, Burst: 1000}
		}, "Config.OwnerRate"},
	} {
		cfg := base
		tt.mutate(&cfg)
		if _, err := gateway.New(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestUsageClusterRateAndUses: a key with a rate and a budget, on two
// gateways sharing Redis (one script decides both): the rate's refusals
// spend no use, and the budget holds exactly.
func TestUsageClusterRateAndUses(t *testing.T) {
	u, prefix := redisSetup(t)
	up := newUpstream(t)
	nodes := startUsage(t, 2, usageSetup{db: testenv.NewDatabase(t), redis: u, prefix: prefix}, up)
	ctx := context.Background()
	s := createKey(t, nodes[0].keys, keys.CreateRequest{RateLimit: rate(1, time.Hour, 40), Uses: keys.Uses{Remaining: 100}})
	if codes := hammer(t, nodes, s, "/x", 200, 12); codes[200] != 40 || codes[429] != 160 {
		t.Fatalf("rate: %v, want 40 passed", codes)
	}
	// The uses the rate refused were not spent: 60 are left, less what
	// Redis holds of them.
	res := call(t, nodes[0].gw.URL, s, "/x")
	if res.code != 429 || res.reason != "rate-limited" || !strings.Contains(res.h.Get("RateLimit"), `"key";r=0`) {
		t.Fatalf("%d %s %v", res.code, res.reason, res.h)
	}
	k, err := nodes[1].keys.Get(ctx, s.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	// Each gateway takes a batch (and one) at a time, and may take a
	// second while the first runs out; had the 160 refusals spent uses,
	// none would be left.
	if left := k.Uses.Remaining; left < 60-4*(limitredis.DefaultBatch+1) || left > 60 {
		t.Fatalf("the key store has %d uses left, want 60 less the batches taken ahead into Redis", left)
	}
	// A budget spent to its end under a rate that never refuses.
	s2 := createKey(t, nodes[0].keys, keys.CreateRequest{RateLimit: rate(1000, time.Second, 1000), Uses: keys.Uses{Remaining: 58}})
	codes := hammer(t, nodes, s2, "/x", 100, 12)
	if codes[200] != 58 || codes[429] != 42 {
		t.Fatalf("uses: %v, want 58 passed", codes)
	}
}

// TestUsageClusterOwnedRateAndUses: keys of one owner with rates and
// budgets, and an owner's rate, on two gateways sharing Redis (one script
// decides all three): the owner's rate holds across the keys, its
// refusals spend no use, and the budgets hold exactly.
func TestUsageClusterOwnedRateAndUses(t *testing.T) {
	u, prefix := redisSetup(t)
	up := newUpstream(t)
	nodes := startUsage(t, 2, usageSetup{db: testenv.NewDatabase(t), redis: u, prefix: prefix, mutate: func(c *gateway.Config) {
		c.OwnerRate = limit.Rate{N: 1, Per: time.Hour, Burst: 30}
	}}, up)
	ctx := context.Background()
	k1 := createKey(t, nodes[0].keys, keys.CreateRequest{Owner: "acme", RateLimit: rate(1, time.Hour, 20), Uses: keys.Uses{Remaining: 100}})
	k2 := createKey(t, nodes[0].keys, keys.CreateRequest{Owner: "acme", RateLimit: rate(1, time.Hour, 20), Uses: keys.Uses{Remaining: 100}})
	// k1 spends its rate's 20, k2 then only the owner's last 10.
	if codes := hammer(t, nodes, k1, "/x", 60, 12); codes[200] != 20 || codes[429] != 40 {
		t.Fatalf("k1: %v, want 20 passed", codes)
	}
	if codes := hammer(t, nodes, k2, "/x", 60, 12); codes[200] != 10 || codes[429] != 50 {
		t.Fatalf("k2: %v, want the owner's 10 left to pass", codes)
	}
	// A key of the owner with its rate untouched is refused by the owner's.
	k3 := createKey(t, nodes[0].keys, keys.CreateRequest{Owner: "acme", RateLimit: rate(1, time.Hour, 20), Uses: keys.Uses{Remaining: 100}})
	res := call(t, nodes[0].gw.URL, k3, "/x")
	if res.code != 429 || res.reason != "rate-limited" || !strings.Contains(res.h.Get("RateLimit"), `"owner";r=0`) {
		t.Fatalf("%d %s %v", res.code, res.reason, res.h)
	}
	// Refusals spent no use: k2 has 90 left, less what Redis holds.
	k, err := nodes[1].keys.Get(ctx, k2.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	if left := k.Uses.Remaining; left < 90-4*(limitredis.DefaultBatch+1) || left > 90 {
		t.Fatalf("the key store has %d uses left for k2, want 90 less the batches taken ahead into Redis", left)
	}
	// A budget spent to its end under rates that never refuse.
	big := createKey(t, nodes[0].keys, keys.CreateRequest{Owner: "globex", RateLimit: rate(1000, time.Second, 1000), Uses: keys.Uses{Remaining: 58}})
	codes := hammer(t, nodes, big, "/x", 100, 12)
	if codes[200] != 30 {
		t.Fatalf("globex: %v, want its owner's burst of 30 to pass", codes)
	}
	big2 := createKey(t, nodes[0].keys, keys.CreateRequest{Owner: "initech", RateLimit: rate(1000, time.Second, 1000), Uses: keys.Uses{Remaining: 25}})
	if codes := hammer(t, nodes, big2, "/x", 60, 12); codes[200] != 25 || codes[429] != 35 {
		t.Fatalf("uses: %v, want 25 passed", codes)
	}
}

// TestUsageRefill: a budget refilled every minute is put back at the start
// of the next minute, and the refusal says when.
func TestUsageRefill(t *testing.T) {
	clock := testtime.NewClock(time.Now().Truncate(time.Minute).Add(10 * time.Second))
	up := newUpstream(t)
	n := startUsage(t, 1, usageSetup{now: clock.Now}, up)[0]
	s := createKey(t, n.keys, keys.CreateRequest{Uses: keys.Uses{Remaining: 2, Refill: keys.Rate{N: 2, Per: time.Minute}}})
	for minute := range 3 {
		for i := range 2 {
			if res := call(t, n.gw.URL, s, "/x"); res.code != 200 {
				t.Fatalf("minute %d, use %d: %d %s", minute, i, res.code, res.reason)
			}
		}
		res := call(t, n.gw.URL, s, "/x")
		if res.code != 429 || res.reason != "uses-exhausted" || res.h.Get("Retry-After") != "50" || res.h.Get("RateLimit") != `"uses";r=0;t=50` {
			t.Fatalf("minute %d, exhausted: %d %s %v", minute, res.code, res.reason, res.h)
		}
		clock.Advance(time.Minute)
	}
	if up.count() != 6 {
		t.Fatalf("the upstream saw %d requests, want 6", up.count())
	}
}

// TestForwardMetadata: a key's metadata reaches the upstream, as compact
// ASCII JSON in X-Signet-Metadata, on the routes with forward_metadata
// only; a client's own X-Signet-Metadata never does.
func TestForwardMetadata(t *testing.T) {
	up := newUpstream(t)
	n := startUsage(t, 1, usageSetup{policy: `
upstreams:
  api: {url: "%s"}
routes:
  - {match: "/with/", upstream: api, forward_metadata: true}
  - {match: "/", upstream: api}
`}, up)[0]
	withMD := createKey(t, n.keys, keys.CreateRequest{Metadata: []byte(`{ "plan": "gold", "city": "Zürich 🏔" }`)})
	without := createKey(t, n.keys, keys.CreateRequest{})
	forwarded := func(s *httpsig.Signer, path string) (string, bool) {
		t.Helper()
		r, _ := http.NewRequest("GET", n.gw.URL+path, nil)
		r.Header.Set("X-Signet-Metadata", `{"plan":"forged"}`)
		if err := s.SignRequest(r, nil); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		up.mu.Lock()
		defer up.mu.Unlock()
		v, ok := up.reqs[len(up.reqs)-1].Header["X-Signet-Metadata"]
		return strings.Join(v, "|"), ok
	}
	if got, _ := forwarded(withMD, "/with/x"); got != `{"city":"Z\u00fcrich \ud83c\udfd4","plan":"gold"}` {
		t.Errorf("forwarded metadata %q", got)
	}
	if got, ok := forwarded(withMD, "/other"); ok {
		t.Errorf("a route without forward_metadata passed on %q", got)
	}
	if got, ok := forwarded(without, "/with/x"); ok {
		t.Errorf("a key without metadata: the upstream got %q", got)
	}
}
