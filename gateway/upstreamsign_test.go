package gateway_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
	"github.com/signet-dev/signet/replay/memory"
)

// trustEnv is a gateway that signs what it forwards, in front of an
// upstream behind middleware.TrustGateway, with a proxy between them
// that can tamper with the gateway's requests, and the gateway's JWKS
// served as its admin listener does.
type trustEnv struct {
	g        *gateway.Gateway
	gw       *httptest.Server
	upURL    string // the upstream itself
	jwks     *httptest.Server
	ring     atomic.Pointer[keyring.Ring] // what the JWKS publishes
	writer   *httpsig.Signer
	nobody   *httpsig.Signer
	tamper   atomic.Pointer[func(*http.Request)]
	handled  atomic.Int64
	mu       sync.Mutex
	captured []*http.Request // as the gateway sent them, bodies in capBody
	capBody  []string
}

// echo is what the upstream answers: what TrustGateway vouched for.
type echo struct {
	Vouched  middleware.Vouched
	Identity *middleware.Identity
	Body     string
	Path     string
}

const trustPolicy = `
upstream_signing: true
upstreams:
  api: {url: "%s"}
routes:
  - {name: health, match: "GET /healthz", upstream: api, public: true}
  - {name: hooks, match: "POST /hooks/", upstream: api, public: true, max_body: 16B}
  - {name: orders, match: "/v1/orders/", upstream: api, scopes: [orders:write]}
  - {name: open, match: "/v1/open/", upstream: api}
`

// keySource says how the upstream learns the gateway's keys.
type keySource int

const (
	fromURL keySource = iota
	fromFile
	pinned
)

// The upstreams: Go behind middleware.TrustGateway, or Node.js behind
// trustGateway of @signet/client/server (JWKS URL only).
var upstreamKinds = []string{"go", "node"}

