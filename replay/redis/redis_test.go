package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/replay/replaytest"
)

// The tests use the Redis server testenv names; without one they skip,
// unless CI=true, when they fail. Each test writes under a prefix of its
// own, whose keys are deleted at the end.
func requireRedis(tb testing.TB) string { return testenv.RequireRedis(tb) }

// newTestStore returns a store on the server at u (maybe through a proxy)
// that writes under a fresh prefix, unless opts names one.
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
	if opts.MaxSkew == 0 {
		// The sentinels of a new prefix set the horizon when the store is
		// made: with no skew, signatures created from then on pass.
		opts.MaxSkew = -1
	}
	s, err := New(u, opts)
	if err != nil {
		tb.Fatalf("New(%q) = %v", u, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// admin returns a client straight to the test server, for checking what
// stores wrote.
func admin(tb testing.TB) rueidis.Client {
	tb.Helper()
	co, err := rueidis.ParseURL(requireRedis(tb))
	if err != nil {
		tb.Fatal(err)
	}
	co.DisableCache = true
	c, err := rueidis.NewClient(co)
	if err != nil {
		tb.Fatalf("admin client: %v", err)
	}
	return c
}

func TestConformance(t *testing.T) {
	u := requireRedis(t)
	replaytest.Run(t, replaytest.Harness{
		New: func(t *testing.T, now func() time.Time) httpsig.NonceStore {
			s := newTestStore(t, u, Options{})
			s.now = now
			return s
		},
		RealTimeExpiry: true,
	})
}

func TestDefaults(t *testing.T) {
	u := requireRedis(t)
	s, err := New(u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.prefix != DefaultKeyPrefix || s.timeout != DefaultTimeout {
		t.Errorf("zero Options gave prefix %q, timeout %v; want %q, %v", s.prefix, s.timeout, DefaultKeyPrefix, DefaultTimeout)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v", err)
	}
}

// TestSharedBetweenStores checks what Redis is for: a nonce used through one
// gateway instance is refused by another.
func TestSharedBetweenStores(t *testing.T) {
	u := requireRedis(t)
	a := newTestStore(t, u, Options{})
	b := newTestStore(t, u, Options{KeyPrefix: a.prefix})
	other := newTestStore(t, u, Options{})
	until := time.Now().Add(time.Minute)
	if err := a.Remember(t.Context(), "sk_1", "n-1", time.Now(), until); err != nil {
		t.Fatalf("first store: Remember = %v", err)
	}
	if err := b.Remember(t.Context(), "sk_1", "n-1", time.Now(), until); !errors.Is(err, httpsig.ErrReplayed) {
		t.Fatalf("second store, same prefix: Remember = %v, want ErrReplayed", err)
	}
	if err := other.Remember(t.Context(), "sk_1", "n-1", time.Now(), until); err != nil {
		t.Fatalf("store with another prefix: Remember = %v, want nil", err)
	}
}

// TestKey pins the key derivation: instances of different versions share
// one Redis during a rolling upgrade, and must agree on it. The wanted keys
// were worked out apart from Store.key, as in
//
//	h=$(printf '\0\0\0\0\0\0\0\2abc' | sha256sum | cut -c1-36)
//	printf 'p:{%03x}' $(( 16#${h:32:4} % 1024 ))
//	echo ${h:0:32} | xxd -r -p | base64 | tr '+/' '-_' | tr -d =
func TestKey(t *testing.T) {
	s := &Store{}
	s.setPrefix("p:")
	tests := []struct {
		keyID, nonce, want string
	}{
		{keyID: "sk_test_1", nonce: "n-1", want: "p:{0bb}1hS2A2Z_o_KgOJOxcX1iQA"},
		{keyID: "ab", nonce: "c", want: "p:{11a}KQo9qptJUmou1zUs1_XmnA"},
		{keyID: "a", nonce: "bc", want: "p:{281}6YvEg8xq-cz4K8I-SBoSjA"},
		{keyID: "", nonce: "", want: "p:{1f5}r1Vw9aGBC3r3jK9LxwpmDw"},
	}
	for _, tt := range tests {
		key, tag := s.key(tt.keyID, tt.nonce)
		if key != tt.want || s.sentinels[tag] != tt.want[:len("p:{000}")] {
			t.Errorf("key(%q, %q) = %q, sentinel %q; want %q", tt.keyID, tt.nonce, key, s.sentinels[tag], tt.want)
		}
	}
}

// TestTTL checks the time to live a pair gets in Redis: the time left until
// its expiry, rounded up, and none when that time has passed.
func TestTTL(t *testing.T) {
	u := requireRedis(t)
	s := newTestStore(t, u, Options{})
	clock := testtime.NewClock(time.Now())
	s.now = clock.Now
	c := admin(t)
	defer c.Close()
	for _, ttl := range []time.Duration{5 * time.Minute, 1500 * time.Microsecond} {
		nonce := "n-" + ttl.String()
		if err := s.Remember(t.Context(), "sk_1", nonce, time.Now(), clock.Now().Add(ttl)); err != nil {
			t.Fatalf("Remember = %v", err)
		}
		key, _ := s.key("sk_1", nonce)
		pttl, err := c.Do(t.Context(), c.B().Pttl().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatalf("PTTL: %v", err)
		}
		if want := ttl.Milliseconds() + 1; pttl > want || pttl < want-1000 {
			t.Errorf("pair held for %v has PTTL %d ms; want at most %d, and not much less", ttl, pttl, want)
		}
	}

	// A refused call leaves the time to live as it was.
	err := s.Remember(t.Context(), "sk_1", "n-5m0s", time.Now(), clock.Now().Add(time.Hour))
	if !errors.Is(err, httpsig.ErrReplayed) {
		t.Fatalf("replay = %v, want ErrReplayed", err)
	}
	key, _ := s.key("sk_1", "n-5m0s")
	if pttl, err := c.Do(t.Context(), c.B().Pttl().Key(key).Build()).AsInt64(); err != nil || pttl > 5*60*1000+1 {
		t.Errorf("after a refused call with a later until, PTTL = %d, %v; want at most 300001", pttl, err)
	}

	key, _ = s.key("sk_1", "n-past")
	if err := s.Remember(t.Context(), "sk_1", "n-past", time.Now(), clock.Now().Add(-time.Second)); err != nil {
		t.Fatalf("Remember with until in the past = %v, want nil", err)
	}
	if n, err := c.Do(t.Context(), c.B().Exists().Key(key).Build()).AsInt64(); err != nil || n != 0 {
		t.Errorf("EXISTS for a pair whose time had passed = %d, %v; want 0, nil", n, err)
	}
}

// failsClosed checks that err is an answer to a call Redis could not serve:
// an error, but not ErrReplayed.
func failsClosed(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || errors.Is(err, httpsig.ErrReplayed) {
		t.Fatalf("%s = %v, want an error other than ErrReplayed", what, err)
	}
}

// eventually calls f until it returns nil, for up to a few seconds; the store
// is reconnecting.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	testtime.Eventually(t, 5*time.Second, func() error {
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

func TestOutage(t *testing.T) {
	u := requireRedis(t)
	p := testenv.StartProxy(t, redisTarget(t, u))
	const timeout = 200 * time.Millisecond
	s := newTestStore(t, proxiedURL(t, u, p.Addr()), Options{Timeout: timeout})
	ctx := t.Context()
	until := time.Now().Add(time.Minute)
	if err := s.Remember(ctx, "sk_1", "before", time.Now(), until); err != nil {
		t.Fatalf("Remember before the outage = %v", err)
	}

	p.Cut()
	for i := range 5 {
		began := time.Now()
		err := s.Remember(ctx, "sk_1", "during-"+strconv.Itoa(i), time.Now(), until)
		failsClosed(t, "Remember during the outage", err)
		if took := time.Since(began); took > timeout+500*time.Millisecond {
			t.Errorf("Remember during the outage took %v; timeout is %v", took, timeout)
		}
		t.Logf("during the outage, after %v: %v", time.Since(began), err)
	}
	failsClosed(t, "Remember of a known pair during the outage", s.Remember(ctx, "sk_1", "before", time.Now(), until))
	failsClosed(t, "Ping during the outage", s.Ping(ctx))

	p.Restore()
	began := time.Now()
	eventually(t, "Ping after the outage", func() error { return s.Ping(ctx) })
	t.Logf("store back %v after Redis", time.Since(began))
	if err := s.Remember(ctx, "sk_1", "after", time.Now(), until); err != nil {
		t.Fatalf("Remember after the outage = %v", err)
	}
	if err := s.Remember(ctx, "sk_1", "before", time.Now(), until); !errors.Is(err, httpsig.ErrReplayed) {
		t.Fatalf("replay of a pair remembered before the outage = %v, want ErrReplayed", err)
	}
}

// TestHang has Redis stop answering without closing the connection: calls
// must give up at the timeout, or at the caller's deadline if sooner.
func TestHang(t *testing.T) {
	u := requireRedis(t)
	p := testenv.StartProxy(t, redisTarget(t, u))
	const timeout = 200 * time.Millisecond
	s := newTestStore(t, proxiedURL(t, u, p.Addr()), Options{Timeout: timeout})
	until := time.Now().Add(time.Minute)
	if err := s.Remember(t.Context(), "sk_1", "before", time.Now(), until); err != nil {
		t.Fatalf("Remember before the hang = %v", err)
	}

	p.Hold()
	tests := []struct {
		name  string
		limit time.Duration // the caller's
		want  time.Duration
	}{
		{name: "StoreTimeout", limit: time.Hour, want: timeout},
		{name: "CallerDeadline", limit: 50 * time.Millisecond, want: 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tt.limit)
			defer cancel()
			began := time.Now()
			err := s.Remember(ctx, "sk_1", "during-"+tt.name, time.Now(), until)
			took := time.Since(began)
			failsClosed(t, "Remember while Redis hangs", err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Remember while Redis hangs = %v, want a deadline error", err)
			}
			if took < tt.want-10*time.Millisecond || took > tt.want+500*time.Millisecond {
				t.Errorf("Remember while Redis hangs took %v, want about %v", took, tt.want)
			}
		})
	}

	p.Release()
	eventually(t, "Remember after the hang", func() error {
		return s.Remember(t.Context(), "sk_1", "after-"+rand.Text(), time.Now(), until)
	})
	if err := s.Remember(t.Context(), "sk_1", "before", time.Now(), until); !errors.Is(err, httpsig.ErrReplayed) {
		t.Fatalf("replay after the hang = %v, want ErrReplayed", err)
	}
}

func TestClosed(t *testing.T) {
	u := requireRedis(t)
	s := newTestStore(t, u, Options{})
	s.Close()
	failsClosed(t, "Remember after Close", s.Remember(t.Context(), "sk_1", "n-1", time.Now(), time.Now().Add(time.Minute)))
	failsClosed(t, "Ping after Close", s.Ping(t.Context()))
}

func TestNewUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	began := time.Now()
	s, err := New("redis://"+addr, Options{})
	if err == nil {
		s.Close()
		t.Fatalf("New with nothing at %s succeeded", addr)
	}
	if took := time.Since(began); took > DefaultDialTimeout+time.Second {
		t.Errorf("New took %v to fail", took)
	}
}

