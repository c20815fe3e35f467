package gateway_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/wiretest"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
	"github.com/signet-dev/signet/replay/memory"
)

// corsEnv is a gateway whose policy allows one web origin, in front of an
// upstream that answers with CORS fields of its own.
type corsEnv struct {
	gwAddr string
	hits   atomic.Int64
	client *httpsig.Signer
}

func newCORSEnv(t *testing.T, corsKey string, flags map[string]string) *corsEnv {
	t.Helper()
	e := &corsEnv{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Write([]byte("from upstream"))
	}))
	t.Cleanup(up.Close)
	ve := &verifyEnv{keys: &keyTable{keys: map[string]testKey{}, state: map[string]error{}}}
	e.client = ve.hmacKey("sk_client", "orders:read")
	file := filepath.Join(t.TempDir(), "signet.yaml")
	writePolicy(t, file, fmt.Sprintf("upstream: %q\n%s", up.URL, corsKey))
	p, err := policy.Load(file, policy.Options{Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{
		Policy: p,
		Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: ve.keys, Nonces: memory.New(memory.Options{})}},
		Logger: slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(g.Handler())
	t.Cleanup(gw.Close)
	e.gwAddr = gw.Listener.Addr().String()
	return e
}

const (
	appOrigin  = "http://app.example.com:8000"
	corsPolicy = "cors:\n  origins: [\"http://APP.example.com:8000\", \"https://admin.example.com:443\"]\n  max_age: 1h\n"
	preflight  = "OPTIONS /v1/orders HTTP/1.1\r\nHost: api.example.com\r\nOrigin: %s\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,content-digest,signature,signature-input,idempotency-key\r\n\r\n"
)

func corsFields(h http.Header) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out = append(out, k)
		}
	}
	return out
}

func TestCORSPreflight(t *testing.T) {
	e := newCORSEnv(t, corsPolicy, nil)
	resp, body := wiretest.Send(t, e.gwAddr, fmt.Sprintf(preflight, appOrigin))
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Fatalf("allowed preflight: %d %v %s", resp.StatusCode, h, body)
	}
	for _, want := range []string{"POST", "DELETE"} {
		if !strings.Contains(h.Get("Access-Control-Allow-Methods"), want) {
			t.Errorf("Access-Control-Allow-Methods %q lacks %s", h.Get("Access-Control-Allow-Methods"), want)
		}
	}
	allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
	for _, want := range []string{"signature", "signature-input", "content-digest", "content-type", "idempotency-key"} {
		if !strings.Contains(", "+allowed+",", ", "+want+",") {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, want)
		}
	}
	if h.Get("Access-Control-Max-Age") != "3600" || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("preflight fields %v", h)
	}
	if h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("credentials allowed: signatures need no cookies")
	}

	// An origin not in the list, or the list's origin on another port or
	// scheme: 403, and no CORS field at all.
	for _, origin := range []string{"http://evil.example.com", "https://app.example.com:8000", "http://app.example.com", "null"} {
		resp, body := wiretest.Send(t, e.gwAddr, fmt.Sprintf(preflight, origin))
		if resp.StatusCode != 403 || !strings.Contains(body, gateway.ReasonOriginNotAllowed) || len(corsFields(resp.Header)) > 0 {
			t.Errorf("preflight from %s: %d %v %s", origin, resp.StatusCode, resp.Header, body)
		}
	}
	// The default port of the scheme is left out, as browsers send it.
	if resp, _ := wiretest.Send(t, e.gwAddr, fmt.Sprintf(preflight, "https://admin.example.com")); resp.StatusCode != 204 {
		t.Errorf("https://admin.example.com: %d", resp.StatusCode)
	}
	if n := e.hits.Load(); n != 0 {
		t.Errorf("%d preflights reached the upstream", n)
	}
}

