package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/wiretest"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// testKey is a key as the key store resolves them: it knows its owner.
type testKey struct {
	httpsig.VerifyingKey
	owner  string
	scopes []string
}

func (k testKey) Owner() string    { return k.owner }
func (k testKey) Scopes() []string { return k.scopes }

// keyTable resolves keyids, with a state per key.
type keyTable struct {
	mu    sync.Mutex
	keys  map[string]testKey
	state map[string]error
}

func (t *keyTable) ResolveKey(_ context.Context, id string) (httpsig.VerifyingKey, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.state[id]; err != nil {
		return nil, err
	}
	k, ok := t.keys[id]
	if !ok {
		return nil, httpsig.ErrUnknownKey
	}
	return k, nil
}

// upstream records what reaches the service behind the gateway.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "websocket" {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			typ, msg, err := c.Read(r.Context())
			if err == nil {
				c.Write(r.Context(), typ, append([]byte("echo: "), msg...))
			}
			c.Close(websocket.StatusNormalClosure, "")
			return
		}
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, r)
		u.body = append(u.body, string(b))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello %s", r.Header.Get(gateway.HeaderOwner))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *upstream) last() (*http.Request, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reqs[len(u.reqs)-1], u.body[len(u.body)-1]
}

type env struct {
	up      *upstream
	gw      *httptest.Server
	admin   *httptest.Server
	keys    *keyTable
	hmac    *httpsig.Signer
	ed      *httpsig.Signer
	nowFunc func() time.Time
}

// testWriter sends logs to the test's log, shown only when it fails, until
// the test ends: a gateway's summary of sampled logs may come later.
type testWriter struct {
	t    testing.TB
	done *atomic.Bool
}

