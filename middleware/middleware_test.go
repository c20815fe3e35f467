package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// ownedKey is a verifying key that knows its owner, as the key store's are.
type ownedKey struct {
	httpsig.VerifyingKey
	owner  string
	scopes []string
}

func (k ownedKey) Owner() string    { return k.owner }
func (k ownedKey) Scopes() []string { return k.scopes }

type fixture struct {
	srv     *httptest.Server
	signer  *httpsig.Signer
	got     chan seen
	keysErr error
}

type seen struct {
	id   *middleware.Identity
	body string
}

func newFixture(t testing.TB, mutate func(*middleware.Options)) *fixture {
	t.Helper()
	key, _ := httpsig.NewHMACKey(bytes.Repeat([]byte("s"), 32))
	f := &fixture{signer: &httpsig.Signer{Key: key, KeyID: "sk_1"}, got: make(chan seen, 1)}
	keys := httpsig.KeyResolverFunc(func(_ context.Context, id string) (httpsig.VerifyingKey, error) {
		if f.keysErr != nil {
			return nil, f.keysErr
		}
		if id != "sk_1" {
			return nil, httpsig.ErrUnknownKey
		}
		return ownedKey{key, "acme", []string{"orders:read"}}, nil
	})
	opts := middleware.Options{Verifier: httpsig.Verifier{Keys: keys, Nonces: memory.New(memory.Options{})}}
	if mutate != nil {
		mutate(&opts)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.FromContext(r.Context())
		b, _ := io.ReadAll(r.Body)
		f.got <- seen{id, string(b)}
		io.WriteString(w, "ok")
	})
	f.srv = httptest.NewServer(middleware.Verify(opts)(app))
	t.Cleanup(f.srv.Close)
	return f
}

// do sends a request, signed unless sign is nil, and returns the response
// and its body.
func (f *fixture) do(t *testing.T, method, path, body string, prepare func(*http.Request)) (*http.Response, string) {
	t.Helper()
	r, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	r.Header.Set("Content-Type", "application/json")
	if err := f.signer.SignRequest(r, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(r)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func problemOf(t *testing.T, resp *http.Response, body string) middleware.Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, body %s", ct, body)
	}
	var p middleware.Problem
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != resp.StatusCode {
		t.Fatalf("problem status %d, response %d", p.Status, resp.StatusCode)
	}
	return p
}