func TestCORSRequests(t *testing.T) {
	e := newCORSEnv(t, corsPolicy, nil)
	get := "GET /v1/orders/1 HTTP/1.1\r\nHost: api.example.com\r\nOrigin: %s\r\n\r\n"

	resp, body := wiretest.Send(t, e.gwAddr, wiretest.Sign(t, e.client, fmt.Sprintf(get, appOrigin)))
	h := resp.Header
	if resp.StatusCode != 200 || body != "from upstream" || h.Values("Access-Control-Allow-Origin")[0] != appOrigin || len(h.Values("Access-Control-Allow-Origin")) != 1 {
		t.Fatalf("signed request from an allowed origin: %d %v", resp.StatusCode, h)
	}
	if h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("the upstream's CORS fields went through: %v", h)
	}
	for _, want := range []string{"Signature", "Signature-Input", "Content-Digest", "Content-Encoding", "Date", "RateLimit", "Accept-Signature", "X-Request-Id"} {
		if !strings.Contains(", "+h.Get("Access-Control-Expose-Headers")+",", ", "+want+",") {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", h.Get("Access-Control-Expose-Headers"), want)
		}
	}
	// A refusal is readable by the page too, with its Date and
	// Accept-Signature.
	resp, body = wiretest.Send(t, e.gwAddr, fmt.Sprintf(get, appOrigin))
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != appOrigin || !strings.Contains(body, "missing-signature") {
		t.Errorf("refusal to an allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	// Another origin gets the upstream's answer without any CORS field,
	// the upstream's own included.
	resp, body = wiretest.Send(t, e.gwAddr, wiretest.Sign(t, e.client, fmt.Sprintf(get, "http://evil.example.com")))
	if resp.StatusCode != 200 || body != "from upstream" || len(corsFields(resp.Header)) > 0 {
		t.Errorf("another origin: %d %v", resp.StatusCode, resp.Header)
	}
	// An OPTIONS request that is not a preflight is routed and verified
	// as any other.
	resp, _ = wiretest.Send(t, e.gwAddr, "OPTIONS /v1/orders HTTP/1.1\r\nHost: api.example.com\r\nOrigin: "+appOrigin+"\r\n\r\n")
	if resp.StatusCode != 401 {
		t.Errorf("OPTIONS without Access-Control-Request-Method: %d", resp.StatusCode)
	}
}

// TestCORSOff: without a cors key, preflights are requests like others
// (refused unsigned), and the upstream's fields pass unchanged.
func TestCORSOff(t *testing.T) {
	e := newCORSEnv(t, "", nil)
	resp, body := wiretest.Send(t, e.gwAddr, fmt.Sprintf(preflight, appOrigin))
	if resp.StatusCode != 401 || !strings.Contains(body, "missing-signature") || len(corsFields(resp.Header)) > 0 {
		t.Errorf("preflight without cors: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = wiretest.Send(t, e.gwAddr, wiretest.Sign(t, e.client, "GET /x HTTP/1.1\r\nHost: api.example.com\r\nOrigin: "+appOrigin+"\r\n\r\n"))
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("the upstream's own CORS fields: %v", resp.Header)
	}
}

// TestCORSFlag: --cors-origin replaces the file's origins.
func TestCORSFlag(t *testing.T) {
	e := newCORSEnv(t, corsPolicy, map[string]string{policy.FlagCORSOrigin: "http://localhost:3000, http://127.0.0.1:3000"})
	if resp, _ := wiretest.Send(t, e.gwAddr, fmt.Sprintf(preflight, "http://localhost:3000")); resp.StatusCode != 204 || resp.Header.Get("Access-Control-Max-Age") != "3600" {
		t.Errorf("flag origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := wiretest.Send(t, e.gwAddr, fmt.Sprintf(preflight, appOrigin)); resp.StatusCode != 403 {
		t.Errorf("file origin under the flag: %d", resp.StatusCode)
	}
}

// TestCORSIdentityEncoding: with signed responses, a page's request (an
// allowed Origin) reaches the upstream with Accept-Encoding: identity, as
// a page cannot check the signed digest of content its browser decodes;
// other requests, and a page's whose signature covers Accept-Encoding,
// keep the field as sent.
func TestCORSIdentityEncoding(t *testing.T) {
	var got atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(strings.Join(r.Header.Values("Accept-Encoding"), "|"))
	}))
	t.Cleanup(up.Close)
	ve := &verifyEnv{keys: &keyTable{keys: map[string]testKey{}, state: map[string]error{}}}
	client := ve.hmacKey("sk_client", "orders:read")
	p := loadPolicy(t, fmt.Sprintf("upstream: %q\n%s", up.URL, corsPolicy))
	ring, err := keyring.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{
		Policy: p, Keyring: ring,
		Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: ve.keys, Nonces: memory.New(memory.Options{})}},
		Logger: slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(g.Handler())
	t.Cleanup(gw.Close)
	covering := &httpsig.Signer{Key: client.Key, KeyID: client.KeyID, Components: []httpsig.Component{{Name: httpsig.Method}, {Name: httpsig.Authority}, {Name: httpsig.Path}, {Name: "accept-encoding"}}}
	for _, c := range []struct {
		name   string
		signer *httpsig.Signer
		origin string
		want   string
	}{
		{"a page of an allowed origin", client, "Origin: " + appOrigin + "\r\n", "identity"},
		{"no page", client, "", "gzip, deflate, br"},
		{"a page of another origin", client, "Origin: http://evil.example\r\n", "gzip, deflate, br"},
		{"a page whose signature covers Accept-Encoding", covering, "Origin: " + appOrigin + "\r\n", "gzip, deflate, br"},
	} {
		raw := "GET /v1/orders/1 HTTP/1.1\r\nHost: api.example.com\r\n" + c.origin + "Accept-Encoding: gzip, deflate, br\r\n\r\n"
		resp, body := wiretest.Send(t, gw.Listener.Addr().String(), wiretest.Sign(t, c.signer, raw))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.name, resp.StatusCode, body)
		}
		if g := got.Load(); g != c.want {
			t.Errorf("%s: the upstream got Accept-Encoding %q, want %q", c.name, g, c.want)
		}
	}
}
