package gateway_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/wiretest"
	"github.com/signet-dev/signet/limit"
	limitmemory "github.com/signet-dev/signet/limit/memory"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

const verifyPolicy = `
upstreams:
  api: {url: "%s"}
routes:
  - {name: public, match: "GET /public/", upstream: api, public: true}
  - {name: orders-create, match: "POST /v1/orders", upstream: api, scopes: [orders:write]}
  - {name: api, match: "/v1/", upstream: api}
`

// verifyEnv is a gateway under a policy, its client listener on loopback
// and its admin listener, with the keys of clients and of servers that
// call the verify API.
type verifyEnv struct {
	keys           *keyTable
	gwAddr         string
	admin          *httptest.Server
	caller         *httpsig.Signer // a server's key, with the verify scope
	client, writer *httpsig.Signer // orders:read; orders:write
}

func newVerifyEnv(t testing.TB) *verifyEnv { return newVerifyEnvWith(t, nil) }

// newVerifyEnvWith is newVerifyEnv with the gateway's Config changed by
// change first.
func newVerifyEnvWith(t testing.TB, change func(*gateway.Config)) *verifyEnv {
	t.Helper()
	e := &verifyEnv{keys: &keyTable{keys: map[string]testKey{}, state: map[string]error{}}}
	e.caller = e.hmacKey("sk_server", gateway.ScopeVerify)
	e.client = e.hmacKey("sk_client", "orders:read")
	e.writer = e.hmacKey("sk_writer", "orders:write")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	t.Cleanup(up.Close)
	p := loadPolicy(t, fmt.Sprintf(verifyPolicy, up.URL))
	cfg := gateway.Config{
		Policy: p,
		Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: e.keys, Nonces: memory.New(memory.Options{})}},
		Logger: slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	}
	if change != nil {
		change(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(g.Handler())
	t.Cleanup(gw.Close)
	e.gwAddr = gw.Listener.Addr().String()
	e.admin = httptest.NewServer(g.AdminHandler())
	t.Cleanup(e.admin.Close)
	return e
}

func (e *verifyEnv) hmacKey(id string, scopes ...string) *httpsig.Signer {
	secret := make([]byte, 32)
	rand.Read(secret)
	k, _ := httpsig.NewHMACKey(secret)
	e.keys.mu.Lock()
	e.keys.keys[id] = testKey{k, "owner-" + id, scopes}
	e.keys.mu.Unlock()
	return &httpsig.Signer{Key: k, KeyID: id}
}

// verdictJSON is what the verify API answers.
type verdictJSON struct {
	Verified        bool               `json:"verified"`
	KeyID           string             `json:"key_id"`
	Owner           *string            `json:"owner"`
	Scopes          []string           `json:"scopes"`
	Alg             string             `json:"alg"`
	Label           string             `json:"label"`
	Created         *int64             `json:"created"`
	Covered         []string           `json:"covered"`
	ContentDigest   *string            `json:"content_digest"`
	Status          int                `json:"status"`
	Reason          string             `json:"reason"`
	Problem         middleware.Problem `json:"problem"`
	AcceptSignature string             `json:"accept_signature"`
	Headers         http.Header        `json:"headers"`
}

// describe turns a raw request into the call a server that received it
// makes.
func describe(raw string) map[string]any {
	line, fields := wiretest.Head([]byte(raw))
	parts := strings.SplitN(line, " ", 3)
	headers := [][]string{}
	authority, hasContent := "", false
	for _, f := range fields {
		headers = append(headers, []string{f.Name, f.Value})
		switch strings.ToLower(f.Name) {
		case "host":
			authority = f.Value
		case "content-length":
			hasContent = f.Value != "0"
		case "transfer-encoding":
			hasContent = true
		}
	}
	return map[string]any{"method": parts[0], "target": parts[1], "authority": authority, "scheme": "http", "headers": headers, "has_content": hasContent}
}

// ask calls the verify API, signed by s (unsigned if nil).
func (e *verifyEnv) ask(t *testing.T, s *httpsig.Signer, call any) (*http.Response, verdictJSON, string) {
	t.Helper()
	body, _ := json.Marshal(call)
	r, _ := http.NewRequest("POST", e.admin.URL+"/v1/verify", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if s != nil {
		if err := s.SignRequest(r, body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var v verdictJSON
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("verdict %s: %v", got, err)
		}
	}
	return resp, v, string(got)
}

// gatewayAnswer sends raw to the gateway's client listener and returns its
// status, reason code and Accept-Signature.
func (e *verifyEnv) gatewayAnswer(t *testing.T, raw string) (int, string, string) {
	t.Helper()
	resp, body := wiretest.Send(t, e.gwAddr, raw)
	var p middleware.Problem
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("gateway answered %d %q", resp.StatusCode, body)
		}
	}
	return resp.StatusCode, p.Type[strings.LastIndexByte(p.Type, '/')+1:], resp.Header.Get("Accept-Signature")
}

