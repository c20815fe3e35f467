package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/sqlite"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// adminEnv is a gateway on a real SQLite key store, with a first admin key
// made as an operator would, straight against the store.
type adminEnv struct {
	keys  *keys.Service
	gw    *httptest.Server
	admin *httptest.Server
	root  *httpsig.Signer
	up    *upstream
	g     *gateway.Gateway
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	return newAdminEnvOn(t, nil)
}

// newAdminEnvOn is newAdminEnv with prepare given the store first, to fill
// it straight (in bulk) before the service opens it.
func newAdminEnvOn(t *testing.T, prepare func(keys.Store)) *adminEnv {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(store)
	}
	ks, err := keys.New(ctx, store, keys.Options{MasterKey: keys.NewMasterKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	up := newUpstream(t)
	u, _ := url.Parse(up.srv.URL)
	g, err := gateway.New(gateway.Config{
		Upstream: u, Admin: ks,
		Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: ks, Nonces: memory.New(memory.Options{})}},
		Logger: slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &adminEnv{g: g, keys: ks, up: up, gw: httptest.NewServer(g.Handler()), admin: httptest.NewServer(g.AdminHandler())}
	t.Cleanup(e.gw.Close)
	t.Cleanup(e.admin.Close)
	c, err := ks.Create(ctx, keys.CreateRequest{Owner: "ops", Scopes: []string{keys.ScopeAdmin}, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e.root = hmacSigner(t, c.Key.ID, c.Secret)
	return e
}

func hmacSigner(t *testing.T, id string, secret []byte) *httpsig.Signer {
	t.Helper()
	k, err := httpsig.NewHMACKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	return &httpsig.Signer{Key: k, KeyID: id}
}

// call sends a signed admin request and decodes the JSON answer into out.
func (e *adminEnv) call(t *testing.T, s *httpsig.Signer, method, path string, in, out any) int {
	t.Helper()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	r, _ := http.NewRequest(method, e.admin.URL+path, bytes.NewReader(body))
	if in == nil {
		r.Body, r.ContentLength = http.NoBody, 0
	} else {
		r.Header.Set("Content-Type", "application/json")
	}
	if s != nil {
		if err := s.SignRequest(r, body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

type created struct {
	Key    keys.Key `json:"key"`
	Secret string   `json:"secret"`
}

type problem struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

func (p problem) reason() string { return p.Type[strings.LastIndexByte(p.Type, '/')+1:] }

func TestAdminKeyLifecycle(t *testing.T) {
	e := newAdminEnv(t)

	// Create a client key through the API: its secret comes back once.
	var c created
	if code := e.call(t, e.root, "POST", "/v1/keys", map[string]any{"owner": "acme", "scopes": []string{"orders:read"}, "label": "ci", "expires": "90d"}, &c); code != 201 {
		t.Fatalf("create: %d %+v", code, c)
	}
	secret, err := base64.StdEncoding.DecodeString(c.Secret)
	if err != nil || len(secret) != 32 || c.Key.Owner != "acme" || c.Key.Expires.IsZero() {
		t.Fatalf("created %+v (secret %d bytes, %v)", c, len(secret), err)
	}
	client := hmacSigner(t, c.Key.ID, secret)
	env := &env{up: e.up, gw: e.gw}
	if resp, body := env.send(t, client, "GET", "/orders", "", nil); resp.StatusCode != 200 || body != "hello acme" {
		t.Fatalf("new key through the gateway: %d %s", resp.StatusCode, body)
	}

	// Show and list, without the secret.
	var k keys.Key
	if code := e.call(t, e.root, "GET", "/v1/keys/"+c.Key.ID, nil, &k); code != 200 || k.ID != c.Key.ID || k.Label != "ci" {
		t.Fatalf("show: %d %+v", code, k)
	}
	var list struct{ Keys []keys.Key }
	if code := e.call(t, e.root, "GET", "/v1/keys?owner=acme", nil, &list); code != 200 || len(list.Keys) != 1 {
		t.Fatalf("list: %d %+v", code, list)
	}

	// A key without the admin scope cannot administer.
	var p problem
	if code := e.call(t, client, "GET", "/v1/keys", nil, &p); code != 403 || p.reason() != "insufficient-scope" {
		t.Fatalf("client key on the admin API: %d %+v", code, p)
	}
	if code := e.call(t, nil, "GET", "/v1/keys", nil, &p); code != 401 || p.reason() != "missing-signature" {
		t.Fatalf("unsigned admin call: %d %+v", code, p)
	}

	// Scopes change, and the gateway tells the upstream at once.
	if code := e.call(t, e.root, "PUT", "/v1/keys/"+c.Key.ID+"/scopes", map[string]any{"scopes": []string{"orders:read", "orders:write"}}, &k); code != 200 {
		t.Fatalf("set scopes: %d %+v", code, k)
	}
	env.send(t, client, "GET", "/orders", "", nil)
	if got, _ := e.up.last(); got.Header.Get(gateway.HeaderScopes) != "orders:read,orders:write" {
		t.Fatalf("upstream scopes %q", got.Header.Get(gateway.HeaderScopes))
	}

	// Rotate: both keys work inside the overlap.
	var rotated created
	if code := e.call(t, e.root, "POST", "/v1/keys/"+c.Key.ID+"/rotate", map[string]any{"overlap": "1h"}, &rotated); code != 201 || rotated.Secret == "" {
		t.Fatalf("rotate: %d %+v", code, rotated)
	}
	newSecret, _ := base64.StdEncoding.DecodeString(rotated.Secret)
	for _, s := range []*httpsig.Signer{client, hmacSigner(t, rotated.Key.ID, newSecret)} {
		if resp, body := env.send(t, s, "GET", "/orders", "", nil); resp.StatusCode != 200 {
			t.Fatalf("%s after rotation: %d %s", s.KeyID, resp.StatusCode, body)
		}
	}

	// Revoke: refused at once.
	if code := e.call(t, e.root, "POST", "/v1/keys/"+c.Key.ID+"/revoke", nil, &k); code != 200 || k.Revoked.IsZero() {
		t.Fatalf("revoke: %d %+v", code, k)
	}
	resp, body := env.send(t, client, "GET", "/orders", "", nil)
	if resp.StatusCode != 401 || reasonOf(t, resp, body) != "key-revoked" {
		t.Fatalf("revoked key: %d %s", resp.StatusCode, body)
	}

	// The key cache is counted.
	resp2, err := http.Get(e.admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	for _, name := range []string{"signet_key_cache_hits_total ", "signet_key_cache_misses_total "} {
		i := bytes.Index(metrics, []byte("\n"+name))
		if i < 0 || bytes.HasPrefix(metrics[i+1+len(name):], []byte("0\n")) {
			t.Errorf("metric %s missing or zero", name)
		}
	}

	// The audit log names the admin key behind each change.
	var audit struct {
		Events []keys.AuditEvent
	}
	if code := e.call(t, e.root, "GET", "/v1/audit?key="+c.Key.ID, nil, &audit); code != 200 || len(audit.Events) < 3 {
		t.Fatalf("audit: %d %+v", code, audit)
	}
	for _, ev := range audit.Events {
		if ev.Actor != "key:"+e.root.KeyID {
			t.Fatalf("audit event %+v has actor %q", ev, ev.Actor)
		}
	}
}

func TestAdminErrors(t *testing.T) {
	e := newAdminEnv(t)
	for _, tt := range []struct {
		name, method, path string
		body               any
		status             int
		reason             string
	}{
		{"unknown key", "GET", "/v1/keys/sk_nope", nil, 404, "not-found"},
		{"revoke unknown", "POST", "/v1/keys/sk_nope/revoke", nil, 404, "not-found"},
		{"unknown field", "POST", "/v1/keys", map[string]any{"owner": "a", "colour": "red"}, 400, "invalid-request"},
		{"no owner", "POST", "/v1/keys", map[string]any{"scopes": []string{"x"}}, 400, "invalid-request"},
		{"bad scope", "POST", "/v1/keys", map[string]any{"owner": "a", "scopes": []string{"Not A Scope"}}, 400, "invalid-request"},
		{"expiry in the past", "POST", "/v1/keys", map[string]any{"owner": "a", "expires": "2001-01-01T00:00:00Z"}, 400, "invalid-request"},
		{"bad expiry", "POST", "/v1/keys", map[string]any{"owner": "a", "expires": "soon"}, 400, "invalid-request"},
		{"malformed public key", "POST", "/v1/keys", map[string]any{"owner": "a", "alg": "ed25519", "public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, 400, "invalid-request"},
		{"bad overlap", "POST", "/v1/keys/" + e.root.KeyID + "/rotate", map[string]any{"overlap": "forever"}, 400, "invalid-request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p problem
			if code := e.call(t, e.root, tt.method, tt.path, tt.body, &p); code != tt.status || p.reason() != tt.reason {
				t.Fatalf("%d %+v, want %d %s", code, p, tt.status, tt.reason)
			}
		})
	}
}
