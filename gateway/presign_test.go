package gateway_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// presignEnv is a gateway with a keyring, serving a policy with routes
// that take presigned URLs by default, for every method, or not at all.
type presignEnv struct {
	g       *gateway.Gateway
	gw      *httptest.Server
	admin   *httptest.Server
	api     *upstream
	logs    *lockedBuffer
	signers map[string]*httpsig.Signer
	verify  *httpsig.ResponseVerifier
}

const presignPolicy = `
upstreams:
  api: {url: "%s"}
%s
routes:
  - {name: files, match: "GET /files/{name...}", upstream: api}
  - {name: jobs, match: "POST /jobs", upstream: api, presigned: true}
  - {name: private, match: "GET /private/{x}", upstream: api, presigned: false}
  - {name: pub, match: "GET /pub/{x}", upstream: api, public: true}
  - {name: ws, match: "/ws", upstream: api}
`

func newPresignEnv(t *testing.T, extra string) *presignEnv {
	t.Helper()
	e := &presignEnv{api: newUpstream(t), logs: &lockedBuffer{}, signers: map[string]*httpsig.Signer{}}
	keys := &keyTable{keys: map[string]testKey{}, state: map[string]error{}}
	for id, scopes := range map[string][]string{
		"sk_presign": {middleware.ScopePresign},
		"sk_only":    {middleware.ScopePresignOnly},
		"sk_plain":   {"files:read"},
	} {
		secret := make([]byte, 32)
		rand.Read(secret)
		k, _ := httpsig.NewHMACKey(secret)
		keys.keys[id] = testKey{k, "owner-" + id, scopes}
		e.signers[id] = &httpsig.Signer{Key: k, KeyID: id}
	}
	p := loadPolicy(t, fmt.Sprintf(presignPolicy, e.api.srv.URL, extra))
	ring, err := keyring.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.g, err = gateway.New(gateway.Config{
		Policy: p, Keyring: ring,
		Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: keys, Nonces: memory.New(memory.Options{})}},
		// Debug: every request is logged.
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.gw = httptest.NewServer(e.g.Handler())
	e.admin = httptest.NewServer(e.g.AdminHandler())
	t.Cleanup(e.gw.Close)
	t.Cleanup(e.admin.Close)
	e.verify = &httpsig.ResponseVerifier{Keys: &client.JWKS{URL: e.gw.URL + gateway.KeysPath}}
	return e
}

