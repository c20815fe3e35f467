package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/limittest"
)

// The tests use the Redis server testenv names; without one they skip,
// unless CI=true, when they fail. Each test writes under a prefix of its
// own, whose keys are deleted at the end.

// newTestStore returns a store on the server at u that writes under a
// fresh prefix, unless opts names one.
func newTestStore(tb testing.TB, u string, opts Options) *Store {
	tb.Helper()
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = testenv.RedisPrefix(tb)
	}
	if opts.Timeout == 0 {
		// Longer than the default, so that a busy machine does not fail
		// tests that are not about timeouts.
		opts.Timeout = 2 * time.Second
	}
	s, err := New(u, opts)
	if err != nil {
		tb.Fatalf("New(%q) = %v", u, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func conformance(t *testing.T, u string, prefix func(t *testing.T) string) {
	limittest.Run(t, limittest.Harness{
		New: func(t *testing.T, now func() time.Time, l limit.Ledger) limittest.Store {
			s := newTestStore(t, u, Options{KeyPrefix: prefix(t), Ledger: l, Batch: limittest.DefaultBatch})
			s.now = now
			return s
		},
	})
}

func TestConformance(t *testing.T) {
	conformance(t, testenv.RequireRedis(t), func(t *testing.T) string { return testenv.RedisPrefix(t) })
}

// TestCluster runs the suite and the tests of two gateways on a Redis
// Cluster of three masters, and checks that a limiter key's rate and uses
// share a slot while keys spread over every master.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := testenv.StartRedisCluster(t)
	n := 0
	prefix := func(*testing.T) string {
		n++
		return "t" + strconv.Itoa(n) + ":"
	}
	t.Run("Conformance", func(t *testing.T) { conformance(t, c.URL(), prefix) })
	t.Run("SharedRate", func(t *testing.T) { sharedRate(t, c.URL(), prefix(t)) })
	t.Run("SharedUses", func(t *testing.T) { sharedUses(t, c.URL(), prefix(t)) })
	t.Run("Slots", func(t *testing.T) {
		s := &Store{prefix: DefaultKeyPrefix}
		cl := admin(t, c.Nodes[0].URL())
		ctx := t.Context()
		masters := masterOfSlot(t, cl)
		nodes := map[string]int{}
		for i := range 300 {
			key := limit.ForKey("sk_" + strconv.Itoa(i))
			var slots [2]int64
			for j, kind := range []byte{'r', 'u'} {
				slot, err := cl.Do(ctx, cl.B().ClusterKeyslot().Key(s.key(key, kind)).Build()).AsInt64()
				if err != nil {
					t.Fatal(err)
				}
				slots[j] = slot
			}
			if slots[0] != slots[1] {
				t.Fatalf("%s: the rate is in slot %d, the uses in %d", key, slots[0], slots[1])
			}
			nodes[masters(slots[0])]++
		}
		if len(nodes) != 3 {
			t.Errorf("300 keys landed on %d masters of 3: %v", len(nodes), nodes)
		}
	})
}

// masterOfSlot returns a function that names the master serving a slot.
func masterOfSlot(t *testing.T, cl rueidis.Client) func(slot int64) string {
	t.Helper()
	shards, err := cl.Do(t.Context(), cl.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	return func(slot int64) string {
		for _, sh := range shards {
			r, _ := sh.ToArray()
			lo, _ := r[0].AsInt64()
			hi, _ := r[1].AsInt64()
			if slot >= lo && slot <= hi {
				m, _ := r[2].ToArray()
				port, _ := m[1].AsInt64()
				return strconv.FormatInt(port, 10)
			}
		}
		t.Fatalf("no master serves slot %d", slot)
		return ""
	}
}

// admin returns a client straight to the server at u, for checking what
// stores wrote.
func admin(tb testing.TB, u string) rueidis.Client {
	tb.Helper()
	co, err := rueidis.ParseURL(u)
	if err != nil {
		tb.Fatal(err)
	}
	co.DisableCache = true
	c, err := rueidis.NewClient(co)
	if err != nil {
		tb.Fatalf("admin client: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// serverTime reads the Redis server's clock.
func serverTime(tb testing.TB, c rueidis.Client) time.Time {
	tb.Helper()
	v, err := c.Do(context.Background(), c.B().Time().Build()).AsStrSlice()
	if err != nil || len(v) != 2 {
		tb.Fatalf("TIME = %v, %v", v, err)
	}
	sec, _ := strconv.ParseInt(v[0], 10, 64)
	usec, _ := strconv.ParseInt(v[1], 10, 64)
	return time.Unix(sec, usec*1000)
}

func TestDefaults(t *testing.T) {
	u := testenv.RequireRedis(t)
	s, err := New(u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.prefix != DefaultKeyPrefix || s.timeout != DefaultTimeout || s.batch != DefaultBatch {
		t.Errorf("zero Options gave prefix %q, timeout %v, batch %d; want %q, %v, %d",
			s.prefix, s.timeout, s.batch, DefaultKeyPrefix, DefaultTimeout, DefaultBatch)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v", err)
	}
}

// TestKey pins the key derivation: instances of different versions share
// one Redis during a rolling upgrade, and must agree on it. The wanted
// keys were worked out apart from Store.key, as in
//
//	printf 'k:sk_1' | sha256sum | cut -c1-24 | xxd -r -p | basenc --base64url
func TestKey(t *testing.T) {
	s := &Store{prefix: "signet:limit:"}
	for _, tt := range []struct {
		key  string
		kind byte
		want string
	}{
		{"k:sk_1", 'r', "signet:limit:{QYBC7l0oT5MjPOV5}r"},
		{"k:sk_1", 'u', "signet:limit:{QYBC7l0oT5MjPOV5}u"},
		{"", 'r', "signet:limit:{47DEQpj8HBSa-_TI}r"},
	} {
		if got := s.key(tt.key, tt.kind); got != tt.want {
			t.Errorf("key(%q, %c) = %q, want %q", tt.key, tt.kind, got, tt.want)
		}
	}
}

// TestServerClock runs a store on the Redis server's clock, as in
// production: a burst, a refusal whose wait is one interval, and a pass
// once it is over; and the rate's key expires when it is back at a full
// burst.
func TestServerClock(t *testing.T) {
	u := testenv.RequireRedis(t)
	s := newTestStore(t, u, Options{})
	c := admin(t, u)
	ctx := t.Context()
	r := limit.Rate{N: 10, Per: time.Second, Burst: 2} // an interval of 100 ms
	for range 2 {
		if d, err := s.Allow(ctx, "k", r, 1); err != nil || !d.Allowed {
			t.Fatalf("within the burst: Allow = %+v, %v", d, err)
		}
	}
	d, err := s.Allow(ctx, "k", r, 1)
	if err != nil || d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond {
		t.Fatalf("over the burst: Allow = %+v, %v; want a refusal for at most 100 ms", d, err)
	}
	pttl, err := c.Do(ctx, c.B().Pttl().Key(s.key("k", 'r')).Build()).AsInt64()
	if err != nil || pttl <= 0 || pttl > 200 {
		t.Fatalf("the rate's key: PTTL = %d, %v; want it to expire within the 200 ms of the burst", pttl, err)
	}
	time.Sleep(d.RetryAfter)
	if d, err := s.Allow(ctx, "k", r, 1); err != nil || !d.Allowed {
		t.Fatalf("after RetryAfter: Allow = %+v, %v", d, err)
	}
	time.Sleep(250 * time.Millisecond)
	if n, err := c.Do(ctx, c.B().Exists().Key(s.key("k", 'r')).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("a key back at a full burst: EXISTS = %d, %v; want it gone", n, err)
	}
}

// TestUsesTTL checks that uses held lapse in Redis at the key's refill,
// and outlive a request by 30 days when the key is not refilled.
func TestUsesTTL(t *testing.T) {
	u := testenv.RequireRedis(t)
	c := admin(t, u)
	now := serverTime(t, c)
	ledger := limittest.NewLedger(func() time.Time { return now })
	s := newTestStore(t, u, Options{Ledger: ledger})
	ctx := t.Context()

	set := ledger.Set("sk_hourly", 100, limit.Rate{N: 100, Per: time.Hour})
	if _, err := s.Spend(ctx, "sk_hourly", set, 1); err != nil {
		t.Fatal(err)
	}
	toHour := now.Truncate(time.Hour).Add(time.Hour).Sub(now)
	pttl, err := c.Do(ctx, c.B().Pttl().Key(s.key("sk_hourly", 'u')).Build()).AsInt64()
	if err != nil || time.Duration(pttl)*time.Millisecond > toHour+time.Millisecond || time.Duration(pttl)*time.Millisecond < toHour-5*time.Second {
		t.Errorf("uses refilled hourly: PTTL = %d ms, %v; want about %v", pttl, err, toHour)
	}

	set = ledger.Set("sk_once", 100, limit.Rate{})
	if _, err := s.Spend(ctx, "sk_once", set, 1); err != nil {
		t.Fatal(err)
	}
	pttl, err = c.Do(ctx, c.B().Pttl().Key(s.key("sk_once", 'u')).Build()).AsInt64()
	if err != nil || pttl != poolTTL.Milliseconds() && pttl < poolTTL.Milliseconds()-5000 {
		t.Errorf("uses not refilled: PTTL = %d ms, %v; want %d", pttl, err, poolTTL.Milliseconds())
	}
}

// TestSharedRate has two gateways, each with its own connections, send
// 4,000 requests at once for one key whose rate lets 50 through at once
// and one every 14.4 minutes: exactly the burst passes.
func TestSharedRate(t *testing.T) {
	sharedRate(t, testenv.RequireRedis(t), testenv.RedisPrefix(t))
}

func sharedRate(t *testing.T, u, prefix string) {
	a := newTestStore(t, u, Options{KeyPrefix: prefix})
	b := newTestStore(t, u, Options{KeyPrefix: prefix})
	r := limit.Rate{N: 100, Per: 24 * time.Hour, Burst: 50}
	if got := hammer(t, []*Store{a, b}, r, 2000); got != 50 {
		t.Fatalf("%d requests passed across two gateways; want the burst of 50", got)
	}
}

// TestSharedRateOverTime has two gateways send requests as fast as they
// can for a second at a rate of 200 a second with a burst of 20: no more
// pass than the burst plus one per 5 ms of the Redis server's clock
// between the first request and the last, and not far fewer.
func TestSharedRateOverTime(t *testing.T) {
	u := testenv.RequireRedis(t)
	c := admin(t, u)
	a := newTestStore(t, u, Options{})
	b := newTestStore(t, u, Options{KeyPrefix: a.prefix})
	r := limit.Rate{N: 200, Per: time.Second, Burst: 20}
	begin := serverTime(t, c)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(time.Second)
	for i := range 8 {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			for time.Now().Before(stop) {
				d, err := s.Allow(context.Background(), "k", r, 1)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	span := serverTime(t, c).Sub(begin)
	most := 20 + int64(span/(5*time.Millisecond))
	t.Logf("%d passed in %v of the server's clock; at most %d may", allowed.Load(), span, most)
	if allowed.Load() > most {
		t.Fatalf("%d requests passed in %v at 200/s with a burst of 20; at most %d may", allowed.Load(), span, most)
	}
	if allowed.Load() < 20+most/4 {
		t.Fatalf("only %d requests passed in %v at 200/s with a burst of 20", allowed.Load(), span)
	}
}

// hammer sends n requests through each store at once, and returns how
// many passed.
func hammer(t *testing.T, stores []*Store, r limit.Rate, n int) int64 {
	t.Helper()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, s := range stores {
		for range 8 {
			wg.Go(func() {
				for range n / 8 {
					d, err := s.Allow(context.Background(), "k", r, 1)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	return allowed.Load()
}

// TestSharedUses has two gateways spend a budget of 500 uses with 4,000
// requests at once: exactly 500 pass, and the ledger is empty.
func TestSharedUses(t *testing.T) {
	sharedUses(t, testenv.RequireRedis(t), testenv.RedisPrefix(t))
}

func sharedUses(t *testing.T, u, prefix string) {
	ledger := limittest.NewLedger(time.Now)
	a := newTestStore(t, u, Options{KeyPrefix: prefix, Ledger: ledger})
	b := newTestStore(t, u, Options{KeyPrefix: prefix, Ledger: ledger})
	set := ledger.Set("sk_1", 500, limit.Rate{})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b} {
		for range 8 {
			wg.Go(func() {
				for range 250 {
					d, err := s.Spend(context.Background(), "sk_1", set, 1)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if allowed.Load() != 500 {
		t.Fatalf("%d requests passed across two gateways on a budget of 500 uses", allowed.Load())
	}
	if n := ledger.Remaining("sk_1"); n != 0 {
		t.Errorf("the ledger has %d uses left; want 0", n)
	}
	t.Logf("500 uses took %d calls to the ledger", ledger.Takes())
}

// TestServerHangs stops a private Redis server with SIGSTOP: calls fail,
// allowing nothing, within the store's timeout, and work again once it
// goes on.
func TestServerHangs(t *testing.T) {
	srv := testenv.StartRedis(t)
	ledger := limittest.NewLedger(time.Now)
	const timeout = 200 * time.Millisecond
	s := newTestStore(t, srv.URL(), Options{KeyPrefix: "h:", Timeout: timeout, Ledger: ledger})
	set := ledger.Set("sk_1", 100, limit.Rate{})
	r := limit.Rate{N: 100, Per: time.Second}
	ctx := t.Context()
	if _, err := s.Allow(ctx, "k", r, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Spend(ctx, "sk_1", set, 1); err != nil {
		t.Fatal(err)
	}
	srv.Hang()
	for i := range 3 {
		begin := time.Now()
		d, err := s.Allow(ctx, "k", r, 1)
		took := time.Since(begin)
		if err == nil || d.Allowed {
			t.Fatalf("Allow with Redis hung = %+v, %v; want an error", d, err)
		}
		if took > timeout+300*time.Millisecond {
			t.Errorf("Allow %d with Redis hung took %v; want about the timeout, %v", i, took, timeout)
		}
		begin = time.Now()
		d, err = s.Spend(ctx, "sk_1", set, 1)
		took = time.Since(begin)
		if err == nil || d.Allowed {
			t.Fatalf("Spend with Redis hung = %+v, %v; want an error", d, err)
		}
		if took > timeout+300*time.Millisecond {
			t.Errorf("Spend %d with Redis hung took %v; want about the timeout, %v", i, took, timeout)
		}
	}
	srv.Resume()
	testtime.Eventually(t, 10*time.Second, func() error {
		if _, err := s.Allow(ctx, "k", r, 1); err != nil {
			return fmt.Errorf("Allow after Redis went on: %w", err)
		}
		return nil
	})
	if d, err := s.Spend(ctx, "sk_1", set, 1); err != nil || !d.Allowed {
		t.Fatalf("Spend after Redis went on = %+v, %v", d, err)
	}
}

func TestUnreachable(t *testing.T) {
	begin := time.Now()
	_, err := New("redis://127.0.0.1:"+strconv.Itoa(testenv.FreePort(t)), Options{DialTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("New with nothing listening: want an error")
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("New with nothing listening took %v", took)
	}
}

func BenchmarkAllow(b *testing.B) {
	s := newTestStore(b, testenv.RequireRedis(b), Options{})
	r := limit.Rate{N: 1 << 40, Per: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Allow(ctx, "k:sk_live_1", r, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllowParallel decides for 10,000 keys from 64 goroutines at
// once, whose calls share a few connections, pipelined.
func BenchmarkAllowParallel(b *testing.B) {
	s := newTestStore(b, testenv.RequireRedis(b), Options{})
	r := limit.Rate{N: 1 << 40, Per: time.Second}
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) * 7919
		for pb.Next() {
			if _, err := s.Allow(ctx, limit.ForKey("sk_"+strconv.FormatInt(i%10_000, 10)), r, 1); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkSpend(b *testing.B) {
	ledger := limittest.NewLedger(time.Now)
	s := newTestStore(b, testenv.RequireRedis(b), Options{Ledger: ledger})
	set := ledger.Set("sk_1", 1<<40, limit.Rate{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Spend(ctx, "sk_1", set, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPing and BenchmarkPingParallel are the floor under Allow: a
// round trip to Redis, serial and pipelined.
func BenchmarkPing(b *testing.B) {
	s := newTestStore(b, testenv.RequireRedis(b), Options{})
	ctx := context.Background()
	for b.Loop() {
		if err := s.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPingParallel(b *testing.B) {
	s := newTestStore(b, testenv.RequireRedis(b), Options{})
	ctx := context.Background()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Ping(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