const (
	getOrder  = "GET /v1/orders/1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
	postOrder = "POST /v1/orders?customer=42 HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"sku\":\"A-1\"}"
)

// TestVerifyAPIRefusesAsTheGateway describes to the verify API requests
// that the gateway's own listener refuses, each made anew for each side
// (their nonces are spent in the one replay cache), and checks that the
// verdict has the status, reason code and Accept-Signature of the
// gateway's answer.
func TestVerifyAPIRefusesAsTheGateway(t *testing.T) {
	e := newVerifyEnv(t)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edKey, _ := httpsig.NewSigningKey(httpsig.AlgEd25519, edPriv)
	revoked, expired := e.hmacKey("sk_revoked", "orders:read"), e.hmacKey("sk_expired", "orders:read")
	e.keys.state["sk_revoked"], e.keys.state["sk_expired"] = httpsig.ErrKeyRevoked, httpsig.ErrKeyExpired
	unknown := &httpsig.Signer{Key: e.client.Key, KeyID: "sk_nobody"}
	with := func(s *httpsig.Signer, f func(*httpsig.Signer)) *httpsig.Signer {
		c := *s
		f(&c)
		return &c
	}
	comps := func(s string) []httpsig.Component {
		cs, err := httpsig.ParseComponents(s)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	sign := func(s *httpsig.Signer, raw string) func() string {
		return func() string { return wiretest.Sign(t, s, raw) }
	}
	cases := []struct {
		name   string
		raw    func() string
		status int
		reason string
	}{
		{"missing-signature", func() string { return getOrder }, 401, "missing-signature"},
		{"malformed-signature", func() string {
			return strings.Replace(getOrder, "\r\n\r\n", "\r\nSignature-Input: sig1=(\r\nSignature: sig1=:AAAA:\r\n\r\n", 1)
		}, 401, "malformed-signature"},
		{"unknown-key", sign(unknown, getOrder), 401, "unknown-key"},
		{"key-revoked", sign(revoked, getOrder), 401, "key-revoked"},
		{"key-expired", sign(expired, getOrder), 401, "key-expired"},
		{"algorithm-mismatch", sign(&httpsig.Signer{Key: edKey, KeyID: "sk_client"}, getOrder), 401, "algorithm-mismatch"},
		{"missing-component", sign(with(e.client, func(s *httpsig.Signer) { s.Components = comps(`"@method" "@authority"`) }), getOrder), 401, "missing-component"},
		{"expired", sign(with(e.client, func(s *httpsig.Signer) { s.Now = func() time.Time { return time.Now().Add(-time.Hour) } }), getOrder), 401, "expired"},
		{"not-yet-valid", sign(with(e.client, func(s *httpsig.Signer) { s.Now = func() time.Time { return time.Now().Add(time.Hour) } }), getOrder), 401, "not-yet-valid"},
		{"bad-signature", func() string {
			return strings.Replace(wiretest.Sign(t, e.client, getOrder), "/v1/orders/1 ", "/v1/orders/2 ", 1)
		}, 401, "bad-signature"},
		{"insufficient-scope", sign(e.client, postOrder), 403, "insufficient-scope"},
		{"no-route", sign(e.client, strings.Replace(getOrder, "/v1/orders/1", "/elsewhere", 1)), 404, "no-route"},
		{"invalid-target", func() string { return strings.Replace(getOrder, "/v1/orders/1", "/v1/orders/1#top", 1) }, 400, "invalid-target"},
		{"invalid-host", sign(e.client, strings.Replace(getOrder, "api.example.com", "api.example.com:80x", 1)), 400, "invalid-host"},
		{"invalid-target dot-segment", sign(e.client, strings.Replace(getOrder, "/v1/orders/1", "/v1/orders/%2e%2e/admin", 1)), 400, "invalid-target"},
		{"hop-by-hop-field", sign(with(e.client, func(s *httpsig.Signer) { s.Components = comps(`"@method" "@authority" "@path" "x-trace"`) }),
			strings.Replace(getOrder, "\r\n\r\n", "\r\nX-Trace: 1\r\nConnection: x-trace\r\n\r\n", 1)), 400, "hop-by-hop-field"},
		{"invalid-field", sign(with(e.client, func(s *httpsig.Signer) { s.Components = comps(`"@method" "@authority" "@path" "x-trace"`) }),
			strings.Replace(getOrder, "\r\n\r\n", "\r\nX-Trace: 1\r\nX-Trace: \r\n\r\n", 1)), 400, "invalid-field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, reason, accept := e.gatewayAnswer(t, c.raw())
			if status != c.status || reason != c.reason {
				t.Fatalf("the gateway answered %d %s, want %d %s", status, reason, c.status, c.reason)
			}
			resp, v, body := e.ask(t, e.caller, describe(c.raw()))
			if resp.StatusCode != 200 || v.Verified {
				t.Fatalf("verify API: %d %s, want a refusal verdict", resp.StatusCode, body)
			}
			if v.Status != status || v.Reason != reason || v.AcceptSignature != accept {
				t.Errorf("verdict %d %s %q, the gateway %d %s %q", v.Status, v.Reason, v.AcceptSignature, status, reason, accept)
			}
			if v.Problem.Status != status || !strings.HasSuffix(v.Problem.Type, "/"+reason) || v.Problem.Title == "" {
				t.Errorf("verdict problem %+v", v.Problem)
			}
		})
	}
}

