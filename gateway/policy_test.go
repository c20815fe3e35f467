package gateway_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
	"github.com/signet-dev/signet/replay/memory"
)

// policyEnv is a gateway serving a policy file, in front of two recording
// upstreams, with keys of several scopes.
type policyEnv struct {
	g              *gateway.Gateway
	gw             *httptest.Server
	api, admin     *upstream
	reader, writer *httpsig.Signer
	adminKey       *httpsig.Signer // Ed25519, scope admin
	file           string
}

const testPolicy = `
upstreams:
  api: {url: "%[1]s"}
  admin: {url: "%[2]s/internal"}
%[3]s
routes:
  - {name: health, match: "GET /healthz", upstream: api, public: true}
  - {name: orders-read, match: "GET /v1/orders/{id}", upstream: api, scopes: {any_of: [orders:read, orders:admin]}}
  - {name: orders-new, match: "GET /v1/orders/new", upstream: api, scopes: [orders:write]}
  - {name: orders-create, match: "POST /v1/orders", upstream: api, scopes: [orders:write], require: [idempotency-key], max_body: 16B}
  - {name: admin, match: "/admin/", upstream: admin, scopes: [admin], algorithms: [ed25519]}
`

func newPolicyEnv(t *testing.T, extra string) *policyEnv {
	t.Helper()
	e := &policyEnv{api: newUpstream(t), admin: newUpstream(t)}
	keys := &keyTable{keys: map[string]testKey{}, state: map[string]error{}}
	hmacKey := func(id string, scopes ...string) *httpsig.Signer {
		secret := make([]byte, 32)
		rand.Read(secret)
		k, _ := httpsig.NewHMACKey(secret)
		keys.keys[id] = testKey{k, "owner-" + id, scopes}
		return &httpsig.Signer{Key: k, KeyID: id}
	}
	e.reader = hmacKey("sk_reader", "orders:read")
	e.writer = hmacKey("sk_writer", "orders:write", "admin") // admin, but HMAC: refused on the Ed25519-only route
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	es, _ := httpsig.NewSigningKey(httpsig.AlgEd25519, priv)
	ev, _ := httpsig.NewVerifyingKey(httpsig.AlgEd25519, priv.Public())
	keys.keys["pk_admin"] = testKey{ev, "ops", []string{"admin"}}
	e.adminKey = &httpsig.Signer{Key: es, KeyID: "pk_admin"}

	e.file = filepath.Join(t.TempDir(), "signet.yaml")
	writePolicy(t, e.file, fmt.Sprintf(testPolicy, e.api.srv.URL, e.admin.srv.URL, extra))
	p, err := policy.Load(e.file, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.g, err = gateway.New(gateway.Config{
		Policy: p,
		Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: keys, Nonces: memory.New(memory.Options{})}},
		Logger: slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.gw = httptest.NewServer(e.g.Handler())
	t.Cleanup(e.gw.Close)
	return e
}

// loadPolicy loads a policy file of content, written in a test's own
// directory.
func loadPolicy(t testing.TB, content string) *policy.Policy {
	t.Helper()
	file := filepath.Join(t.TempDir(), "signet.yaml")
	writePolicy(t, file, content)
	p, err := policy.Load(file, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writePolicy(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".new", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// do signs (when s is set) and sends a request; header fields in h are
// set before signing.
func (e *policyEnv) do(t *testing.T, s *httpsig.Signer, method, path, body string, h map[string]string) (*http.Response, string) {
	t.Helper()
	r, _ := http.NewRequest(method, e.gw.URL+path, strings.NewReader(body))
	if body == "" {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	for k, v := range h {
		r.Header.Set(k, v)
	}
	if s != nil {
		if err := s.SignRequest(r, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPolicyEndToEnd(t *testing.T) {
	e := newPolicyEnv(t, "")
	withIdem := func(s *httpsig.Signer) *httpsig.Signer {
		c := *s
		idem, _ := httpsig.ParseComponent("idempotency-key")
		comps, _ := httpsig.ParseComponents(`@method @authority @path content-digest`)
		c.Components = append(comps, idem)
		return &c
	}
	tests := []struct {
		name         string
		signer       *httpsig.Signer
		method, path string
		body         string
		header       map[string]string
		status       int
		reason       string
		upstream     *upstream
		upstreamPath string
	}{
		{"public, unsigned", nil, "GET", "/healthz", "", map[string]string{"X-Signet-Owner": "root", "X-Signet-Scopes": "admin"}, 200, "", e.api, "/healthz"},
		{"public, HEAD", nil, "HEAD", "/healthz", "", nil, 200, "", e.api, "/healthz"},
		{"public, other method", nil, "POST", "/healthz", "", nil, 404, "no-route", nil, ""},
		{"read scope", e.reader, "GET", "/v1/orders/7", "", nil, 200, "", e.api, "/v1/orders/7"},
		{"read route, write key", e.writer, "GET", "/v1/orders/7", "", nil, 403, "insufficient-scope", nil, ""},
		{"unsigned on a signed route", nil, "GET", "/v1/orders/7", "", nil, 401, "missing-signature", nil, ""},
		{"literal beats wildcard", e.reader, "GET", "/v1/orders/new", "", nil, 403, "insufficient-scope", nil, ""},
		{"literal beats wildcard, writer", e.writer, "GET", "/v1/orders/new", "", nil, 200, "", e.api, "/v1/orders/new"},
		{"write without the extra component", e.writer, "POST", "/v1/orders", `{"a":1}`, map[string]string{"Idempotency-Key": "k1"}, 401, "missing-component", nil, ""},
		{"write with it", withIdem(e.writer), "POST", "/v1/orders", `{"a":1}`, map[string]string{"Idempotency-Key": "k2"}, 200, "", e.api, "/v1/orders"},
		{"write, reader", withIdem(e.reader), "POST", "/v1/orders", `{"a":1}`, map[string]string{"Idempotency-Key": "k3"}, 403, "insufficient-scope", nil, ""},
		{"route body limit", withIdem(e.writer), "POST", "/v1/orders", `{"a":"0123456789abcdef"}`, map[string]string{"Idempotency-Key": "k4"}, 413, "body-too-large", nil, ""},
		{"admin upstream with its base path", e.adminKey, "DELETE", "/admin/users/3", "", nil, 200, "", e.admin, "/internal/admin/users/3"},
		{"admin root without the slash", e.adminKey, "GET", "/admin", "", nil, 200, "", e.admin, "/internal/admin"},
		{"admin route, HMAC key", e.writer, "GET", "/admin/users", "", nil, 401, "", nil, ""},
		{"no route", e.writer, "GET", "/v2/x", "", nil, 404, "no-route", nil, ""},
		{"no route for the method", e.writer, "PUT", "/v1/orders/7", "", nil, 404, "no-route", nil, ""},
		{"dot-segment", e.adminKey, "GET", "/healthz/../admin/x", "", nil, 400, "invalid-target", nil, ""},
		{"encoded dot-segment", e.adminKey, "GET", "/healthz/%2e%2e/admin/x", "", nil, 400, "invalid-target", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[*upstream]int{e.api: e.api.count(), e.admin: e.admin.count()}
			resp, body := e.do(t, tt.signer, tt.method, tt.path, tt.body, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.reason != "" && reasonOf(t, resp, body) != tt.reason {
				t.Fatalf("reason %s, want %s", body, tt.reason)
			}
			for u, n := range before {
				want := n
				if u == tt.upstream {
					want++
				}
				if u.count() != want {
					t.Fatalf("upstream %s got %d requests, want %d", u.srv.URL, u.count()-n, want-n)
				}
			}
			if tt.upstream == nil {
				return
			}
			r, _ := tt.upstream.last()
			if r.URL.Path != tt.upstreamPath {
				t.Fatalf("upstream path %q, want %q", r.URL.Path, tt.upstreamPath)
			}
			owner := r.Header.Get(gateway.HeaderOwner)
			if tt.signer == nil && (owner != "" || r.Header.Get(gateway.HeaderScopes) != "") {
				t.Fatalf("a public request reached the upstream with identity %q %q", owner, r.Header.Get(gateway.HeaderScopes))
			}
			if tt.signer != nil && owner != "owner-"+tt.signer.KeyID && owner != "ops" {
				t.Fatalf("owner %q", owner)
			}
		})
	}
}

// The same forged forwarding fields are believed from a trusted proxy and
// ignored from anyone else; a prefix mount is put back for the signature
// and stripped for the upstream.
func TestPolicyTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cidrs   string
		trusted bool
	}{{"trusted", "[127.0.0.0/8, '::1']", true}, {"untrusted", "[10.0.0.0/8]", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newPolicyEnv(t, "trusted_proxies: {cidrs: "+tc.cidrs+", prefix: /api}")
			// The client signs what it sees: https://api.example.com/api/v1/orders/7.
			r, _ := http.NewRequest("GET", "https://api.example.com/api/v1/orders/7", nil)
			if err := e.reader.SignRequest(r, nil); err != nil {
				t.Fatal(err)
			}
			// The proxy in front strips /api and says what it received.
			fwd, _ := http.NewRequest("GET", e.gw.URL+"/v1/orders/7", nil)
			fwd.Header = r.Header.Clone()
			fwd.Header.Set("X-Forwarded-Host", "api.example.com")
			fwd.Header.Set("X-Forwarded-Proto", "https")
			fwd.Header.Set("X-Forwarded-Prefix", "/api")
			fwd.Header.Set("Forwarded", "host=evil.example")
			resp, err := http.DefaultClient.Do(fwd)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !tc.trusted {
				if resp.StatusCode != 401 || e.api.count() != 0 {
					t.Fatalf("from an untrusted peer: %d %s", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			up, _ := e.api.last()
			h := up.Header
			if up.URL.Path != "/v1/orders/7" || h.Get("X-Forwarded-Host") != "api.example.com" || h.Get("X-Forwarded-Proto") != "https" ||
				h.Get("X-Forwarded-Prefix") != "/api" || h.Get("Forwarded") != "" {
				t.Fatalf("upstream got %s %v", up.URL.Path, h)
			}
			// A prefix the policy does not declare is refused, not guessed.
			fwd.Header.Set("X-Forwarded-Prefix", "/other")
			resp, err = http.DefaultClient.Do(fwd)
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || reasonOf(t, resp, string(body)) != "invalid-forwarded" {
				t.Fatalf("undeclared prefix: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// A policy reloaded while requests flow: none fails, and each is served
// whole by one policy or the other.
func TestPolicyReloadUnderTraffic(t *testing.T) {
	e := newPolicyEnv(t, "")
	a := fmt.Sprintf(testPolicy, e.api.srv.URL, e.admin.srv.URL, "") + "  - {name: x, match: \"GET /x\", upstream: api, public: true}\n"
	b := fmt.Sprintf(testPolicy, e.api.srv.URL, e.admin.srv.URL, "") + "  - {name: x, match: \"GET /x\", upstream: admin, public: true}\n"
	writePolicy(t, e.file, a)
	reloads := make(chan policy.Reload, 100)
	w, err := policy.NewWatcher(e.file, policy.WatchOptions{Interval: -1, OnReload: func(r policy.Reload) {
		if r.Err == nil {
			if err := e.g.SetPolicy(r.Policy); err != nil {
				t.Error(err)
			}
		}
		reloads <- r
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.g.SetPolicy(w.Policy()); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var sent, toAPI, toAdmin atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := http.Get(e.gw.URL + "/x")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("status %d during reloads", resp.StatusCode)
					return
				}
				sent.Add(1)
			}
		}()
	}
	for i := range 20 {
		content := a
		if i%2 == 0 {
			content = b
		}
		if i == 10 {
			content = "routes: [" // broken: reported, the policy in force kept
		}
		writePolicy(t, e.file, content)
		err := w.Reload()
		if r := <-reloads; (i == 10) != (r.Err != nil) || (err == nil) != (r.Err == nil) {
			t.Fatalf("reload %d: %v", i, r.Err)
		}
		time.Sleep(5 * time.Millisecond) // let traffic run under each policy
	}
	stop.Store(true)
	wg.Wait()
	toAPI.Store(int64(e.api.count()))
	toAdmin.Store(int64(e.admin.count()))
	if sent.Load() == 0 || toAPI.Load()+toAdmin.Load() != sent.Load() || toAPI.Load() == 0 || toAdmin.Load() == 0 {
		t.Fatalf("sent %d, api got %d, admin got %d", sent.Load(), toAPI.Load(), toAdmin.Load())
	}
	// The admin upstream gets /x under its base path: the route and the
	// upstream came from the same policy.
	for _, r := range e.admin.reqs {
		if r.URL.Path != "/internal/x" {
			t.Fatalf("admin upstream got %s", r.URL.Path)
		}
	}
}