func newTrustEnv(t *testing.T, src keySource, kind string) *trustEnv {
	t.Helper()
	e := &trustEnv{}
	ring, err := keyring.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.ring.Store(ring)
	e.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/signet-keys" {
			http.NotFound(w, r)
			return
		}
		b, _ := e.ring.Load().JWKS(time.Now())
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(b)
	}))
	t.Cleanup(e.jwks.Close)

	opts := middleware.TrustOptions{}
	switch src {
	case fromURL:
		opts.JWKSURL = e.jwks.URL + "/.well-known/signet-keys"
	case fromFile:
		b, _ := ring.JWKS(time.Now())
		opts.JWKSFile = filepath.Join(t.TempDir(), "gateway-keys.json")
		if err := os.WriteFile(opts.JWKSFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
	case pinned:
		opts.Keys = map[string]ed25519.PublicKey{ring.Keys[0].ID: ring.Keys[0].Public()}
	}
	if kind == "node" {
		e.upURL = startNodeTrust(t, opts.JWKSURL, &e.handled)
	} else {
		trust, err := middleware.TrustGateway(opts)
		if err != nil {
			t.Fatal(err)
		}
		up := httptest.NewServer(trust(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.handled.Add(1)
			if r.Header.Get("Upgrade") == "websocket" {
				v, _ := middleware.VouchedFromContext(r.Context())
				c, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				defer c.CloseNow()
				c.Write(r.Context(), websocket.MessageText, []byte("hello "+v.Owner))
				c.Close(websocket.StatusNormalClosure, "")
				return
			}
			body, _ := io.ReadAll(r.Body)
			v, _ := middleware.VouchedFromContext(r.Context())
			id, _ := middleware.FromContext(r.Context())
			json.NewEncoder(w).Encode(echo{Vouched: *v, Identity: id, Body: string(body), Path: r.URL.RequestURI()})
		})))
		t.Cleanup(up.Close)
		e.upURL = up.URL
	}
	upURL, _ := url.Parse(e.upURL)
	between := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(upURL)
		pr.Out.Host = pr.In.Host
		// What the gateway sent, for replays.
		var body []byte
		if pr.Out.Body != nil {
			body, _ = io.ReadAll(pr.Out.Body)
			pr.Out.Body = io.NopCloser(strings.NewReader(string(body)))
		}
		e.mu.Lock()
		e.captured = append(e.captured, pr.Out.Clone(context.Background()))
		e.capBody = append(e.capBody, string(body))
		e.mu.Unlock()
		if f := e.tamper.Load(); f != nil {
			(*f)(pr.Out)
		}
	}})
	t.Cleanup(between.Close)

	keys := &keyTable{keys: map[string]testKey{}, state: map[string]error{}}
	secret := make([]byte, 32)
	rand.Read(secret)
	hk, _ := httpsig.NewHMACKey(secret)
	keys.keys["sk_writer"] = testKey{hk, "acme", []string{"orders:write", "orders:read"}}
	e.writer = &httpsig.Signer{Key: hk, KeyID: "sk_writer"}
	keys.keys["sk_nobody"] = testKey{hk, "", nil} // no owner, no scopes: empty identity fields
	e.nobody = &httpsig.Signer{Key: hk, KeyID: "sk_nobody"}

	p := loadPolicy(t, fmt.Sprintf(trustPolicy, between.URL))
	e.g, err = gateway.New(gateway.Config{
		Policy:  p,
		Keyring: ring,
		Verify:  middleware.Options{Verifier: httpsig.Verifier{Keys: keys, Nonces: memory.New(memory.Options{})}},
		Logger:  slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.gw = httptest.NewServer(e.g.Handler())
	t.Cleanup(e.gw.Close)
	return e
}

// send signs (when s is set) and sends a request to base.
func send(t *testing.T, s *httpsig.Signer, method, target, body string, h http.Header) (*http.Response, []byte) {
	t.Helper()
	r, _ := http.NewRequest(method, target, strings.NewReader(body))
	if body == "" {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	for k, v := range h {
		r.Header[k] = v
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
	return resp, b
}

func problemReason(b []byte) string {
	var p struct{ Type string }
	json.Unmarshal(b, &p)
	return p.Type[strings.LastIndexByte(p.Type, '/')+1:]
}

func TestUpstreamSigningVerifiedByTrustGateway(t *testing.T) {
	for _, src := range []struct {
		name string
		k    keySource
		kind string
	}{{"go/jwks-url", fromURL, "go"}, {"go/jwks-file", fromFile, "go"}, {"go/pinned", pinned, "go"}, {"node/jwks-url", fromURL, "node"}} {
		t.Run(src.name, func(t *testing.T) {
			e := newTrustEnv(t, src.k, src.kind)
			kid := e.ring.Load().Keys[0].ID
			collide := *e.writer
			collide.Label = "signet" // the gateway's own label: the client's signature gives way
			tests := []struct {
				name, method, path, body string
				signer                   *httpsig.Signer
				h                        http.Header
				public                   bool
			}{
				{name: "signed get with query", method: "GET", path: "/v1/orders/1?x=1&y=%20", signer: e.writer},
				{name: "signed post with body", method: "POST", path: "/v1/orders/", body: `{"qty":2}`, signer: e.writer, h: http.Header{"Content-Type": {"application/json"}}},
				{name: "client label signet", method: "GET", path: "/v1/orders/2", signer: &collide},
				{name: "forged identity stripped", method: "GET", path: "/v1/orders/3", signer: e.writer, h: http.Header{"X-Signet-Owner": {"root"}, "X_signet_scopes": {"admin"}}},
				{name: "public get", method: "GET", path: "/healthz", public: true, h: http.Header{"X-Signet-Owner": {"root"}}},
				{name: "public get, junk signature fields", method: "GET", path: "/healthz", public: true, h: http.Header{"Signature-Input": {"sig1=((("}, "Signature": {"signet=:AAAA:, x"}}},
				{name: "public post, forged digest", method: "POST", path: "/hooks/in", body: "ping", public: true, h: http.Header{"Content-Digest": {"sha-256=:AAAA:"}}},
			}
			for _, tc := range tests {
				resp, b := send(t, tc.signer, tc.method, e.gw.URL+tc.path, tc.body, tc.h)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d %s", tc.name, resp.StatusCode, b)
				}
				var got echo
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatalf("%s: %v: %s", tc.name, err, b)
				}
				v := got.Vouched
				if v.GatewayKeyID != kid || v.Public != tc.public || v.RequestID == "" || v.RequestID != resp.Header.Get("X-Request-Id") || got.Body != tc.body || got.Path != tc.path {
					t.Errorf("%s: vouched %+v, body %q, path %q", tc.name, v, got.Body, got.Path)
				}
				if tc.public {
					if v.KeyID != "" || v.Owner != "" || got.Identity != nil {
						t.Errorf("%s: a public request carries an identity: %+v %+v", tc.name, v, got.Identity)
					}
					continue
				}
				if v.KeyID != "sk_writer" || v.Owner != "acme" || !slices.Equal(v.Scopes, []string{"orders:write", "orders:read"}) {
					t.Errorf("%s: vouched identity %+v", tc.name, v)
				}
				if got.Identity == nil || got.Identity.Owner != "acme" || !got.Identity.HasScope("orders:write") {
					t.Errorf("%s: identity %+v", tc.name, got.Identity)
				}
			}
			// Empty identity fields are signed and verified as such.
			resp, b := send(t, e.nobody, "GET", e.gw.URL+"/v1/open/x", "", nil)
			var got echo
			if json.Unmarshal(b, &got); resp.StatusCode != 200 || got.Vouched.KeyID != "sk_nobody" || got.Vouched.Owner != "" || len(got.Vouched.Scopes) != 0 || got.Vouched.Public {
				t.Errorf("empty identity: %d %s", resp.StatusCode, b)
			}
			// A public body is read to be signed, under the route's limit.
			before := e.handled.Load()
			if resp, b := send(t, nil, "POST", e.gw.URL+"/hooks/in", strings.Repeat("x", 17), nil); resp.StatusCode != 413 || problemReason(b) != "body-too-large" {
				t.Errorf("public body over the limit: %d %s", resp.StatusCode, b)
			}
			if e.handled.Load() != before {
				t.Error("the upstream got a body over the limit")
			}
		})
	}
}

func TestTrustGatewayRefusesDirectRequests(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		e := newTrustEnv(t, fromURL, kind)
		// One request through the gateway, captured as the upstream saw it.
		if resp, b := send(t, e.writer, "POST", e.gw.URL+"/v1/orders/", `{"qty":1}`, nil); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		cap, capBody := e.captured[0], e.capBody[0]
		before := e.handled.Load()

		_, attacker, _ := ed25519.GenerateKey(rand.Reader)
		ak, _ := httpsig.NewSigningKey(httpsig.AlgEd25519, attacker)
		comps, _ := httpsig.ParseComponents(`@method @authority @path x-signet-key-id x-signet-owner x-signet-scopes x-request-id`)
		forger := &httpsig.Signer{Key: ak, KeyID: keyring.Thumbprint(attacker.Public().(ed25519.PublicKey)), Label: "signet", Tag: "signet-gateway", Components: comps}
		stolenKid := *forger
		stolenKid.KeyID = e.ring.Load().Keys[0].ID // the gateway's keyid, the attacker's key

		identity := http.Header{"X-Signet-Key-Id": {"sk_admin"}, "X-Signet-Owner": {"root"}, "X-Signet-Scopes": {"admin"}, "X-Request-Id": {"r1"}}
		tests := []struct {
			name   string
			signer *httpsig.Signer
			h      http.Header
			body   string
			status int
			reason string
		}{
			{"forged identity, no signature", nil, identity, "", 401, "missing-signature"},
			{"client's own signature only", e.writer, identity, "", 401, "missing-signature"},
			{"signed by another key", forger, identity, "", 401, "unknown-key"},
			{"another key under the gateway's keyid", &stolenKid, identity, "", 401, "bad-signature"},
		}
		for _, tc := range tests {
			resp, b := send(t, tc.signer, "GET", e.upURL+"/v1/orders/1", tc.body, tc.h)
			if resp.StatusCode != tc.status || problemReason(b) != tc.reason || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
			}
		}
		// The captured request, sent again to the upstream directly.
		r, _ := http.NewRequest("POST", e.upURL+cap.URL.RequestURI(), strings.NewReader(capBody))
		r.Header = cap.Header.Clone()
		r.Host = cap.Host
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || problemReason(b) != "replayed" {
			t.Errorf("replayed: %d %s", resp.StatusCode, b)
		}
		if n := e.handled.Load(); n != before {
			t.Errorf("the upstream's handler ran %d times for refused requests", n-before)
		}
	})
}

