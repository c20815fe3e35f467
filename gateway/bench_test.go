package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
	"github.com/signet-dev/signet/replay/memory"
)

// BenchmarkProxy compares, in one run, a plain httputil.ReverseProxy, the
// gateway (memory replay cache), the gateway with a policy of 100 routes,
// and the gateway signing its responses (--gateway-keys), forwarding the reference request to
// the same upstream on loopback. Every request is signed in both, so that
// the difference is the gateway's own work.
func BenchmarkProxy(b *testing.B) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"read":%d}`, n)
	}))
	defer api.Close()
	upstream, _ := url.Parse(api.URL)
	key, _ := httpsig.NewHMACKey(bytes.Repeat([]byte("k"), 32))
	g, err := gateway.New(gateway.Config{
		Upstream: upstream,
		Verify: middleware.Options{Verifier: httpsig.Verifier{
			Keys:   httpsig.KeyMap{"sk_bench": testKey{key, "bench", []string{"orders:write"}}},
			Nonces: memory.New(memory.Options{}),
		}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	// The same behind a policy of 100 routes, the reference request's
	// among them, with a scope to check.
	var routes strings.Builder
	fmt.Fprintf(&routes, "upstream: %s\nroutes:\n  - {match: \"POST /v1/orders\", scopes: [\"orders:write\"]}\n", api.URL)
	for i := range 33 {
		fmt.Fprintf(&routes, "  - {match: \"GET /v1/res%d/{id}\", scopes: [\"r%d:read\"]}\n", i, i)
		fmt.Fprintf(&routes, "  - {match: \"POST /v1/res%d\", scopes: [\"r%d:write\"]}\n", i, i)
		fmt.Fprintf(&routes, "  - {match: \"/v1/res%d/{id}/sub/\"}\n", i)
	}
	p, err := policy.Parse("bench.yaml", []byte(routes.String()), policy.Options{})
	if err != nil || len(p.Routes) != 100 {
		b.Fatal(err)
	}
	routed, err := gateway.New(gateway.Config{
		Policy: p,
		Verify: middleware.Options{Verifier: httpsig.Verifier{
			Keys:   httpsig.KeyMap{"sk_bench": testKey{key, "bench", []string{"orders:write"}}},
			Nonces: memory.New(memory.Options{}),
		}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	// The first again, signing its responses.
	ring, err := keyring.New(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	signed, err := gateway.New(gateway.Config{
		Upstream: upstream, Keyring: ring,
		Verify: middleware.Options{Verifier: httpsig.Verifier{
			Keys:   httpsig.KeyMap{"sk_bench": testKey{key, "bench", []string{"orders:write"}}},
			Nonces: memory.New(memory.Options{}),
		}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	plain := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(upstream); pr.Out.Host = pr.In.Host; pr.SetXForwarded() },
		Transport: gateway.NewTransport(),
	}
	body := []byte(`{"customer":42,"items":[` + strings.Repeat(`{"sku":"B-1","qty":1},`, 44) + `{"sku":"B-2","qty":1}]}`)
	signer := &httpsig.Signer{Key: key, KeyID: "sk_bench"}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"plain", plain}, {"signet", g.Handler()}, {"signet-100-routes", routed.Handler()}, {"signet-signed", signed.Handler()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest("POST", "https://api.example.com/v1/orders?customer=42&expand=items", bytes.NewReader(body))
					r.RequestURI = r.URL.RequestURI() // origin form, as a server reads it
					r.Header.Set("Content-Type", "application/json")
					if err := signer.SignRequest(r, body); err != nil {
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

// cpuTime returns the CPU time the process has used, in nanoseconds: a
// measure of work that other processes on a busy machine disturb less than
// elapsed time.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