func TestNewBadURL(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:6379", "redis://127.0.0.1:6379/db", "::"} {
		if s, err := New(u, Options{}); err == nil {
			s.Close()
			t.Errorf("New(%q) succeeded, want an error", u)
		}
	}
}

// redisTarget returns the host:port of the server at u, for a proxy.
func redisTarget(t *testing.T, u string) string {
	t.Helper()
	co, err := rueidis.ParseURL(u)
	if err != nil || len(co.InitAddress) != 1 {
		t.Fatalf("cannot proxy %s (%v)", u, err)
	}
	return co.InitAddress[0]
}

// proxiedURL returns u with its host replaced by addr.
func proxiedURL(t *testing.T, u, addr string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Host = addr
	return pu.String()
}

// BenchmarkRemember measures Remember with the default options, from one
// goroutine and from many: the parallel figures show what pipelining the
// calls of concurrent requests over a few connections gains. A call that
// fails (on a busy machine, one that outlasts the 200 ms timeout) is counted
// in errors/op rather than ending the benchmark.
func BenchmarkRemember(b *testing.B) {
	u := requireRedis(b)
	s := newTestStore(b, u, Options{Timeout: DefaultTimeout})
	until := time.Now().Add(time.Minute)
	var callers atomic.Int64
	var failed atomic.Int64
	newCaller := func() func(b *testing.B) {
		keyID := fmt.Sprintf("sk_bench_%d", callers.Add(1))
		var nonce []byte
		i := 0
		return func(b *testing.B) {
			i++
			nonce = strconv.AppendInt(nonce[:0], int64(i), 10)
			err := s.Remember(context.Background(), keyID, string(nonce), time.Now(), until)
			if errors.Is(err, httpsig.ErrReplayed) {
				b.Fatalf("Remember of a new pair = %v", err)
			}
			if err != nil {
				failed.Add(1)
			}
		}
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(failed.Swap(0))/float64(b.N), "errors/op")
	}
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		remember := newCaller()
		for b.Loop() {
			remember(b)
		}
		report(b)
	})
	for _, goroutines := range []int{8, 64, 256} {
		b.Run(fmt.Sprintf("Parallel%d", goroutines), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism((goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				remember := newCaller()
				for pb.Next() {
					remember(b)
				}
			})
			report(b)
		})
	}
}