func TestUpstreamSigningTamperedInTransit(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		e := newTrustEnv(t, fromURL, kind)
		tests := []struct {
			name   string
			tamper func(*http.Request)
			status int
			reason string
		}{
			{"path", func(r *http.Request) { r.URL.Opaque = ""; r.URL.Path = "/v1/orders/other" }, 401, "bad-signature"},
			{"query", func(r *http.Request) { r.URL.RawQuery = "qty=1000" }, 401, "bad-signature"},
			{"method", func(r *http.Request) { r.Method = "PUT" }, 401, "bad-signature"},
			{"owner", func(r *http.Request) { r.Header.Set("X-Signet-Owner", "root") }, 401, "bad-signature"},
			{"scopes", func(r *http.Request) { r.Header.Set("X-Signet-Scopes", "admin") }, 401, "bad-signature"},
			{"request id", func(r *http.Request) { r.Header.Set("X-Request-Id", "other") }, 401, "bad-signature"},
			{"added identity field", func(r *http.Request) { r.Header.Set("X-Signet-Admin", "true") }, 401, "missing-component"},
			{"added identity field, underscores", func(r *http.Request) { r.Header["X_Signet_Admin"] = []string{"true"} }, 401, "missing-component"},
			{"body, same length", func(r *http.Request) {
				r.Body = io.NopCloser(strings.NewReader(`{"qty":9}`))
			}, 401, "digest-mismatch"},
			{"digest and body", func(r *http.Request) {
				r.Body = io.NopCloser(strings.NewReader(`{"qty":9}`))
				d, _ := httpsig.ContentDigest("", []byte(`{"qty":9}`))
				r.Header.Set("Content-Digest", d)
			}, 401, "bad-signature"},
			{"signature removed", func(r *http.Request) {
				r.Header.Del("Signature")
				r.Header.Del("Signature-Input")
			}, 401, "missing-signature"},
		}
		for _, tc := range tests {
			e.tamper.Store(&tc.tamper)
			before := e.handled.Load()
			resp, b := send(t, e.writer, "POST", e.gw.URL+"/v1/orders/1?qty=1", `{"qty":1}`, nil)
			if resp.StatusCode != tc.status || problemReason(b) != tc.reason {
				t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
			}
			if e.handled.Load() != before {
				t.Errorf("%s: the upstream's handler ran", tc.name)
			}
		}
		e.tamper.Store(nil)
		if resp, b := send(t, e.writer, "POST", e.gw.URL+"/v1/orders/1?qty=1", `{"qty":1}`, nil); resp.StatusCode != 200 {
			t.Errorf("untouched: %d %s", resp.StatusCode, b)
		}
	})
}