func newTestWriter(t testing.TB) testWriter {
	w := testWriter{t, new(atomic.Bool)}
	t.Cleanup(func() { w.done.Store(true) })
	return w
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func newEnv(t *testing.T, mutate func(*gateway.Config)) *env {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	hk, _ := httpsig.NewHMACKey(secret)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	es, _ := httpsig.NewSigningKey(httpsig.AlgEd25519, edPriv)
	ev, _ := httpsig.NewVerifyingKey(httpsig.AlgEd25519, edPriv.Public())
	e := &env{
		up: newUpstream(t),
		keys: &keyTable{keys: map[string]testKey{
			"sk_acme":   {hk, "acme", []string{"orders:read", "orders:write"}},
			"pk_globex": {ev, "globex", nil},
		}, state: map[string]error{}},
		hmac: &httpsig.Signer{Key: hk, KeyID: "sk_acme"},
		ed:   &httpsig.Signer{Key: es, KeyID: "pk_globex"},
	}
	u, _ := url.Parse(e.up.srv.URL)
	cfg := gateway.Config{
		Upstream: u,
		Verify:   middleware.Options{Verifier: httpsig.Verifier{Keys: e.keys, Nonces: memory.New(memory.Options{})}, MaxBodyBytes: 64 << 10},
		Logger:   slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = httptest.NewServer(g.Handler())
	e.admin = httptest.NewServer(g.AdminHandler())
	t.Cleanup(e.gw.Close)
	t.Cleanup(e.admin.Close)
	return e
}

// send signs (when s is not nil) and sends a request through the gateway,
// letting tamper change it after signing.
func (e *env) send(t *testing.T, s *httpsig.Signer, method, path, body string, tamper func(*http.Request)) (*http.Response, string) {
	t.Helper()
	r, _ := http.NewRequest(method, e.gw.URL+path, strings.NewReader(body))
	if body == "" {
		r.Body, r.ContentLength = http.NoBody, 0
	} else {
		r.Header.Set("Content-Type", "application/json")
	}
	if s != nil {
		if err := s.SignRequest(r, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if tamper != nil {
		tamper(r)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func reasonOf(t *testing.T, resp *http.Response, body string) string {
	t.Helper()
	var p middleware.Problem
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("%d %q is not problem+json: %v", resp.StatusCode, body, err)
	}
	return p.Type[strings.LastIndexByte(p.Type, '/')+1:]
}

func TestForwardsWithIdentity(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.send(t, e.hmac, "POST", "/v1/orders?customer=42", `{"sku":"B-1"}`, func(r *http.Request) {
		r.Header.Set("X-Signet-Owner", "root")       // spoofed, after signing
		r.Header.Set("X-Signet-Anything", "spoofed") // any X-Signet-* field
		r.Header.Set("X-Custom", "kept")
	})
	if resp.StatusCode != 200 || body != "hello acme" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	got, gotBody := e.up.last()
	if gotBody != `{"sku":"B-1"}` {
		t.Fatalf("upstream body %q", gotBody)
	}
	h := got.Header
	for k, want := range map[string]string{
		gateway.HeaderKeyID: "sk_acme", gateway.HeaderOwner: "acme", gateway.HeaderScopes: "orders:read,orders:write",
		"X-Custom": "kept", "X-Signet-Anything": "", "X-Forwarded-Proto": "http",
	} {
		if v := h.Values(k); strings.Join(v, "|") != want {
			t.Errorf("upstream %s = %q, want %q", k, v, want)
		}
	}
	if h.Get("Signature") == "" || h.Get("Signature-Input") == "" || h.Get("Content-Digest") == "" {
		t.Error("signature fields were not forwarded")
	}
	if got.Host != strings.TrimPrefix(e.gw.URL, "http://") {
		t.Errorf("upstream Host %q, want the client's", got.Host)
	}
	if got.URL.RequestURI() != "/v1/orders?customer=42" {
		t.Errorf("upstream target %q", got.URL.RequestURI())
	}
	if resp.Header.Get(gateway.HeaderRequestID) == "" || h.Get(gateway.HeaderRequestID) != resp.Header.Get(gateway.HeaderRequestID) {
		t.Errorf("request id: client %q, upstream %q", resp.Header.Get(gateway.HeaderRequestID), h.Get(gateway.HeaderRequestID))
	}
}

func TestSpoofedIdentityCovered(t *testing.T) {
	// Even a spoofed field the signature covers never reaches the upstream.
	e := newEnv(t, nil)
	s := *e.ed
	s.Components = []httpsig.Component{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}, {Name: "x-signet-owner"}}
	r, _ := http.NewRequest("GET", e.gw.URL+"/x", nil)
	r.Header.Set("X-Signet-Owner", "acme")
	if err := s.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got, _ := e.up.last()
	if o := got.Header.Values(gateway.HeaderOwner); len(o) != 1 || o[0] != "globex" {
		t.Fatalf("upstream owner %q", o)
	}
}

func TestStripSignature(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.StripSignature = true })
	resp, _ := e.send(t, e.ed, "GET", "/", "", nil)
	got, _ := e.up.last()
	if resp.StatusCode != 200 || got.Header.Get("Signature") != "" || got.Header.Get("Signature-Input") != "" {
		t.Fatalf("%d, upstream header %v", resp.StatusCode, got.Header)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, nil)
	e.keys.keys["sk_revoked"] = e.keys.keys["sk_acme"]
	e.keys.state["sk_revoked"] = httpsig.ErrKeyRevoked
	e.keys.keys["sk_old"] = e.keys.keys["sk_acme"]
	e.keys.state["sk_old"] = httpsig.ErrKeyExpired
	withKeyID := func(id string) *httpsig.Signer { s := *e.hmac; s.KeyID = id; return &s }
	at := func(d time.Duration) *httpsig.Signer {
		s := *e.hmac
		s.Now = func() time.Time { return time.Now().Add(d) }
		return &s
	}
	big := strings.Repeat("x", 65<<10)
	tests := []struct {
		name   string
		signer *httpsig.Signer
		method string
		body   string
		tamper func(*http.Request)
		status int
		reason string
	}{
		{"unsigned", nil, "GET", "", nil, 401, "missing-signature"},
		{"tampered method", e.hmac, "POST", "{}", func(r *http.Request) { r.Method = "PUT" }, 401, "bad-signature"},
		{"tampered authority", e.hmac, "GET", "", func(r *http.Request) { r.Host = "other.example" }, 401, "bad-signature"},
		{"tampered path", e.hmac, "GET", "", func(r *http.Request) { r.URL.Path = "/admin" }, 401, "bad-signature"},
		{"tampered query", e.hmac, "GET", "", func(r *http.Request) { r.URL.RawQuery = "customer=43" }, 401, "bad-signature"},
		{"tampered content-type", e.hmac, "POST", "{}", func(r *http.Request) { r.Header.Set("Content-Type", "text/xml") }, 401, "bad-signature"},
		{"tampered body", e.hmac, "POST", `{"a":1}`, func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(`{"a":2}`)) }, 401, "digest-mismatch"},
		{"stale", at(-10 * time.Minute), "GET", "", nil, 401, "expired"},
		{"future", at(10 * time.Minute), "GET", "", nil, 401, "not-yet-valid"},
		{"unknown key", withKeyID("sk_nobody"), "GET", "", nil, 401, "unknown-key"},
		{"revoked key", withKeyID("sk_revoked"), "GET", "", nil, 401, "key-revoked"},
		{"expired key", withKeyID("sk_old"), "GET", "", nil, 401, "key-expired"},
		{"wrong algorithm", e.hmac, "GET", "", func(r *http.Request) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `alg="hmac-sha256"`, `alg="ed25519"`, 1))
		}, 401, "algorithm-mismatch"},
		{"ed25519 key used as hmac", e.ed, "GET", "", func(r *http.Request) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `alg="ed25519"`, `alg="hmac-sha256"`, 1))
		}, 401, "algorithm-mismatch"},
		{"oversized", e.hmac, "POST", big, nil, 413, "body-too-large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.up.count()
			path := "/v1/orders?customer=42"
			resp, body := e.send(t, tt.signer, tt.method, path, tt.body, tt.tamper)
			if resp.StatusCode != tt.status || reasonOf(t, resp, body) != tt.reason {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, body, tt.status, tt.reason)
			}
			if resp.Header.Get("Date") == "" {
				t.Error("no Date field")
			}
			if e.up.count() != before {
				t.Fatal("the refused request reached the upstream")
			}
		})
	}
}