func (e *presignEnv) presign(t *testing.T, keyID, method, target string, o httpsig.PresignOptions) string {
	t.Helper()
	o.Method = method
	u, err := e.signers[keyID].Presign(e.gw.URL+target, o)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// get sends a request to rawURL as written, checks that the response is
// signed by the gateway, and returns its status, tag and body.
func (e *presignEnv) do(t *testing.T, method, rawURL string, body string, sign *httpsig.Signer) (int, string, string) {
	t.Helper()
	r, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	if sign != nil {
		if err := sign.SignRequest(r, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res, err := e.verify.Verify(context.Background(), resp, b)
	if err != nil {
		t.Fatalf("%s %s: %d %s: the response does not verify: %v", method, rawURL, resp.StatusCode, b, err)
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, res.Tag, reasonOf(t, resp, string(b))
	}
	return resp.StatusCode, res.Tag, string(b)
}

func TestPresignedThroughGateway(t *testing.T) {
	e := newPresignEnv(t, "")
	hour := httpsig.PresignOptions{Expires: time.Hour}
	once := httpsig.PresignOptions{Expires: time.Hour, SingleUse: true}
	// Escapes, empty pieces, a repeated name: the upstream gets them
	// byte for byte.
	const target = "/files/a%20b,v=1/%7Ex@:!?z=%7e&y=1&&y=2&q=a;b&r=/?"
	single := e.presign(t, "sk_presign", "GET", target, once)
	old := *e.signers["sk_presign"]
	old.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, err := old.Presign(e.gw.URL+"/files/x", hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, url, body string
		status                  int
		tag, reason             string
		seen                    string // the target the upstream received
	}{
		{"single use", "GET", single, "", 200, httpsig.ResponseTag, "", target},
		{"single use, again", "GET", single, "", 401, httpsig.GatewayTag, "replayed", ""},
		{"reusable", "GET", e.presign(t, "sk_presign", "GET", "/files/r", hour), "", 200, httpsig.ResponseTag, "", "/files/r"},
		{"HEAD", "HEAD", e.presign(t, "sk_presign", "HEAD", "/files/r?x", hour), "", 200, httpsig.ResponseTag, "", "/files/r?x"},
		{"presign-only key", "GET", e.presign(t, "sk_only", "GET", "/files/o", hour), "", 200, httpsig.ResponseTag, "", "/files/o"},
		{"expired", "GET", expired, "", 401, httpsig.GatewayTag, "expired", ""},
		{"key without the scope", "GET", e.presign(t, "sk_plain", "GET", "/files/p", hour), "", 403, httpsig.GatewayTag, "insufficient-scope", ""},
		{"parameter changed", "GET", strings.Replace(e.presign(t, "sk_presign", "GET", "/files/c?v=2", hour), "v=2", "v=3", 1), "", 401, httpsig.GatewayTag, "bad-signature", ""},
		{"POST, route allows", "POST", e.presign(t, "sk_presign", "POST", "/jobs?run=1", once), "", 200, httpsig.ResponseTag, "", "/jobs?run=1"},
		{"POST with content", "POST", e.presign(t, "sk_presign", "POST", "/jobs", once), `{"a":1}`, 401, httpsig.GatewayTag, "missing-component", ""},
		{"route refuses presigned", "GET", e.presign(t, "sk_presign", "GET", "/private/1", hour), "", 403, httpsig.GatewayTag, "insufficient-scope", ""},
		{"public route", "GET", e.presign(t, "sk_presign", "GET", "/pub/1", hour), "", 403, httpsig.GatewayTag, "insufficient-scope", ""},
		{"public route, plain", "GET", e.gw.URL + "/pub/1", "", 200, httpsig.ResponseTag, "", "/pub/1"},
		{"no route", "DELETE", e.presign(t, "sk_presign", "DELETE", "/files/x", hour), "", 404, httpsig.GatewayTag, "no-route", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.api.count()
			status, tag, got := e.do(t, tt.method, tt.url, tt.body, nil)
			if status != tt.status || tag != tt.tag || tt.reason != "" && got != tt.reason {
				t.Fatalf("%d %s %s, want %d %s %s", status, tag, got, tt.status, tt.tag, tt.reason)
			}
			if tt.seen == "" {
				if e.api.count() != before {
					t.Fatal("a refused request reached the upstream")
				}
				return
			}
			r, _ := e.api.last()
			if r.RequestURI != tt.seen {
				t.Fatalf("the upstream saw %s, want %s", r.RequestURI, tt.seen)
			}
			if r.Header.Get(gateway.HeaderKeyID) == "" && !strings.HasPrefix(tt.seen, "/pub/") {
				t.Fatal("no identity")
			}
		})
	}
	t.Run("presign-only key, signed request", func(t *testing.T) {
		status, tag, reason := e.do(t, "GET", e.gw.URL+"/files/h", "", e.signers["sk_only"])
		if status != 403 || tag != httpsig.GatewayTag || reason != "insufficient-scope" {
			t.Fatalf("%d %s %s", status, tag, reason)
		}
	})
	// Neither the signatures nor the parameters reach the logs.
	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"accepted"`) || !strings.Contains(logs, "replayed") {
		t.Fatalf("the logs miss the requests:\n%s", logs)
	}
	for _, s := range []string{httpsig.PresignSignatureParam, httpsig.PresignInputParam, "sig1%3D%3A", "sig1=:"} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold %q:\n%s", s, logs)
		}
	}
}

func TestPresignedWebSocket(t *testing.T) {
	e := newPresignEnv(t, "")
	u := e.presign(t, "sk_presign", "GET", "/ws?room=7", httpsig.PresignOptions{Expires: time.Minute, SingleUse: true})
	wsURL := "ws" + strings.TrimPrefix(u, "http")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if in := resp.Header.Get("Signature-Input"); !strings.Contains(in, `tag="`+httpsig.ResponseTag+`"`) {
		t.Errorf("the 101 is not signed as relayed: %q", in)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil || string(msg) != "echo: hi" {
		t.Fatalf("%q %v", msg, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	// Used again: refused before any upgrade.
	_, resp, err = websocket.Dial(ctx, wsURL, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a second use: %v %v", resp, err)
	}
}

func TestSignedResponses(t *testing.T) {
	ring, err := keyring.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *gateway.Config) { c.Keyring = ring })
	setState := func(err error) {
		e.keys.mu.Lock()
		e.keys.state["sk_acme"] = err
		e.keys.mu.Unlock()
	}
	jwks := &client.JWKS{URL: e.gw.URL + gateway.KeysPath}
	v := &httpsig.ResponseVerifier{Keys: jwks}
	check := func(name string, resp *http.Response, body string, status int, tag string) {
		t.Helper()
		if resp.StatusCode != status {
			t.Fatalf("%s: %d %s, want %d", name, resp.StatusCode, body, status)
		}
		res, err := v.Verify(context.Background(), resp, []byte(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Tag != tag || res.KeyID != ring.Keys[0].ID {
			t.Fatalf("%s: tag %s key %s", name, res.Tag, res.KeyID)
		}
	}
	resp, body := e.send(t, e.hmac, "GET", "/v1/orders/7?expand=items", "", nil)
	check("200", resp, body, 200, httpsig.ResponseTag)
	resp, body = e.send(t, e.hmac, "POST", "/v1/orders", `{"sku":"A-1"}`, nil)
	check("POST", resp, body, 200, httpsig.ResponseTag)
	resp, body = e.send(t, nil, "GET", "/v1/orders/7", "", nil)
	check("401", resp, body, 401, httpsig.GatewayTag)
	resp, body = e.send(t, e.hmac, "GET", "/v1/orders/7", "", func(r *http.Request) { r.Header.Set("Upgrade", "h2c") })
	check("400", resp, body, 400, httpsig.GatewayTag)
	setState(httpsig.ErrKeyRevoked)
	resp, body = e.send(t, e.hmac, "GET", "/v1/orders/7", "", nil)
	check("revoked", resp, body, 401, httpsig.GatewayTag)
	setState(errStoreDown)
	resp, body = e.send(t, e.hmac, "GET", "/v1/orders/7", "", nil)
	check("503", resp, body, 503, httpsig.GatewayTag)

	// The upstream down: the gateway's own 502.
	setState(nil)
	e.up.srv.Close()
	resp, body = e.send(t, e.hmac, "GET", "/v1/orders/7", "", nil)
	check("502", resp, body, 502, httpsig.GatewayTag)

	// The key set on both listeners.
	for _, base := range []string{e.gw.URL, e.admin.URL} {
		r, err := http.Get(base + gateway.KeysPath)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		keys, err := keyring.ParseJWKS(b)
		if err != nil || r.StatusCode != 200 || len(keys) != 1 || keys[ring.Keys[0].ID].Key == nil {
			t.Fatalf("%s: %d %s %v", base, r.StatusCode, b, err)
		}
	}
}

var errStoreDown = fmt.Errorf("test: the key store is down")

// TestPresignedBehindProxy: a URL presigned for what the client sees,
// https://api.example.com/api/…, reaches the gateway through a trusted
// proxy that strips /api, and verifies as the client made it.
func TestPresignedBehindProxy(t *testing.T) {
	e := newPresignEnv(t, "trusted_proxies: {cidrs: [127.0.0.0/8, '::1'], prefix: /api}")
	u, err := e.signers["sk_presign"].Presign("https://api.example.com/api/files/x?a=1", httpsig.PresignOptions{Expires: time.Minute, SingleUse: true})
	if err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(u, "https://api.example.com/api")
	send := func() int {
		r, _ := http.NewRequest("GET", e.gw.URL+target, nil)
		r.Header.Set("X-Forwarded-Host", "api.example.com")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-Prefix", "/api")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := send(); s != 200 {
		t.Fatalf("%d", s)
	}
	if r, _ := e.api.last(); r.RequestURI != "/files/x?a=1" || r.Header.Get("X-Forwarded-Prefix") != "/api" {
		t.Fatalf("the upstream got %s %v", r.RequestURI, r.Header)
	}
	if s := send(); s != 401 {
		t.Fatalf("used again: %d", s)
	}
}
