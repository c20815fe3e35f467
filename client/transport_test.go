package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay/memory"
)

// t0 is the local clock of the tests. Its fraction of a second keeps the
// clock offsets learnt from Date fields (whole seconds) away from half
// seconds, where rounding would make them off by one.
var t0 = time.Unix(1700000000, 300e6)

func localClock() time.Time { return t0 }

type testKey struct {
	name   string
	id     string
	sign   httpsig.SigningKey
	verify httpsig.VerifyingKey
}

func testKeys(t testing.TB) []testKey {
	t.Helper()
	hk, err := httpsig.NewHMACKey(bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	es, err := httpsig.NewSigningKey(httpsig.AlgEd25519, priv)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := httpsig.NewVerifyingKey(httpsig.AlgEd25519, priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return []testKey{
		{"hmac-sha256", "sk_test_hmac", hk, hk},
		{"ed25519", "sk_test_ed", es, ev},
	}
}

func keyMap(keys []testKey) httpsig.KeyMap {
	m := httpsig.KeyMap{}
	for _, k := range keys {
		m[k.id] = k.verify
	}
	return m
}

// server is a test server that verifies signatures as a Signet server
// does and echoes the body of what it accepts.
type server struct {
	*httptest.Server
	hits atomic.Int64

	mu      sync.Mutex
	refused []httpsig.Reason
}

// refusals returns the reasons of the requests the server refused.
func (s *server) refusals() []httpsig.Reason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]httpsig.Reason(nil), s.refused...)
}

type serverConfig struct {
	keys httpsig.KeyResolver
	// skew is how far the server's clock is ahead of the tests' clock.
	skew   time.Duration
	policy httpsig.Policy
	// intercept, if set, may answer a request (by returning true) before
	// it is verified; hit counts requests from 1.
	intercept func(w http.ResponseWriter, r *http.Request, hit int64) bool
	// respond, if set, answers verified requests instead of the echo.
	respond func(w http.ResponseWriter, r *http.Request, body []byte)
}

