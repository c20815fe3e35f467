package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/sqlite"
	limitmemory "github.com/signet-dev/signet/limit/memory"
	limitredis "github.com/signet-dev/signet/limit/redis"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// BenchmarkUsage compares, in one run, the gateway with a key of the key
// service (SQLite, cached) and: nothing more; metering; metering and
// limits (a key rate, an owner rate and a budget of uses) in memory; the
// same in Redis; and in Redis without the owner rate (one script for the
// key's rate and uses). cpu-ns/op is this process's CPU time per request (Redis's
// is not in it).
func BenchmarkUsage(b *testing.B) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"read":%d}`, n)
	}))
	defer api.Close()
	upstream, _ := url.Parse(api.URL)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "keys.db"), sqlite.Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	ks, err := keys.New(ctx, store, keys.Options{MasterKey: keys.NewMasterKey()})
	if err != nil {
		b.Fatal(err)
	}
	defer ks.Close()
	create := func(req keys.CreateRequest) *httpsig.Signer {
		req.Owner, req.Actor, req.Scopes = "bench", "bench", []string{"orders:write"}
		c, err := ks.Create(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		k, _ := httpsig.NewHMACKey(c.Secret)
		return &httpsig.Signer{Key: k, KeyID: c.Key.ID}
	}
	plainKey := create(keys.CreateRequest{})
	limitedKey := create(keys.CreateRequest{RateLimit: rate(1_000_000, 1e9, 1_000_000), Uses: keys.Uses{Remaining: 1 << 40}})
	meter := keys.NewMeter(ks, keys.MeterOptions{})
	defer meter.Close()
	newGW := func(mutate func(*gateway.Config)) http.Handler {
		cfg := gateway.Config{
			Upstream: upstream,
			Verify:   middleware.Options{Verifier: httpsig.Verifier{Keys: ks, Nonces: memory.New(memory.Options{})}},
			Logger:   slog.New(slog.DiscardHandler),
		}
		if mutate != nil {
			mutate(&cfg)
		}
		g, err := gateway.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		return g.Handler()
	}
	owner := gateway.KeyRate(rate(1_000_000, 1e9, 1_000_000))
	mem := limitmemory.New(limitmemory.Options{Ledger: gateway.Ledger(ks), Batch: 100})
	cases := []struct {
		name   string
		h      http.Handler
		signer *httpsig.Signer
	}{
		{"signet", newGW(nil), plainKey},
		{"signet-metered", newGW(func(c *gateway.Config) { c.Meter = meter }), plainKey},
		{"signet-limits-memory", newGW(func(c *gateway.Config) {
			c.Meter, c.Limiter, c.Uses, c.OwnerRate = meter, mem, mem, owner
		}), limitedKey},
	}
	if u := testenv.RedisURL(); u != "" {
		prefix := testenv.RedisPrefix(b)
		rs, err := limitredis.New(u, limitredis.Options{KeyPrefix: prefix, Ledger: gateway.Ledger(ks), Batch: 100, Timeout: 2 * time.Second})
		if err == nil {
			defer rs.Close()
			cases = append(cases, struct {
				name   string
				h      http.Handler
				signer *httpsig.Signer
			}{"signet-limits-redis", newGW(func(c *gateway.Config) {
				c.Meter, c.Limiter, c.Uses, c.OwnerRate = meter, rs, rs, owner
			}), limitedKey}, struct {
				name   string
				h      http.Handler
				signer *httpsig.Signer
			}{"signet-key-limits-redis", newGW(func(c *gateway.Config) {
				c.Meter, c.Limiter, c.Uses = meter, rs, rs
			}), limitedKey})
		}
	}
	body := []byte(`{"customer":42,"items":[` + strings.Repeat(`{"sku":"B-1","qty":1},`, 44) + `{"sku":"B-2","qty":1}]}`)
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest("POST", "https://api.example.com/v1/orders?customer=42&expand=items", bytes.NewReader(body))
					r.RequestURI = r.URL.RequestURI()
					r.Header.Set("Content-Type", "application/json")
					if err := bc.signer.SignRequest(r, body); err != nil {
						b.Error(err)
						return
					}
					w := httptest.NewRecorder()
					bc.h.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Errorf("%d %s", w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}