// TestVerifyAPIAccepts checks the verdict of a request that passes, and
// that the nonce it spends is spent for the gateway too, and the other
// way round.
func TestVerifyAPIAccepts(t *testing.T) {
	e := newVerifyEnv(t)
	raw := wiretest.Sign(t, e.writer, postOrder)
	resp, v, body := e.ask(t, e.caller, describe(raw))
	if resp.StatusCode != 200 || !v.Verified {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if v.KeyID != "sk_writer" || v.Owner == nil || *v.Owner != "owner-sk_writer" || strings.Join(v.Scopes, ",") != "orders:write" || v.Alg != "hmac-sha256" || v.Label != "sig1" || v.Created == nil {
		t.Errorf("verdict %s", body)
	}
	want := `"@method" "@authority" "@path" "@query" "content-type" "content-digest"`
	if got := strings.Join(v.Covered, " "); got != want {
		t.Errorf("covered %s, want %s", got, want)
	}
	r := wiretest.Parse(t, []byte(raw))
	if v.ContentDigest == nil || *v.ContentDigest != r.Header.Get("Content-Digest") {
		t.Fatalf("content_digest %v, want the field %q", v.ContentDigest, r.Header.Get("Content-Digest"))
	}
	// The caller checks the content; what the gateway refuses as
	// digest-mismatch, the digest named refuses too.
	if err := httpsig.CheckContentDigest(*v.ContentDigest, []byte(`{"sku":"A-1"}`)); err != nil {
		t.Errorf("the content does not match the digest named: %v", err)
	}
	tampered := strings.Replace(wiretest.Sign(t, e.writer, postOrder), `"A-1"`, `"A-9"`, 1)
	if status, reason, _ := e.gatewayAnswer(t, tampered); status != 401 || reason != "digest-mismatch" {
		t.Errorf("gateway: %d %s for a tampered body", status, reason)
	}
	tampered = strings.Replace(wiretest.Sign(t, e.writer, postOrder), `"A-1"`, `"A-9"`, 1)
	if _, v, body = e.ask(t, e.caller, describe(tampered)); !v.Verified || v.ContentDigest == nil {
		t.Fatalf("a request whose content the API does not see: %s", body)
	}
	var ve *httpsig.VerifyError
	if err := httpsig.CheckContentDigest(*v.ContentDigest, []byte(`{"sku":"A-9"}`)); !errors.As(err, &ve) || ve.Reason != httpsig.ReasonDigestMismatch {
		t.Errorf("a tampered body against the digest named: %v", err)
	}

	// A caller that computed the digest of the content it received has
	// Signet check it: a mismatch is the gateway's digest-mismatch.
	digest := func(body string) string {
		d, _ := httpsig.NewDigester(httpsig.DigestSHA256)
		io.WriteString(d, body)
		return d.Value()
	}
	withDigest := func(raw, computed string) map[string]any {
		c := describe(raw)
		c["computed_digest"] = computed
		return c
	}
	_, v, body = e.ask(t, e.caller, withDigest(wiretest.Sign(t, e.writer, postOrder), digest(`{"sku":"A-1"}`)))
	if !v.Verified || !strings.Contains(body, `"content_checked": true`) {
		t.Errorf("computed digest that matches: %s", body)
	}
	gwStatus, gwReason, gwAccept := e.gatewayAnswer(t, strings.Replace(wiretest.Sign(t, e.writer, postOrder), `"A-1"`, `"A-9"`, 1))
	_, v, body = e.ask(t, e.caller, withDigest(wiretest.Sign(t, e.writer, postOrder), digest(`{"sku":"A-9"}`)))
	if v.Verified || v.Status != gwStatus || v.Reason != gwReason || v.AcceptSignature != gwAccept || v.Problem.Signature != "sig1" {
		t.Errorf("computed digest that does not match: %s; the gateway: %d %s %q", body, gwStatus, gwReason, gwAccept)
	}
	both := digest(`{"sku":"A-1"}`)
	d512, _ := httpsig.NewDigester(httpsig.DigestSHA512)
	io.WriteString(d512, `{"sku":"A-1"}`)
	s512 := *e.writer
	s512.Digest = httpsig.DigestSHA512
	if resp, _, body := e.ask(t, e.caller, withDigest(wiretest.Sign(t, &s512, postOrder), both)); resp.StatusCode != 400 || !strings.Contains(body, "sha-512") {
		t.Errorf("computed digest without the field's algorithm: %d %s", resp.StatusCode, body)
	}
	if _, v, body := e.ask(t, e.caller, withDigest(wiretest.Sign(t, &s512, postOrder), both+", "+d512.Value())); !v.Verified {
		t.Errorf("sha-512 field, both computed: %s", body)
	}

	// One replay cache: a request verified through the API is a replay at
	// the gateway, and the other way round.
	if status, reason, _ := e.gatewayAnswer(t, raw); status != 401 || reason != "replayed" {
		t.Errorf("gateway after the API: %d %s", status, reason)
	}
	raw = wiretest.Sign(t, e.writer, postOrder)
	if status, _, _ := e.gatewayAnswer(t, raw); status != 200 {
		t.Fatalf("gateway: %d", status)
	}
	if _, v, _ := e.ask(t, e.caller, describe(raw)); v.Verified || v.Reason != "replayed" {
		t.Errorf("API after the gateway: %+v", v)
	}

	// A request without content: no content_digest; the API speaks for
	// public routes too (the signature is checked all the same).
	_, v, body = e.ask(t, e.caller, describe(wiretest.Sign(t, e.client, strings.Replace(getOrder, "/v1/orders/1", "/public/x", 1))))
	if !v.Verified || v.ContentDigest != nil || !strings.Contains(body, `"content_digest": null`) {
		t.Errorf("public route: %s", body)
	}
}

// TestVerifyAPICaller checks what the call itself gets: only a key with
// the verify scope is answered, a malformed call is 400, and a key store
// that cannot answer is 503 (the caller then fails closed).
func TestVerifyAPICaller(t *testing.T) {
	e := newVerifyEnv(t)
	call := func() map[string]any { return describe(wiretest.Sign(t, e.client, getOrder)) }
	if resp, _, body := e.ask(t, nil, call()); resp.StatusCode != 401 || !strings.Contains(body, "missing-signature") {
		t.Errorf("unsigned call: %d %s", resp.StatusCode, body)
	}
	if resp, _, body := e.ask(t, e.writer, call()); resp.StatusCode != 403 || !strings.Contains(body, "insufficient-scope") {
		t.Errorf("a key without the verify scope: %d %s", resp.StatusCode, body)
	}
	for name, mutate := range map[string]func(map[string]any){
		"scheme":      func(c map[string]any) { c["scheme"] = "ftp" },
		"method":      func(c map[string]any) { c["method"] = "GE T" },
		"target":      func(c map[string]any) { c["target"] = "" },
		"unknown key": func(c map[string]any) { c["body"] = "x" },
		"pair":        func(c map[string]any) { c["headers"] = [][]string{{"Host"}} },
		"field name":  func(c map[string]any) { c["headers"] = [][]string{{"X Y", "1"}} },
		"CRLF":        func(c map[string]any) { c["headers"] = [][]string{{"X-Y", "1\r\nX-Signet-Owner: root"}} },
		"not Latin-1": func(c map[string]any) { c["headers"] = [][]string{{"X-Y", "\u20ac"}} },
		"too many":    func(c map[string]any) { c["headers"] = make([][]string, 257) },
	} {
		c := call()
		mutate(c)
		if resp, _, body := e.ask(t, e.caller, c); resp.StatusCode != 400 || !strings.Contains(body, "invalid-request") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	// Latin-1 values are the octets they stand for: a signature over the
	// UTF-8 octets of "café" verifies when they are sent one per character.
	s := *e.client
	s.Components, _ = httpsig.ParseComponents(`"@method" "@authority" "@path" "x-note"`)
	raw := wiretest.Sign(t, &s, strings.Replace(getOrder, "\r\n\r\n", "\r\nX-Note: caf\xc3\xa9\r\n\r\n", 1))
	c := describe(raw)
	for _, h := range c["headers"].([][]string) {
		if h[0] == "X-Note" {
			h[1] = "caf\u00c3\u00a9"
		}
	}
	if _, v, body := e.ask(t, e.caller, c); !v.Verified {
		t.Errorf("Latin-1 field: %s", body)
	}

	e.keys.mu.Lock()
	e.keys.state["sk_client"] = errors.New("the key store is down")
	e.keys.mu.Unlock()
	if resp, _, body := e.ask(t, e.caller, call()); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "unavailable") || strings.Contains(body, "down") {
		t.Errorf("key store down: %d %s", resp.StatusCode, body)
	}
}

// TestVerifyAPILimits: the verify API applies the rate limits as the
// gateway's listener does, and from the same budget: a key over its rate
// gets the verdict 429 rate-limited, with the RateLimit fields and
// Retry-After its caller is to answer with.
func TestVerifyAPILimits(t *testing.T) {
	lim := limitmemory.New(limitmemory.Options{})
	e := newVerifyEnvWith(t, func(c *gateway.Config) {
		c.Limiter = lim
		c.DefaultRate = limit.Rate{N: 2, Per: time.Hour, Burst: 2}
	})
	resp, v, body := e.ask(t, e.caller, describe(wiretest.Sign(t, e.client, getOrder)))
	if resp.StatusCode != 200 || !v.Verified || len(v.Headers["RateLimit"]) != 1 || len(v.Headers["RateLimit-Policy"]) != 1 {
		t.Fatalf("first: %d %s", resp.StatusCode, body)
	}
	if status, reason, _ := e.gatewayAnswer(t, wiretest.Sign(t, e.client, getOrder)); status != 200 {
		t.Fatalf("second, through the gateway: %d %s", status, reason)
	}
	for _, side := range []string{"verify API", "gateway"} {
		raw := wiretest.Sign(t, e.client, getOrder)
		if side == "gateway" {
			if status, reason, _ := e.gatewayAnswer(t, raw); status != 429 || reason != "rate-limited" {
				t.Errorf("gateway, over the rate: %d %s", status, reason)
			}
			continue
		}
		resp, v, body := e.ask(t, e.caller, describe(raw))
		if resp.StatusCode != 200 || v.Verified || v.Status != 429 || v.Reason != "rate-limited" {
			t.Fatalf("verify API, over the rate: %d %s", resp.StatusCode, body)
		}
		if len(v.Headers["Retry-After"]) != 1 || len(v.Headers["RateLimit"]) != 1 {
			t.Errorf("a limited verdict without its fields: %s", body)
		}
	}
}
