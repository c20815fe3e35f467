package middleware_test

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/middleware"
)

// gatewaySign signs r as a gateway does, with k.
func gatewaySign(t *testing.T, k keyring.Key, r *http.Request) {
	t.Helper()
	sk, err := k.Signer()
	if err != nil {
		t.Fatal(err)
	}
	comps, _ := httpsig.ParseComponents(`@method @authority @path x-signet-key-id x-signet-owner x-signet-scopes x-request-id`)
	r.Header.Set("X-Signet-Key-Id", "sk_client")
	r.Header.Set("X-Signet-Owner", "acme")
	r.Header.Set("X-Signet-Scopes", "a,b")
	r.Header.Set("X-Request-Id", "rid")
	s := httpsig.Signer{Key: sk, KeyID: k.ID, Label: "signet", Tag: "signet-gateway", Components: comps}
	if err := s.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
}

func problemType(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var p middleware.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	return p.Type[strings.LastIndexByte(p.Type, '/')+1:]
}

func TestTrustGatewayOptions(t *testing.T) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	for _, tc := range []struct {
		name string
		o    middleware.TrustOptions
		want string
	}{
		{"none", middleware.TrustOptions{}, "one of"},
		{"two", middleware.TrustOptions{JWKSURL: "https://gw/keys", Keys: map[string]ed25519.PublicKey{"k": pub}}, "one of"},
		{"plain http elsewhere", middleware.TrustOptions{JWKSURL: "http://10.0.0.5:9090/.well-known/signet-keys"}, "plain http"},
		{"relative", middleware.TrustOptions{JWKSURL: "/keys"}, "absolute"},
		{"short key", middleware.TrustOptions{Keys: map[string]ed25519.PublicKey{"k": pub[:5]}}, "Ed25519"},
		{"missing file", middleware.TrustOptions{JWKSFile: "/nonexistent/keys.json"}, "no such file"},
	} {
		if _, err := middleware.TrustGateway(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, o := range []middleware.TrustOptions{
		{JWKSURL: "http://10.0.0.5:9090/.well-known/signet-keys", AllowHTTP: true},
		{JWKSURL: "http://127.0.0.1:9090/.well-known/signet-keys"},
		{JWKSURL: "https://gw.internal/.well-known/signet-keys"},
	} {
		if _, err := middleware.TrustGateway(o); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// TestTrustGatewayKeySet: a set that cannot be fetched fails closed; an
// expired key is refused; a key dropped from the set stays refused.
func TestTrustGatewayKeySet(t *testing.T) {
	ring, _ := keyring.New(time.Now().Add(-time.Hour))
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	var fetches atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if s := int(status.Load()); s != 200 {
			w.WriteHeader(s)
			return
		}
		b, _ := ring.JWKS(time.Now().Add(-time.Hour)) // expired keys included, to test the verifier
		w.Write(b)
	}))
	defer jwks.Close()
	trust, err := middleware.TrustGateway(middleware.TrustOptions{JWKSURL: jwks.URL, MinInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int32
	h := trust(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		v, _ := middleware.VouchedFromContext(r.Context())
		id, _ := middleware.FromContext(r.Context())
		if v.Owner != "acme" || id.Owner != "acme" || !id.HasScope("b") || v.GatewayKeyID != ring.Keys[0].ID {
			t.Errorf("vouched %+v identity %+v", v, id)
		}
	}))
	do := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://api.test/x", nil)
		gatewaySign(t, ring.Keys[0], r)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := do(); rec.Code != 503 || problemType(t, rec) != "unavailable" {
		t.Fatalf("set not fetched: %d %s", rec.Code, rec.Body)
	}
	status.Store(200)
	if rec := do(); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	// The set cannot be fetched any more: the key in hand keeps verifying.
	status.Store(http.StatusInternalServerError)
	if rec := do(); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	// The key stops being published: refused as expired.
	ring.Keys[0].Expires = time.Now().Add(-time.Minute)
	status.Store(200)
	ring2, _ := keyring.New(time.Now())
	r := httptest.NewRequest("GET", "http://api.test/x", nil)
	gatewaySign(t, ring2.Keys[0], r) // an unknown key makes the set be fetched again
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 401 || problemType(t, rec) != "unknown-key" {
		t.Fatalf("unknown key: %d %s", rec.Code, rec.Body)
	}
	if rec := do(); rec.Code != 401 || problemType(t, rec) != "key-expired" {
		t.Fatalf("expired key: %d %s", rec.Code, rec.Body)
	}
	if reached.Load() != 2 {
		t.Errorf("handler reached %d times", reached.Load())
	}
}