// TestUpstreamKeyRotation rotates the gateway's key while requests flow:
// the successor is published, then signs; the upstream, which fetched the
// set before the rotation, learns the new key when it first meets it, and
// no request is refused.
func TestUpstreamKeyRotation(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		e := newTrustEnv(t, fromURL, kind)
		old := e.ring.Load()
		if resp, b := send(t, e.writer, "GET", e.gw.URL+"/v1/orders/0", "", nil); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b) // the upstream has fetched the set of one key
		}
		var (
			stop    atomic.Bool
			wg      sync.WaitGroup
			mu      sync.Mutex
			kids    = map[string]int{}
			refused []string
			sent    atomic.Int64
		)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					method, body := "GET", ""
					if i%2 == 1 {
						method, body = "POST", `{"n":1}`
					}
					resp, b := send(t, e.writer, method, e.gw.URL+"/v1/orders/x", body, nil)
					sent.Add(1)
					mu.Lock()
					if resp.StatusCode != 200 {
						refused = append(refused, fmt.Sprintf("%d %s", resp.StatusCode, b))
					} else {
						var got echo
						json.Unmarshal(b, &got)
						kids[got.Vouched.GatewayKeyID]++
					}
					mu.Unlock()
				}
			}()
		}
		waitSent := func(n int64) {
			for target := sent.Load() + n; sent.Load() < target; {
				time.Sleep(time.Millisecond)
			}
		}
		waitSent(20)
		rotated := &keyring.Ring{Keys: slices.Clone(old.Keys)}
		next, err := rotated.Rotate(time.Now(), 0, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		e.ring.Store(rotated) // published first (the admin listener serves the ring in force)
		if err := e.g.SetKeyring(rotated); err != nil {
			t.Error(err)
		}
		waitSent(50)
		stop.Store(true)
		wg.Wait()
		if len(refused) > 0 {
			t.Fatalf("%d of %d requests refused during the rotation, first: %s", len(refused), sent.Load(), refused[0])
		}
		if kids[old.Keys[0].ID] == 0 || kids[next.ID] == 0 || len(kids) != 2 {
			t.Errorf("signed by %v; want both %s and %s", kids, old.Keys[0].ID, next.ID)
		}
	})
}