func newServer(t *testing.T, cfg serverConfig) *server {
	t.Helper()
	now := func() time.Time { return t0.Add(cfg.skew) }
	v := &httpsig.Verifier{
		Policy: cfg.policy,
		Keys:   cfg.keys,
		Nonces: memory.New(memory.Options{Now: now}),
		Now:    now,
	}
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit := s.hits.Add(1)
		if cfg.intercept != nil && cfg.intercept(w, r, hit) {
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := v.VerifyRequest(r, body)
		if err != nil {
			reason, _ := httpsig.ReasonOf(err)
			s.mu.Lock()
			s.refused = append(s.refused, reason)
			s.mu.Unlock()
			writeProblem(w, now(), reason, err.Error())
			return
		}
		if cfg.respond != nil {
			cfg.respond(w, r, body)
			return
		}
		w.Header().Set("X-Verified-Key", res.KeyID)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// writeProblem answers as a Signet server refusing a signature does.
func writeProblem(w http.ResponseWriter, now time.Time, reason httpsig.Reason, detail string) {
	body, _ := json.Marshal(map[string]any{
		"type": "https://signet.dev/problems/" + string(reason), "title": string(reason),
		"status": http.StatusUnauthorized, "detail": detail,
	})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	w.Header().Set("WWW-Authenticate", `Signature realm="signet"`)
	w.WriteHeader(http.StatusUnauthorized)
	w.Write(body)
}

func newTransport(k testKey, base http.RoundTripper) *Transport {
	return &Transport{Signer: &httpsig.Signer{Key: k.sign, KeyID: k.id, Now: localClock}, Base: base}
}

// snapshot records what RoundTrip must not change in a request.
type snapshot struct {
	header        http.Header
	url           string
	host          string
	contentLength int64
}

func snap(r *http.Request) snapshot {
	return snapshot{r.Header.Clone(), r.URL.String(), r.Host, r.ContentLength}
}

func (s snapshot) check(t *testing.T, r *http.Request) {
	t.Helper()
	after := snap(r)
	if fmt.Sprint(after) != fmt.Sprint(s) {
		t.Errorf("RoundTrip changed the caller's request:\nbefore %v\nafter  %v", s, after)
	}
}

// onlyReader hides every method of a reader but Read, so that
// http.NewRequest cannot give the request GetBody.
type onlyReader struct{ io.Reader }

func TestTransportSigns(t *testing.T) {
	keys := testKeys(t)
	srv := newServer(t, serverConfig{keys: keyMap(keys)})
	json1k := `{"items":"` + strings.Repeat("x", 1000) + `"}`
	for _, k := range keys {
		for _, tt := range []struct {
			name        string
			method, url string
			body        func() io.Reader
			header      map[string]string
			signer      func(*httpsig.Signer)
			policy      *httpsig.Policy
		}{
			{name: "GET", method: "GET", url: "/v1/orders/7"},
			{name: "GET with query", method: "GET", url: "/v1/orders?customer=42&expand=items"},
			{name: "POST bytes", method: "POST", url: "/v1/orders?customer=42", body: func() io.Reader { return bytes.NewReader([]byte(json1k)) },
				header: map[string]string{"Content-Type": "application/json"}},
			{name: "POST strings", method: "POST", url: "/v1/orders", body: func() io.Reader { return strings.NewReader("a=1&b=2") },
				header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
			{name: "POST stream", method: "POST", url: "/upload", body: func() io.Reader { return onlyReader{strings.NewReader(json1k)} }},
			{name: "POST empty", method: "POST", url: "/empty", body: func() io.Reader { return bytes.NewReader(nil) }},
			{name: "PUT with its own Content-Digest", method: "PUT", url: "/v1/orders/7", body: func() io.Reader { return onlyReader{strings.NewReader("{}")} },
				header: map[string]string{"Content-Digest": mustDigest(t, "{}"), "Content-Type": "application/json"}},
			{name: "DELETE", method: "DELETE", url: "/v1/orders/7?force"},
			{name: "components and tag", method: "PATCH", url: "/v1/orders/7?x=1", body: func() io.Reader { return strings.NewReader("{}") },
				signer: func(s *httpsig.Signer) {
					s.Components, _ = httpsig.ParseComponents(`@method @authority @path @query @target-uri content-digest "@query-param";name="x"`)
					s.Tag = "app-1"
				},
				policy: &httpsig.Policy{Tag: "app-1"}},
		} {
			t.Run(k.name+"/"+tt.name, func(t *testing.T) {
				target := srv
				if tt.policy != nil {
					target = newServer(t, serverConfig{keys: keyMap(keys), policy: *tt.policy})
				}
				var body io.Reader
				var sent []byte
				if tt.body != nil {
					body = tt.body()
					sent, _ = io.ReadAll(tt.body())
				}
				req, err := http.NewRequest(tt.method, target.URL+tt.url, body)
				if err != nil {
					t.Fatal(err)
				}
				for name, v := range tt.header {
					req.Header.Set(name, v)
				}
				tr := newTransport(k, nil)
				if tt.signer != nil {
					tt.signer(tr.Signer)
				}
				before := snap(req)
				resp, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %s", resp.Status, got)
				}
				if resp.Header.Get("X-Verified-Key") != k.id {
					t.Errorf("verified key %q, want %q", resp.Header.Get("X-Verified-Key"), k.id)
				}
				if !bytes.Equal(got, sent) {
					t.Errorf("the server got the body %q, want %q", got, sent)
				}
				before.check(t, req)
				if req.Header.Get("Signature") != "" {
					t.Error("the caller's request got a Signature field")
				}
			})
		}
	}
}

func mustDigest(t *testing.T, body string) string {
	t.Helper()
	d, err := httpsig.ContentDigest("", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestTransportConcurrent sends many requests at once through one
// Transport, to a server whose clock is ahead: every request gets its own
// nonce, so none is refused as replayed, and the clock corrections made
// side by side agree.
func TestTransportConcurrent(t *testing.T) {
	keys := testKeys(t)
	srv := newServer(t, serverConfig{keys: keyMap(keys), skew: time.Hour})
	tr := newTransport(keys[0], nil)
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			body := fmt.Sprintf(`{"n":%d}`, i)
			resp, err := c.Post(srv.URL+"/v1/orders?n="+fmt.Sprint(i), "application/json", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(got) != body {
				errs <- fmt.Errorf("request %d: %s %s", i, resp.Status, got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if off := tr.ClockOffset(mustURL(t, srv.URL)); off != time.Hour {
		t.Errorf("clock offset %v, want 1h", off)
	}
}

// countingBody records how it is used.
type countingBody struct {
	r      io.Reader
	read   atomic.Int64
	closed atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { b.closed.Store(true); return nil }

// TestTransportStreamsWithGetBody sends a body far larger than
// MaxBodyBytes: with GetBody, the digest is computed over one copy and the
// other is sent, so the limit on bodies held in memory does not apply.
func TestTransportStreamsWithGetBody(t *testing.T) {
	keys := testKeys(t)
	srv := newServer(t, serverConfig{keys: keyMap(keys)})
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	body := &countingBody{r: bytes.NewReader(data)}
	var copies []*countingBody
	req, _ := http.NewRequest("POST", srv.URL+"/upload", body)
	req.ContentLength = int64(len(data))
	req.GetBody = func() (io.ReadCloser, error) {
		c := &countingBody{r: bytes.NewReader(data)}
		copies = append(copies, c)
		return c, nil
	}
	tr := newTransport(keys[1], nil)
	tr.MaxBodyBytes = 1 << 10
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("%s, %d bytes echoed, want %d", resp.Status, len(got), len(data))
	}
	if len(copies) != 1 || copies[0].read.Load() != int64(len(data)) || !copies[0].closed.Load() {
		t.Errorf("GetBody: %d copies; want one, read whole and closed", len(copies))
	}
	if body.read.Load() != int64(len(data)) || !body.closed.Load() {
		t.Errorf("Body: read %d bytes, closed %v; want it sent whole and closed", body.read.Load(), body.closed.Load())
	}

	// Without GetBody, the body must be held in memory, and is too large.
	body = &countingBody{r: bytes.NewReader(data)}
	req, _ = http.NewRequest("POST", srv.URL+"/upload", body)
	_, err = (&http.Client{Transport: tr}).Do(req)
	if err == nil || !strings.Contains(err.Error(), "larger than the limit") {
		t.Errorf("error %v, want one about the size limit", err)
	}
	if !body.closed.Load() {
		t.Error("the body was not closed")
	}
	if srv.hits.Load() != 1 {
		t.Errorf("%d requests reached the server, want 1", srv.hits.Load())
	}
}

// TestTransportCorrectsClock checks the clock correction: the first
// request is refused for its time, the Transport learns the offset from
// the Date field, sends the request once more, and signs later requests
// with the corrected clock.
func TestTransportCorrectsClock(t *testing.T) {
	keys := testKeys(t)
	for _, tt := range []struct {
		name       string
		skew       time.Duration
		firstRefus httpsig.Reason
	}{
		{name: "server ahead", skew: 10 * time.Minute, firstRefus: httpsig.ReasonExpired},
		{name: "server behind", skew: -10 * time.Minute, firstRefus: httpsig.ReasonNotYetValid},
	} {
		for _, body := range []string{"", `{"sku":"A-1"}`} {
			t.Run(fmt.Sprintf("%s/body=%d", tt.name, len(body)), func(t *testing.T) {
				srv := newServer(t, serverConfig{keys: keyMap(keys), skew: tt.skew})
				tr := newTransport(keys[0], nil)
				c := &http.Client{Transport: tr}
				resp, err := c.Post(srv.URL+"/v1/orders", "application/json", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(got) != body {
					t.Fatalf("%s %s", resp.Status, got)
				}
				if n := srv.hits.Load(); n != 2 {
					t.Errorf("the server saw %d requests, want 2", n)
				}
				if r := srv.refusals(); len(r) != 1 || r[0] != tt.firstRefus {
					t.Errorf("refusals %v, want [%s]", r, tt.firstRefus)
				}
				if off := tr.ClockOffset(mustURL(t, srv.URL)); off != tt.skew {
					t.Errorf("clock offset %v, want %v", off, tt.skew)
				}
				// The next request is signed with the corrected clock.
				resp, err = c.Get(srv.URL + "/v1/orders/7")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || srv.hits.Load() != 3 {
					t.Errorf("after the correction: %s after %d requests, want 200 after 3", resp.Status, srv.hits.Load())
				}
			})
		}
	}
}

// refusal answers as a server refusing with a problem: status, type, a
// Date this far from the tests' clock (none if nil), and a Signature
// challenge if challenge.
func refusal(status int, typ string, date *time.Duration, challenge bool) func(w http.ResponseWriter, r *http.Request, hit int64) bool {
	return func(w http.ResponseWriter, r *http.Request, hit int64) bool {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/problem+json")
		if date != nil {
			w.Header().Set("Date", t0.Add(*date).UTC().Format(http.TimeFormat))
		} else {
			w.Header()["Date"] = nil
		}
		if challenge {
			w.Header().Set("WWW-Authenticate", `Basic realm="x", Signature realm="signet"`)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":%q}`, typ)
		return true
	}
}

func after(d time.Duration) *time.Duration { return &d }

// TestTransportNoRetry checks the refusals that are returned as they are,
// after one request: whatever a retry would not cure, and whatever is not
// the Signet server's own refusal for the time.
func TestTransportNoRetry(t *testing.T) {
	keys := testKeys(t)
	wrongKeys := keyMap(keys)
	otherSecret, err := httpsig.NewHMACKey(bytes.Repeat([]byte("o"), 32))
	if err != nil {
		t.Fatal(err)
	}
	wrongKeys[keys[0].id] = otherSecret
	const base = "https://signet.dev/problems/"
	for _, tt := range []struct {
		name        string
		cfg         serverConfig
		problemBase string
		streamBody  bool // a body with its own Content-Digest and no GetBody
		wantType    string
		wantOffset  time.Duration
	}{
		{name: "body cannot be replayed", cfg: serverConfig{skew: 10 * time.Minute}, streamBody: true,
			wantType: base + "expired", wantOffset: 10 * time.Minute},
		{name: "bad-signature", cfg: serverConfig{keys: wrongKeys}, wantType: base + "bad-signature"},
		{name: "key-expired", cfg: serverConfig{intercept: refusal(401, base+"key-expired", after(time.Hour), true)},
			wantType: base + "key-expired"},
		{name: "expired without Date", cfg: serverConfig{intercept: refusal(401, base+"expired", nil, true)},
			wantType: base + "expired"},
		{name: "403 expired", cfg: serverConfig{intercept: refusal(403, base+"expired", after(time.Hour), true)},
			wantType: base + "expired"},
		// The API behind the gateway answers its own 401 with the
		// gateway's problem type and challenge, and a Date that agrees
		// with the clock: a retry would change nothing.
		{name: "expired by a Date that agrees", cfg: serverConfig{intercept: refusal(401, base+"expired", after(0), true)},
			wantType: base + "expired"},
		{name: "expired by a Date 2s ahead", cfg: serverConfig{intercept: refusal(401, base+"expired", after(2*time.Second), true)},
			wantType: base + "expired"},
		{name: "not-yet-valid by a Date ahead", cfg: serverConfig{intercept: refusal(401, base+"not-yet-valid", after(10*time.Minute), true)},
			wantType: base + "not-yet-valid"},
		{name: "expired by a Date behind", cfg: serverConfig{intercept: refusal(401, base+"expired", after(-10*time.Minute), true)},
			wantType: base + "expired"},
		{name: "expired without a Signature challenge", cfg: serverConfig{intercept: refusal(401, base+"expired", after(time.Hour), false)},
			wantType: base + "expired"},
		{name: "expired of another problem base", cfg: serverConfig{intercept: refusal(401, "https://api.example.com/problems/expired", after(time.Hour), true)},
			wantType: "https://api.example.com/problems/expired"},
		{name: "expired of the default base, another configured", problemBase: "urn:gw:",
			cfg: serverConfig{intercept: refusal(401, base+"expired", after(time.Hour), true)}, wantType: base + "expired"},
		{name: "a type that only ends in expired", cfg: serverConfig{intercept: refusal(401, base+"x/expired", after(time.Hour), true)},
			wantType: base + "x/expired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.keys == nil {
				tt.cfg.keys = keyMap(keys)
			}
			srv := newServer(t, tt.cfg)
			const body = `{"sku":"A-1"}`
			var reqBody io.Reader = strings.NewReader(body)
			if tt.streamBody {
				reqBody = onlyReader{reqBody}
			}
			req, _ := http.NewRequest("POST", srv.URL+"/v1/orders", reqBody)
			if tt.streamBody {
				req.Header.Set("Content-Digest", mustDigest(t, body))
			}
			tr := newTransport(keys[0], nil)
			tr.ProblemBase = tt.problemBase
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var p struct{ Type string }
			if err := json.Unmarshal(got, &p); err != nil || p.Type != tt.wantType {
				t.Errorf("%s %s: the problem is not %s", resp.Status, got, tt.wantType)
			}
			if n := srv.hits.Load(); n != 1 {
				t.Errorf("the server saw %d requests, want 1", n)
			}
			if off := tr.ClockOffset(req.URL); off != tt.wantOffset {
				t.Errorf("clock offset %v, want %v", off, tt.wantOffset)
			}
		})
	}
}

// TestTransportProblemBase checks that a configured problem base is the
// one acted on.
func TestTransportProblemBase(t *testing.T) {
	keys := testKeys(t)
	srv := newServer(t, serverConfig{keys: keyMap(keys), intercept: func(w http.ResponseWriter, r *http.Request, hit int64) bool {
		if hit > 1 {
			return false
		}
		return refusal(401, "urn:gw:expired", after(10*time.Minute), true)(w, r, hit)
	}, skew: 10 * time.Minute})
	tr := newTransport(keys[0], nil)
	tr.ProblemBase = "urn:gw:"
	resp, err := (&http.Client{Transport: tr}).Post(srv.URL+"/v1/orders", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || srv.hits.Load() != 2 {
		t.Errorf("%s after %d requests, want 200 after 2", resp.Status, srv.hits.Load())
	}
}

// TestTransportOffsetPerOrigin checks that each origin gets its own clock
// offset, and that a refusal from one leaves the others alone.
func TestTransportOffsetPerOrigin(t *testing.T) {
	keys := testKeys(t)
	ahead := newServer(t, serverConfig{keys: keyMap(keys), skew: 10 * time.Minute})
	behind := newServer(t, serverConfig{keys: keyMap(keys), skew: -10 * time.Minute})
	right := newServer(t, serverConfig{keys: keyMap(keys)})
	tr := newTransport(keys[0], nil)
	c := &http.Client{Transport: tr}
	for round := 1; round <= 2; round++ {
		for _, srv := range []*server{ahead, behind, right} {
			resp, err := c.Post(srv.URL+"/v1/orders", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("round %d: %s", round, resp.Status)
			}
		}
	}
	for _, tt := range []struct {
		srv  *server
		hits int64
		want time.Duration
	}{{ahead, 3, 10 * time.Minute}, {behind, 3, -10 * time.Minute}, {right, 2, 0}} {
		if n, off := tt.srv.hits.Load(), tr.ClockOffset(mustURL(t, tt.srv.URL)); n != tt.hits || off != tt.want {
			t.Errorf("%s: %d requests, offset %v; want %d, %v", tt.srv.URL, n, off, tt.hits, tt.want)
		}
	}
}

// skewedHosts answers, without network, as a Signet server whose clock
// runs 10 minutes ahead would: the first request to each host is refused
// as expired, the next accepted.
type skewedHosts struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *skewedHosts) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	s.mu.Lock()
	first := !s.seen[r.URL.Host]
	s.seen[r.URL.Host] = true
	s.mu.Unlock()
	if !first {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	}
	rec := httptest.NewRecorder()
	writeProblem(rec, t0.Add(10*time.Minute), httpsig.ReasonExpired, "too old")
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// TestTransportOffsetsBounded checks that the offsets of many origins take
// bounded memory: the least recently used are forgotten.
func TestTransportOffsetsBounded(t *testing.T) {
	tr := newTransport(testKeys(t)[0], &skewedHosts{seen: map[string]bool{}})
	c := &http.Client{Transport: tr}
	for i := range maxOrigins + 10 {
		resp, err := c.Get(fmt.Sprintf("https://h%d.example/", i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("host %d: %s", i, resp.Status)
		}
	}
	if n := tr.offsets.Len(); n != maxOrigins {
		t.Errorf("%d offsets remembered, want %d", n, maxOrigins)
	}
	if off := tr.ClockOffset(mustURL(t, "https://h0.example/")); off != 0 {
		t.Errorf("the oldest origin's offset %v was kept", off)
	}
	if off := tr.ClockOffset(mustURL(t, fmt.Sprintf("https://h%d.example:443/", maxOrigins+9))); off != 10*time.Minute {
		t.Errorf("the newest origin's offset is %v", off)
	}
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]originKey{
		"https://API.example.com/x":      {"https", "api.example.com", "443"},
		"HTTPS://api.example.com:443/":   {"https", "api.example.com", "443"},
		"http://api.example.com/":        {"http", "api.example.com", "80"},
		"http://api.example.com:8080/":   {"http", "api.example.com", "8080"},
		"https://[::1]:8443/":            {"https", "::1", "8443"},
		"https://api.example.com:8443/a": {"https", "api.example.com", "8443"},
	} {
		if got := origin(mustURL(t, in)); got != want {
			t.Errorf("origin(%s) = %v, want %v", in, got, want)
		}
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type failingBase struct{ err error }

func (b failingBase) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, b.err
}

// TestTransportClosesBody checks that the request body is closed on every
// path that returns an error.
func TestTransportClosesBody(t *testing.T) {
	keys := testKeys(t)
	for _, tt := range []struct {
		name    string
		tr      *Transport
		getBody func() (io.ReadCloser, error)
		want    string
	}{
		{name: "no signer", tr: &Transport{}, want: "Signer"},
		{name: "bad label", tr: &Transport{Signer: &httpsig.Signer{Key: keys[0].sign, KeyID: "k", Label: "Not A Label"}}, want: "label"},
		{name: "bad digest algorithm", tr: &Transport{Signer: &httpsig.Signer{Key: keys[0].sign, KeyID: "k", Digest: "md5"}}, want: "digest"},
		{name: "too large", tr: &Transport{Signer: &httpsig.Signer{Key: keys[0].sign, KeyID: "k"}, MaxBodyBytes: 3}, want: "limit"},
		{name: "GetBody fails", tr: &Transport{Signer: &httpsig.Signer{Key: keys[0].sign, KeyID: "k"}},
			getBody: func() (io.ReadCloser, error) { return nil, errors.New("gone") }, want: "gone"},
		{name: "base fails", tr: &Transport{Signer: &httpsig.Signer{Key: keys[0].sign, KeyID: "k"}, Base: failingBase{errors.New("no route")}}, want: "no route"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingBody{r: strings.NewReader("some content")}
			req, _ := http.NewRequest("POST", "http://api.example.com/x", body)
			req.GetBody = tt.getBody
			resp, err := tt.tr.RoundTrip(req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
			if resp != nil {
				t.Error("a response came with the error")
			}
			if !body.closed.Load() {
				t.Error("the request body was not closed")
			}
		})
	}
}

func TestTransportContextCancelled(t *testing.T) {
	keys := testKeys(t)
	srv := newServer(t, serverConfig{keys: keyMap(keys)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	if _, err := (&http.Client{Transport: newTransport(keys[0], nil)}).Do(req); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestSignatureChallenge(t *testing.T) {
	for v, want := range map[string]bool{
		`Signature realm="signet"`:                  true,
		`signature`:                                 true,
		`Basic realm="a, Signature b", Signature`:   true,
		`Basic realm="x", Signature realm="signet"`: true,
		`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`: false,
		`Basic realm="Signature"`: false,
		`Bearer Signature=x`:      false,
		`Basic signature=1`:       false,
		`Signatures realm=x`:      false,
		``:                        false,
	} {
		if got := signatureChallenge([]string{v}); got != want {
			t.Errorf("signatureChallenge(%q) = %v, want %v (schemes %q)", v, got, want, challengeSchemes(v))
		}
	}
}

// FuzzChallengeSchemes checks that any field value parses, and that what
// is found is a nonempty token.
func FuzzChallengeSchemes(f *testing.F) {
	for _, s := range []string{`Signature realm="signet"`, `Basic realm="x\"y", Signature`, `,=,`, `a =b, c`, `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, s := range challengeSchemes(v) {
			if s == "" || strings.ContainsAny(s, " \t,=\"") {
				t.Errorf("challengeSchemes(%q) found %q", v, s)
			}
		}
	})
}

// TestTransportHost checks that the authority signed is the host that goes
// on the wire.
func TestTransportHost(t *testing.T) {
	keys := testKeys(t)
	srv := newServer(t, serverConfig{keys: keyMap(keys)})
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tt := range []struct {
		host, err string
	}{
		{host: "api.example.com"},
		{host: "API.Example.com:80"},
		{host: "api.example.com:"},
		{host: "[fe80::1%25eth0]:8080"},
		{host: "bücher.example", err: "not ASCII"},
	} {
		t.Run(tt.host, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
			req.Host = tt.host
			resp, err := (&http.Client{Transport: newTransport(keys[0], nil)}).Do(req)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s", resp.Status)
			}
			if req.Host != tt.host || req.URL.Host != addr {
				t.Errorf("the caller's request changed: Host %q, URL host %q", req.Host, req.URL.Host)
			}
		})
	}
}

// TestTransportBodies checks the less common shapes of request bodies.
func TestTransportBodies(t *testing.T) {
	keys := testKeys(t)
	srv := newServer(t, serverConfig{keys: keyMap(keys)})
	for _, tt := range []struct {
		name string
		make func(url string) *http.Request
		sent string // what the server must echo
		err  string
	}{
		{name: "GetBody gives nothing", sent: "", make: func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, onlyReader{strings.NewReader("")})
			r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
			return r
		}},
		{name: "GetBody disagrees with ContentLength", err: "ContentLength says 5", make: func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, strings.NewReader("12345"))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("123")), nil }
			return r
		}},
		{name: "known length, no GetBody", sent: "12345", make: func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, onlyReader{strings.NewReader("12345")})
			r.ContentLength = 5
			return r
		}},
		{name: "longer than ContentLength", err: "longer than its ContentLength", make: func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, onlyReader{strings.NewReader("123456")})
			r.ContentLength = 5
			return r
		}},
		{name: "shorter than ContentLength", err: "unexpected EOF", make: func(url string) *http.Request {
			r, _ := http.NewRequest("POST", url, onlyReader{strings.NewReader("1234")})
			r.ContentLength = 5
			return r
		}},
		{name: "sha-512", sent: "abc", make: func(url string) *http.Request {
			r, _ := http.NewRequest("PUT", url, strings.NewReader("abc"))
			return r
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport(keys[0], nil)
			if tt.name == "sha-512" {
				tr.Signer.Digest = httpsig.DigestSHA512
			}
			resp, err := (&http.Client{Transport: tr}).Do(tt.make(srv.URL + "/x"))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(got) != tt.sent {
				t.Errorf("%s %q, want 200 %q", resp.Status, got, tt.sent)
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	secret := write("hmac.key", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("s"), 32))+"\n")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	rsaFile := write("rsa.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	for _, tt := range []struct {
		name, path string
		alg        httpsig.Algorithm
		want       httpsig.Algorithm
		err        string
	}{
		{name: "HMAC secret", path: secret, want: httpsig.AlgHMACSHA256},
		{name: "RSA needs an algorithm", path: rsaFile, err: "cannot tell the algorithm"},
		{name: "RSA with an algorithm", path: rsaFile, alg: httpsig.AlgRSAPSSSHA512, want: httpsig.AlgRSAPSSSHA512},
		{name: "wrong algorithm", path: secret, alg: httpsig.AlgEd25519, err: "ed25519"},
		{name: "missing", path: filepath.Join(dir, "nope.key"), err: "no such file"},
		{name: "not a key", path: write("junk.key", "!!! not a key !!!"), err: "neither PEM, JWK nor base64"},
		{name: "too large", path: write("large.key", strings.Repeat("A", maxKeyFileBytes+1)), err: "larger than a key file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadKey(tt.path, tt.alg)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "client: ") {
					t.Fatalf("error %v, want one starting with client: and mentioning %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Algorithm() != tt.want {
				t.Errorf("algorithm %s, want %s", k.Algorithm(), tt.want)
			}
		})
	}
	if _, err := NewTransport("", secret, nil); err == nil {
		t.Error("NewTransport accepted an empty keyid")
	}
	if _, err := NewTransport("k", filepath.Join(dir, "nope.key"), nil); err == nil {
		t.Error("NewTransport accepted a missing key file")
	}
}