func TestAccepted(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := f.do(t, "POST", "/v1/orders?customer=42", `{"sku":"x"}`, nil)
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	s := <-f.got
	if s.body != `{"sku":"x"}` {
		t.Fatalf("handler got body %q", s.body)
	}
	if s.id.KeyID != "sk_1" || s.id.Owner != "acme" || !s.id.HasScope("orders:read") || s.id.Alg != httpsig.AlgHMACSHA256 {
		t.Fatalf("identity %+v", s.id)
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name    string
		prepare func(r *http.Request)
		status  int
		reason  httpsig.Reason
	}{
		{"unsigned", func(r *http.Request) { r.Header.Del("Signature"); r.Header.Del("Signature-Input") }, 401, httpsig.ReasonMissingSignature},
		{"garbled", func(r *http.Request) { r.Header.Set("Signature-Input", "(((") }, 401, httpsig.ReasonMalformedSignature},
		{"tampered path", func(r *http.Request) { r.URL.Path = "/v1/refunds" }, 401, httpsig.ReasonBadSignature},
		{"tampered header", func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, 401, httpsig.ReasonBadSignature},
		{"tampered body", func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"sku":"y"}`))
		}, 401, httpsig.ReasonDigestMismatch},
		{"unknown key", func(r *http.Request) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), "sk_1", "sk_2", 1))
		}, 401, httpsig.ReasonUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(t, "POST", "/v1/orders", `{"sku":"x"}`, tt.prepare)
			p := problemOf(t, resp, body)
			if resp.StatusCode != tt.status || p.Type != middleware.DefaultProblemBase+string(tt.reason) {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, p.Type, tt.status, tt.reason)
			}
			if resp.Header.Get("Date") == "" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Signature ") {
				t.Fatalf("header %v", resp.Header)
			}
			want := `sig1=("@method" "@authority" "@path" "content-type" "content-digest")`
			if got := resp.Header.Get("Accept-Signature"); got != want {
				t.Fatalf("Accept-Signature %q, want %q", got, want)
			}
			if p.SignatureBase != "" {
				t.Fatal("signature base shown outside debug mode")
			}
			select {
			case s := <-f.got:
				t.Fatalf("handler reached with %+v", s)
			default:
			}
		})
	}
}

func TestReplay(t *testing.T) {
	f := newFixture(t, nil)
	r, _ := http.NewRequest("GET", f.srv.URL+"/v1/orders/7", nil)
	if err := f.signer.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{200, 401} {
		resp, err := http.DefaultClient.Do(r.Clone(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("send %d: %d %s", i, resp.StatusCode, body)
		}
		if i == 1 {
			if p := problemOf(t, resp, string(body)); !strings.HasSuffix(p.Type, "/replayed") {
				t.Fatalf("problem %+v", p)
			}
		} else {
			<-f.got
		}
	}
}

func TestBodyLimit(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.MaxBodyBytes = 1024 })
	big := strings.Repeat("x", 2048)
	// With a Content-Length.
	resp, body := f.do(t, "POST", "/upload", big, nil)
	if p := problemOf(t, resp, body); resp.StatusCode != 413 || !strings.HasSuffix(p.Type, "/body-too-large") {
		t.Fatalf("%d %+v", resp.StatusCode, p)
	}
	// Chunked, without one.
	resp, body = f.do(t, "POST", "/upload", big, func(r *http.Request) {
		r.ContentLength = -1
		r.Body = io.NopCloser(strings.NewReader(big))
	})
	if resp.StatusCode != 413 {
		t.Fatalf("chunked: %d %s", resp.StatusCode, body)
	}
	// At the limit it passes.
	resp, _ = f.do(t, "POST", "/upload", big[:1024], nil)
	if resp.StatusCode != 200 {
		t.Fatalf("at the limit: %d", resp.StatusCode)
	}
	<-f.got
}

func TestFailClosed(t *testing.T) {
	f := newFixture(t, nil)
	f.keysErr = errors.New("pq: connection refused password=hunter2")
	resp, body := f.do(t, "GET", "/", "", nil)
	p := problemOf(t, resp, body)
	if resp.StatusCode != 503 || !strings.HasSuffix(p.Type, "/unavailable") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %+v", resp.StatusCode, p)
	}
	if strings.Contains(body, "hunter2") || strings.Contains(body, "pq:") {
		t.Fatalf("dependency error leaked to the client: %s", body)
	}

	down := newFixture(t, func(o *middleware.Options) { o.Verifier.Nonces = failingNonces{} })
	resp, body = down.do(t, "GET", "/", "", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("nonce store down: %d %s", resp.StatusCode, body)
	}
}

type failingNonces struct{}

func (failingNonces) Remember(context.Context, string, string, time.Time, time.Time) error {
	return errors.New("redis: i/o timeout")
}

func TestRequireScopes(t *testing.T) {
	key, _ := httpsig.NewHMACKey(bytes.Repeat([]byte("s"), 32))
	keys := httpsig.KeyResolverFunc(func(context.Context, string) (httpsig.VerifyingKey, error) {
		return ownedKey{key, "acme", []string{"orders:read"}}, nil
	})
	opts := middleware.Options{Verifier: httpsig.Verifier{Keys: keys, Nonces: memory.New(memory.Options{})}, ProblemBase: "https://api.example.com/problems/"}
	verify := middleware.Verify(opts)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mux := http.NewServeMux()
	mux.Handle("/read", verify(middleware.RequireScopes(opts, "orders:read")(ok)))
	mux.Handle("/admin", verify(middleware.RequireScopes(opts, "admin")(ok)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	signer := &httpsig.Signer{Key: key, KeyID: "sk_1"}
	for path, want := range map[string]int{"/read": 200, "/admin": 403} {
		r, _ := http.NewRequest("GET", srv.URL+path, nil)
		signer.SignRequest(r, nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if want == 403 && problemOf(t, resp, string(body)).Type != "https://api.example.com/problems/insufficient-scope" {
			t.Fatalf("%s: %s", path, body)
		}
	}
}

func TestDebug(t *testing.T) {
	f := newFixture(t, func(o *middleware.Options) { o.Verifier.Debug = true })
	resp, body := f.do(t, "GET", "/a", "", func(r *http.Request) { r.URL.Path = "/b" })
	p := problemOf(t, resp, body)
	if !strings.Contains(p.SignatureBase, "\"@path\": /b\n") {
		t.Fatalf("debug base %q", p.SignatureBase)
	}
}

func TestObserve(t *testing.T) {
	var outcomes []middleware.Outcome
	f := newFixture(t, func(o *middleware.Options) {
		o.Observe = func(_ *http.Request, out middleware.Outcome) { outcomes = append(outcomes, out) }
	})
	f.do(t, "GET", "/", "", nil)
	<-f.got
	f.do(t, "GET", "/", "", func(r *http.Request) { r.Method = "HEAD" })
	if len(outcomes) != 2 || outcomes[0].Status != 0 || outcomes[0].KeyID != "sk_1" || outcomes[1].Reason != httpsig.ReasonBadSignature || outcomes[1].KeyID != "sk_1" {
		t.Fatalf("outcomes %+v", outcomes)
	}
}

func TestOptionsChecked(t *testing.T) {
	mustPanic := func(name string, o middleware.Options) {
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		middleware.Verify(o)
	}
	mustPanic("no keys", middleware.Options{Verifier: httpsig.Verifier{Nonces: memory.New(memory.Options{})}})
	mustPanic("no nonces", middleware.Options{Verifier: httpsig.Verifier{Keys: httpsig.KeyMap{}}})
	// Without a nonce requirement, no nonce store is needed.
	middleware.Verify(middleware.Options{Verifier: httpsig.Verifier{Keys: httpsig.KeyMap{}, Policy: httpsig.Policy{RequiredParams: []string{"created", "keyid"}}}})
}

// FuzzHeaders sends arbitrary signature fields over the wire: the answer
// is always a 401 with a reason, never a 5xx.
func FuzzHeaders(f *testing.F) {
	f.Add(`sig1=("@method");created=1;keyid="sk_1";nonce="n"`, "sig1=:AAAA:", "sha-256=:AAAA:")
	f.Add("", "", "")
	f.Add("sig1=(", "sig1", "x")
	fx := newFixture(f, nil)
	f.Fuzz(func(t *testing.T, input, sig, digest string) {
		r := httptest.NewRequest("POST", "/x", strings.NewReader("body"))
		r.Header.Set("Signature-Input", input)
		r.Header.Set("Signature", sig)
		r.Header.Set("Content-Digest", digest)
		w := httptest.NewRecorder()
		fx.srv.Config.Handler.ServeHTTP(w, r)
		if w.Code != 401 {
			t.Fatalf("status %d for %q %q %q: %s", w.Code, input, sig, digest, w.Body)
		}
	})
}

// TestStructuredComponents: middleware.Options holds an httpsig.Verifier
// whole, so a server can verify ;key and ;sf components of a structured
// field that is not registered (issue 10 item 1: Structured was lost).
func TestStructuredComponents(t *testing.T) {
	covered, err := httpsig.ParseComponents(`"@method" "@authority" "@path" "x-tenant";key="id" "x-tenant";sf`)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]httpsig.FieldType{"x-tenant": httpsig.FieldDictionary}
	send := func(f *fixture) int {
		r, _ := http.NewRequest("GET", f.srv.URL+"/v1/orders", nil)
		r.Header.Set("X-Tenant", "id=7,  region=eu") // signed as id=7, region=eu
		s := *f.signer
		s.Components, s.Structured = covered, types
		if err := s.SignRequest(r, nil); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The signer normalised the field: a verifier that does not know its
	// type reads it raw, or not at all, and refuses.
	f := newFixture(t, nil)
	if code := send(f); code != http.StatusUnauthorized {
		t.Fatalf("without Structured: %d, want 401", code)
	}
	f = newFixture(t, func(o *middleware.Options) { o.Verifier.Structured = types })
	if code := send(f); code != http.StatusOK {
		t.Fatalf("with Structured: %d, want 200", code)
	}
}