func TestUpstreamSigningNeedsKeys(t *testing.T) {
	p, err := policy.Parse("", []byte("upstream_signing: true\nupstream: http://127.0.0.1:1\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = gateway.New(gateway.Config{Policy: p, Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: httpsig.KeyMap{}, Nonces: memory.New(memory.Options{})}}})
	if err == nil || !strings.Contains(err.Error(), "upstream_signing") {
		t.Fatalf("err = %v", err)
	}
}

func forKinds(t *testing.T, f func(t *testing.T, kind string)) {
	for _, kind := range upstreamKinds {
		t.Run(kind, func(t *testing.T) { f(t, kind) })
	}
}

// nodeTrust is a node:http server behind trustGateway that answers what
// the gateway vouched for, as the Go upstream of these tests does, and
// says "handled" on its output for each request it passed on.
const nodeTrust = `
import http from 'node:http';
const { trustGateway } = await import(process.argv[2]);
const trust = trustGateway({ jwksUrl: process.argv[3], minInterval: 20 });
const srv = http.createServer(trust.handler((req, res) => {
  console.log('handled');
  const id = req.signet, v = req.signetGateway;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({
    Vouched: { KeyID: id ? id.keyId : '', Owner: id ? id.owner : '', Scopes: id ? id.scopes : null, Public: v.public, RequestID: v.requestId, GatewayKeyID: v.keyId },
    Identity: id ? { KeyID: id.keyId, Owner: id.owner, Scopes: id.scopes } : null,
    Body: req.rawBody ? req.rawBody.toString() : '', Path: req.url,
  }));
}));
srv.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: srv.address().port })));
`

// startNodeTrust starts nodeTrust with the package of clients/js and
// returns its URL. Without node the test fails under CI=true and is
// skipped elsewhere.
func startNodeTrust(t *testing.T, jwksURL string, handled *atomic.Int64) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is needed: %v", err)
		}
		t.Skipf("node is needed: %v", err)
	}
	pkg, err := filepath.Abs("../clients/js/server.js")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "trust.mjs")
	if err := os.WriteFile(script, []byte(nodeTrust), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, node, script, (&url.URL{Scheme: "file", Path: pkg}).String(), jwksURL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = newTestWriter(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("node did not start: %v", sc.Err())
	}
	var hello struct{ Port int }
	if err := json.Unmarshal(sc.Bytes(), &hello); err != nil || hello.Port == 0 {
		t.Fatalf("node said %q", sc.Text())
	}
	go func() {
		for sc.Scan() {
			if sc.Text() == "handled" {
				handled.Add(1)
			}
		}
	}()
	return fmt.Sprintf("http://127.0.0.1:%d", hello.Port)
}