func TestReplayed(t *testing.T) {
	e := newEnv(t, nil)
	r, _ := http.NewRequest("GET", e.gw.URL+"/once", nil)
	e.ed.SignRequest(r, nil)
	for i, want := range []int{200, 401} {
		resp, err := http.DefaultClient.Do(r.Clone(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (i == 1 && reasonOf(t, resp, string(body)) != "replayed") {
			t.Fatalf("send %d: %d %s", i, resp.StatusCode, body)
		}
	}
}

func TestWebSocket(t *testing.T) {
	e := newEnv(t, nil)
	wsURL := "ws" + strings.TrimPrefix(e.gw.URL, "http") + "/socket"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Unsigned: refused before any upgrade.
	_, resp, err := websocket.Dial(ctx, wsURL, nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("unsigned upgrade: %v %v", resp, err)
	}

	// Signed: the upgrade request is verified, then the socket is proxied.
	r, _ := http.NewRequest("GET", e.gw.URL+"/socket", nil)
	if err := e.hmac.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: r.Header})
	if err != nil {
		t.Fatalf("signed upgrade: %v (%v)", err, resp)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil || string(msg) != "echo: ping" {
		t.Fatalf("echo %q %v", msg, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestUpstreamDown(t *testing.T) {
	e := newEnv(t, nil)
	e.up.srv.Close()
	resp, body := e.send(t, e.hmac, "GET", "/", "", nil)
	if resp.StatusCode != 502 || reasonOf(t, resp, body) != "upstream-unavailable" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// TestUpstreamStatusBelow100: an upstream status of three digits below
// 100, which net/http's reader takes and its writer panics on, is
// answered 502 upstream-unavailable, its connection closed, and the
// gateway goes on (over the gateway's own connection pool and over
// net/http's transport).
func TestUpstreamStatusBelow100(t *testing.T) {
	up := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
		status := "200 OK"
		if s := strings.TrimPrefix(req.URL.Path, "/status/"); s != req.URL.Path {
			status = s + " Odd"
		}
		io.WriteString(c, "HTTP/1.1 "+status+"\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	for name, tr := range map[string]http.RoundTripper{"direct": nil, "net/http": gateway.NewTransport()} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(c *gateway.Config) {
				c.Upstream, _ = url.Parse(up.URL(""))
				c.Transport = tr
			})
			// An idle connection, which the request below takes.
			if resp, body := e.send(t, e.hmac, "GET", "/", "", nil); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			for _, status := range []string{"000", "099", "042"} {
				before := up.Conns()
				resp, body := e.send(t, e.hmac, "GET", "/status/"+status, "", nil)
				if resp.StatusCode != 502 || reasonOf(t, resp, body) != "upstream-unavailable" {
					t.Fatalf("upstream status %s: %d %s", status, resp.StatusCode, body)
				}
				// The connection it came on is not used again.
				if resp, body := e.send(t, e.hmac, "GET", "/", "", nil); resp.StatusCode != 200 || body != "ok" || up.Conns() == before {
					t.Fatalf("after status %s: %d %s, %d connections before, %d after", status, resp.StatusCode, body, before, up.Conns())
				}
			}
		})
	}
}

// TestMalformedOverTheWire sends raw requests with broken signature
// fields: every answer is a 4xx, never a 5xx, and the connection survives.
func TestMalformedOverTheWire(t *testing.T) {
	e := newEnv(t, nil)
	addr := strings.TrimPrefix(e.gw.URL, "http://")
	inputs := []string{
		"sig1=", "sig1=(", `sig1=("@method" "@path";key="x")`, "sig1=()", "\x01\x02",
		`sig1=("@method");created=99999999999999999999`, `sig1=("@query-param";name="%ZZ");created=1`,
		strings.Repeat("a=1,", 3000), `sig1=("@status");created=1;keyid="sk_acme";nonce="n"`,
		`sig1=("content-digest";sf);created=1;keyid="sk_acme";nonce="n"`,
	}
	for _, in := range inputs {
		for _, sig := range []string{"sig1=:AAAA:", "sig1=::", "sig1=:####:", ""} {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /x HTTP/1.1\r\nHost: %s\r\nSignature-Input: %s\r\nSignature: %s\r\nContent-Digest: sha-256=:x:\r\nContent-Length: 2\r\n\r\n{}", addr, in, sig)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%q: %v", in, err)
			}
			if resp.StatusCode >= 500 {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("%q %q: %d %s", in, sig, resp.StatusCode, body)
			}
			resp.Body.Close()
			conn.Close()
		}
	}
	if e.up.count() != 0 {
		t.Fatal("a malformed request reached the upstream")
	}
}