// clientCPU returns the CPU time this process has used, in seconds.
func clientCPU(tb testing.TB) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkRememberServer measures what Remember costs the Redis server: it
// runs many concurrent callers against a private server and reports the
// server's CPU time (user and system, from INFO cpu) per call in
// server-µs/op, and the calling process's in client-µs/op: what a gateway
// and its Redis spend on a request's nonce, measured in CPU time rather
// than in throughput, which a shared machine makes noisy.
func BenchmarkRememberServer(b *testing.B) {
	r := testenv.StartRedis(b)
	s := newTestStore(b, r.URL(), Options{Timeout: DefaultTimeout})
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	serverCPU := func() float64 {
		info, err := c.Do(context.Background(), c.B().Info().Section("cpu").Build()).ToString()
		if err != nil {
			b.Fatal(err)
		}
		var total float64
		for _, line := range strings.Split(info, "\n") {
			name, value, _ := strings.Cut(strings.TrimSpace(line), ":")
			if name == "used_cpu_sys" || name == "used_cpu_user" {
				v, err := strconv.ParseFloat(value, 64)
				if err != nil {
					b.Fatal(err)
				}
				total += v
			}
		}
		return total
	}
	until := time.Now().Add(time.Minute)
	var callers atomic.Int64 // each caller has a keyid of its own
	for _, goroutines := range []int{2, 8, 64} {
		b.Run(fmt.Sprintf("Parallel%d", goroutines), func(b *testing.B) {
			var failed atomic.Int64
			b.ReportAllocs()
			b.SetParallelism((goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			before, clientBefore := serverCPU(), clientCPU(b)
			b.RunParallel(func(pb *testing.PB) {
				keyID := fmt.Sprintf("sk_bench_%d", callers.Add(1))
				var nonce []byte
				i := 0
				for pb.Next() {
					i++
					nonce = strconv.AppendInt(nonce[:0], int64(i), 10)
					err := s.Remember(context.Background(), keyID, string(nonce), time.Now(), until)
					if errors.Is(err, httpsig.ErrReplayed) {
						b.Errorf("Remember of a new pair = %v", err)
						return
					}
					if err != nil {
						failed.Add(1)
					}
				}
			})
			b.ReportMetric((serverCPU()-before)*1e6/float64(b.N), "server-µs/op")
			b.ReportMetric((clientCPU(b)-clientBefore)*1e6/float64(b.N), "client-µs/op")
			b.ReportMetric(float64(failed.Load())/float64(b.N), "errors/op")
		})
	}
}