// BenchmarkUpstreamSigning measures what upstream signing costs: the
// gateway forwarding the reference request without it, with it, and with
// it to an upstream behind middleware.TrustGateway (pinned key), all on
// loopback.
func BenchmarkUpstreamSigning(b *testing.B) {
	ring, _ := keyring.New(time.Now())
	trust, err := middleware.TrustGateway(middleware.TrustOptions{Keys: map[string]ed25519.PublicKey{ring.Keys[0].ID: ring.Keys[0].Public()}})
	if err != nil {
		b.Fatal(err)
	}
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ok":true,"read":%d}`, n)
	})
	plainAPI := httptest.NewServer(answer)
	defer plainAPI.Close()
	trustAPI := httptest.NewServer(trust(answer))
	defer trustAPI.Close()
	key, _ := httpsig.NewHMACKey([]byte(strings.Repeat("k", 32)))
	newGateway := func(api string, signing bool) http.Handler {
		u, _ := url.Parse(api)
		g, err := gateway.New(gateway.Config{
			Upstream: u, Keyring: ring, UpstreamSigning: signing,
			Verify: middleware.Options{Verifier: httpsig.Verifier{
				Keys:   httpsig.KeyMap{"sk_bench": testKey{key, "bench", []string{"orders:write"}}},
				Nonces: memory.New(memory.Options{}),
			}},
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			b.Fatal(err)
		}
		return g.Handler()
	}
	body := []byte(`{"customer":42,"items":[` + strings.Repeat(`{"sku":"B-1","qty":1},`, 44) + `{"sku":"B-2","qty":1}]}`)
	signer := &httpsig.Signer{Key: key, KeyID: "sk_bench"}
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"unsigned", newGateway(plainAPI.URL, false)}, {"signed", newGateway(plainAPI.URL, true)}, {"signed-trust", newGateway(trustAPI.URL, true)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest("POST", "https://api.example.com/v1/orders?customer=42&expand=items", strings.NewReader(string(body)))
					r.RequestURI = r.URL.RequestURI()
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

// TestUpstreamSigningFailsClosed: a gateway whose keys have all expired
// forwards nothing (503); a reload that turns signing off is seen by the
// upstream as requests without the gateway's signature; one that turns
// it on without keys is refused and the policy in force kept.
func TestUpstreamSigningFailsClosed(t *testing.T) {
	e := newTrustEnv(t, fromURL, "go")
	if err := e.g.SetKeyring(&keyring.Ring{Keys: slices.Clone(e.ring.Load().Keys)[:0]}); err == nil {
		t.Error("a keyring without a key that signs now was put in force")
	}
	// Keys that expire while in force: nothing is forwarded unsigned.
	expiring := &keyring.Ring{Keys: slices.Clone(e.ring.Load().Keys)}
	expiring.Keys[0].Expires = time.Now().Add(time.Second)
	if err := e.g.SetKeyring(expiring); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(expiring.Keys[0].Expires))
	before := e.handled.Load()
	// The gateway's response signing notices first (no-response-key); a
	// gateway that did not sign responses would answer unavailable.
	if resp, b := send(t, e.writer, "GET", e.gw.URL+"/v1/orders/1", "", nil); resp.StatusCode != 503 || (problemReason(b) != "unavailable" && problemReason(b) != "no-response-key") {
		t.Errorf("no valid key: %d %s", resp.StatusCode, b)
	}
	if resp, b := send(t, nil, "GET", e.gw.URL+"/healthz", "", nil); resp.StatusCode != 503 {
		t.Errorf("no valid key, public route: %d %s", resp.StatusCode, b)
	}
	if e.handled.Load() != before {
		t.Error("the upstream got a request the gateway could not sign")
	}
	if err := e.g.SetKeyring(e.ring.Load()); err != nil {
		t.Fatal(err)
	}
	if resp, b := send(t, e.writer, "GET", e.gw.URL+"/v1/orders/1", "", nil); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}

	old := e.g.Policy()
	text := strings.Replace(fmt.Sprintf(trustPolicy, old.Upstreams["api"].URL), "upstream_signing: true", "upstream_signing: false", 1)
	off, err := policy.Parse("off.yaml", []byte(text), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.g.SetPolicy(off); err != nil {
		t.Fatal(err)
	}
	if resp, b := send(t, e.writer, "GET", e.gw.URL+"/v1/orders/1", "", nil); resp.StatusCode != 401 || problemReason(b) != "missing-signature" {
		t.Errorf("signing off: the upstream answered %d %s", resp.StatusCode, b)
	}
	e.g.SetKeyring(nil)
	if err := e.g.SetPolicy(old); err == nil || !strings.Contains(err.Error(), "upstream_signing") {
		t.Errorf("signing on without keys: %v", err)
	}
	if e.g.Policy() != off {
		t.Error("the policy in force changed")
	}
}