func TestAdminEndpoints(t *testing.T) {
	e := newEnv(t, nil)
	e.send(t, e.hmac, "GET", "/", "", nil)
	e.send(t, nil, "GET", "/", "", nil)
	resp, err := http.Get(e.admin.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(e.admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`signet_requests_total{outcome="accepted",reason="",route="default"} 1`,
		`signet_requests_total{outcome="refused",reason="missing-signature",route="default"} 1`,
		"signet_verify_duration_seconds_count 2",
		"signet_replay_store_errors_total 0",
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestTargetVerbatim: the upstream gets the request target the signature
// covered, byte for byte, even parts net/url would clean up.
func TestTargetVerbatim(t *testing.T) {
	e := newEnv(t, nil)
	for _, target := range []string{"/a%2Fb/c%7e?odd=%zz%4&x=1;y=2&sp=a+b", "/caf%C3%A9/?q=%E2%9C%93&&"} {
		r, _ := http.NewRequest("GET", e.gw.URL+"/", nil)
		r.URL.Opaque = strings.SplitN(target, "?", 2)[0]
		r.URL.RawQuery = strings.SplitN(target, "?", 2)[1]
		if err := e.ed.SignRequest(r, nil); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", target, resp.StatusCode)
		}
		got, _ := e.up.last()
		if got.RequestURI != target {
			t.Fatalf("upstream got %q, client sent %q", got.RequestURI, target)
		}
	}
}

// TestStreaming: a streamed response (server-sent events) reaches the
// client as the upstream writes it, not when it ends.
func TestStreaming(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: last\n\n")
	}))
	defer up.Close()
	defer close(release)
	e := newEnv(t, func(c *gateway.Config) { c.Upstream, _ = url.Parse(up.URL) })
	r, _ := http.NewRequest("GET", e.gw.URL+"/events", nil)
	e.hmac.SignRequest(r, nil)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event %q %v", line, err)
	}
}

// TestRequestInOneWrite: the verified request leaves for the upstream in
// one write, header and body together (two would cost the upstream a
// second packet and read per request).
func TestRequestInOneWrite(t *testing.T) {
	var watch wiretest.Watch
	e := newEnv(t, func(c *gateway.Config) {
		tr := gateway.NewTransport()
		tr.DialContext = watch.Dial(tr.DialContext)
		c.Transport = tr
	})
	for i := range 3 {
		before := watch.Writes()
		resp, body := e.send(t, e.hmac, "POST", "/v1/orders", `{"item":"widget","n":`+fmt.Sprint(i)+`}`, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if _, got := e.up.last(); !strings.Contains(got, `"widget"`) {
			t.Fatalf("upstream got body %q", got)
		}
		if n := watch.Writes() - before; n != 1 {
			t.Fatalf("request %d left in %d writes, want 1", i, n)
		}
	}
}

// TestAcceptEncodingAsSent: the upstream is asked for the content codings
// the client asked for, or for none, and its answer reaches the client as
// the upstream sent it (net/http's transport would ask for gzip on its own
// and hand the content on decoded).
func TestAcceptEncodingAsSent(t *testing.T) {
	var mu sync.Mutex
	var asked [][]string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Header["Accept-Encoding"])
		mu.Unlock()
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			io.WriteString(w, "plain")
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, "compressed")
		zw.Close()
	}))
	defer up.Close()
	e := newEnv(t, func(c *gateway.Config) { c.Upstream, _ = url.Parse(up.URL) })
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, ae := range []string{"", "gzip"} {
		r, _ := http.NewRequest("GET", e.gw.URL+"/v1/orders", nil)
		if ae != "" {
			r.Header.Set("Accept-Encoding", ae)
		}
		if err := e.hmac.SignRequest(r, nil); err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mu.Lock()
		got := asked[len(asked)-1]
		mu.Unlock()
		if strings.Join(got, ",") != ae {
			t.Errorf("client sent Accept-Encoding %q; the upstream was asked for %q", ae, got)
		}
		switch ce := resp.Header.Get("Content-Encoding"); {
		case ae == "" && (ce != "" || string(b) != "plain"):
			t.Errorf("no coding asked: got %q, %q", ce, b)
		case ae == "gzip" && (ce != "gzip" || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b):
			t.Errorf("gzip asked: got Content-Encoding %q and %q, want the upstream's gzip bytes", ce, b)
		}
	}
}