// TestUpstreamSigningWebSocket: the upgrade request is signed by the
// gateway and verified by the upstream before it switches.
func TestUpstreamSigningWebSocket(t *testing.T) {
	e := newTrustEnv(t, fromURL, "go")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, _ := http.NewRequest("GET", e.gw.URL+"/v1/orders/stream", nil)
	if err := e.writer.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.gw.URL, "http")+"/v1/orders/stream", &websocket.DialOptions{HTTPHeader: r.Header})
	if err != nil {
		t.Fatalf("%v (%v)", err, resp)
	}
	defer c.CloseNow()
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello acme" {
		t.Fatalf("%q %v", msg, err)
	}
	// Straight to the upstream: refused before it switches.
	_, resp, err = websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.upURL, "http")+"/v1/orders/stream", &websocket.DialOptions{HTTPHeader: http.Header{"X-Signet-Owner": {"acme"}}})
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("direct upgrade: %v %v", resp, err)
	}
}

// TestUpstreamSigningCoversWrittenTarget: under an upstream URL with a
// base path or a query, the gateway's signature covers the target it
// writes (the base path and query with the client's), not the client's
// target alone: the upstream verifies it, and a request moved out of the
// base path, or stripped of the URL's query, on the way is refused.
func TestUpstreamSigningCoversWrittenTarget(t *testing.T) {
	ring, err := keyring.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	trust, err := middleware.TrustGateway(middleware.TrustOptions{Keys: map[string]ed25519.PublicKey{ring.Keys[0].ID: ring.Keys[0].Public()}})
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(trust(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RequestURI)
	})))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)
	// A party between the gateway and the upstream, which may write
	// another target than the gateway wrote.
	var moved atomic.Pointer[string]
	between := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		u := *upURL
		u.Opaque, u.RawQuery = pr.In.URL.EscapedPath(), pr.In.URL.RawQuery
		if p := moved.Load(); p != nil {
			u.Opaque, u.RawQuery, _ = strings.Cut(*p, "?")
		}
		pr.Out.URL = &u
		pr.Out.Host = pr.In.Host
	}})
	defer between.Close()
	for _, tc := range []struct{ base, want string }{
		{"/api", "/api/v1/orders?x=1"},
		{"/api/", "/api/v1/orders?x=1"},
		{"/?tenant=7", "/v1/orders?tenant=7&x=1"},
		{"/api?tenant=7", "/api/v1/orders?tenant=7&x=1"},
	} {
		e := newEnv(t, func(c *gateway.Config) {
			c.Upstream, _ = url.Parse(between.URL + tc.base)
			c.Keyring, c.UpstreamSigning = ring, true
		})
		moved.Store(nil)
		if resp, body := e.send(t, e.hmac, "GET", "/v1/orders?x=1", "", nil); resp.StatusCode != 200 || body != tc.want {
			t.Errorf("upstream %s: %d %s, want 200 %s", tc.base, resp.StatusCode, body, tc.want)
		}
		// The client's own target, as signed by the client: not what the
		// gateway forwarded.
		target := "/v1/orders?x=1"
		moved.Store(&target)
		if resp, body := e.send(t, e.hmac, "GET", "/v1/orders?x=1", "", nil); resp.StatusCode != 401 || problemReason([]byte(body)) != "bad-signature" {
			t.Errorf("upstream %s, moved to %s on the way: %d %s, want 401 bad-signature", tc.base, target, resp.StatusCode, body)
		}
	}
}
