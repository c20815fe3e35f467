package respsign_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
	"github.com/signet-dev/signet/respsign"
)

var gwPriv = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

func gatewaySigner(t testing.TB) (*httpsig.ResponseSigner, *httpsig.ResponseVerifier) {
	t.Helper()
	sk, err := httpsig.NewSigningKey(httpsig.AlgEd25519, gwPriv)
	if err != nil {
		t.Fatal(err)
	}
	vk, _ := httpsig.NewVerifyingKey(httpsig.AlgEd25519, gwPriv.Public())
	return &httpsig.ResponseSigner{Key: sk, KeyID: "gw-1"}, &httpsig.ResponseVerifier{Keys: httpsig.KeyMap{"gw-1": vk}}
}

// clientKey signs the requests of these tests.
func clientSigner(t testing.TB) *httpsig.Signer {
	k, err := httpsig.NewHMACKey(bytes.Repeat([]byte("c"), 32))
	if err != nil {
		t.Fatal(err)
	}
	return &httpsig.Signer{Key: k, KeyID: "sk_client"}
}

type recorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *recorder) onError(_ *http.Request, err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *recorder) get() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// serve starts a server whose responses are signed, and returns its URL.
func serve(t *testing.T, opts respsign.Options, h http.Handler) string {
	t.Helper()
	s, err := respsign.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := h.(*httputil.ReverseProxy); ok {
		p.ModifyResponse = s.ModifyResponse
		h = s.Relay(p)
	}
	if v, ok := h.(verifyThenRelay); ok {
		h = v.verify(s.Relay(v.next))
	}
	srv := httptest.NewServer(s.Wrap(h))
	t.Cleanup(srv.Close)
	return srv.URL
}

// verifyThenRelay is a handler behind middleware.Verify, whose answers
// are relayed.
type verifyThenRelay struct {
	verify func(http.Handler) http.Handler
	next   http.Handler
}

func (verifyThenRelay) ServeHTTP(http.ResponseWriter, *http.Request) { panic("unwrapped") }

// fetch sends a signed request and verifies the response as it streams.
func fetch(t *testing.T, v *httpsig.ResponseVerifier, method, u string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	if err := clientSigner(t).SignRequest(req, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if _, err := v.VerifyStream(context.Background(), resp); err != nil {
		return resp, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>10)
	}
	return b
}

// TestSign sends responses of all kinds through the middleware and
// verifies each as a client does.
func TestSign(t *testing.T) {
	signer, verifier := gatewaySigner(t)
	big := pattern(3<<20 + 17)
	for _, tt := range []struct {
		name    string
		method  string
		handler http.HandlerFunc
		status  int
		body    []byte
		digest  bool // covered by content-digest
	}{
		{name: "small", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":7}`)
		}, status: 200, body: []byte(`{"id":7}`), digest: true},
		{name: "no body", handler: func(w http.ResponseWriter, r *http.Request) {}, status: 200},
		{name: "201 in several writes", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(201)
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		}, status: 201, body: []byte("ab"), digest: true},
		{name: "larger than memory", handler: func(w http.ResponseWriter, r *http.Request) {
			for b := big; len(b) > 0; b = b[min(len(b), 100_000):] {
				w.Write(b[:min(len(b), 100_000)])
			}
		}, status: 200, body: big, digest: true},
		{name: "the handler's own digest", handler: func(w http.ResponseWriter, r *http.Request) {
			sum := sha256.Sum256(big)
			w.Header().Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
			w.Write(big)
		}, status: 200, body: big, digest: true},
		{name: "a digest of an algorithm it cannot check", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Digest", "md5=:AAAA:")
			io.WriteString(w, "hello")
		}, status: 200, body: []byte("hello"), digest: true},
		{name: "HEAD", method: http.MethodHead, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
		}, status: 200},
		{name: "204", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }, status: 204},
		{name: "304", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(304) }, status: 304},
		{name: "early hints first", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "final")
		}, status: 200, body: []byte("final"), digest: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			u := serve(t, respsign.Options{Signer: signer, MemoryBytes: 1 << 20, TempDir: t.TempDir(), OnError: rec.onError}, tt.handler)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			resp, body, err := fetch(t, verifier, method, u+"/v1/x?y=1")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || !bytes.Equal(body, tt.body) {
				t.Errorf("%s, %d bytes; want %d, %d bytes", resp.Status, len(body), tt.status, len(tt.body))
			}
			if got := strings.Contains(resp.Header.Get("Signature-Input"), `"content-digest"`); got != tt.digest {
				t.Errorf("covers content-digest: %v, want %v (%s)", got, tt.digest, resp.Header.Get("Signature-Input"))
			}
			if errs := rec.get(); len(errs) > 0 {
				t.Errorf("OnError: %v", errs)
			}
		})
	}
}

// TestSignHoldsNoFile checks that content held on disk leaves no file.
func TestSignHoldsNoFile(t *testing.T) {
	signer, verifier := gatewaySigner(t)
	dir := t.TempDir()
	started, release := make(chan struct{}), make(chan struct{})
	u := serve(t, respsign.Options{Signer: signer, MemoryBytes: 1024, TempDir: dir}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(pattern(4096))
		close(started)
		<-release
	}))
	done := make(chan error, 1)
	go func() {
		_, body, err := fetch(t, verifier, http.MethodGet, u+"/f")
		if err == nil && len(body) != 4096 {
			err = fmt.Errorf("%d bytes", len(body))
		}
		done <- err
	}()
	<-started
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("while held, %s has %d entries", dir, len(entries))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSignTooLarge answers a signed 502 for content over MaxBytes.
func TestSignTooLarge(t *testing.T) {
	signer, verifier := gatewaySigner(t)
	rec := &recorder{}
	u := serve(t, respsign.Options{Signer: signer, MemoryBytes: 1024, MaxBytes: 4096, TempDir: t.TempDir(), OnError: rec.onError},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Secret-Upstream-Header", "1")
			for i := 0; i < 10; i++ {
				w.Write(pattern(1000))
			}
		}))
	resp, body, err := fetch(t, verifier, http.MethodGet, u+"/big")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Secret-Upstream-Header") != "" {
		t.Errorf("%s %q %v", resp.Status, body, resp.Header)
	}
	if errs := rec.get(); len(errs) != 1 {
		t.Errorf("OnError told %v", errs)
	}
}

// TestSignWrongDigest cuts a response whose content does not match the
// digest the handler claimed: the client never gets it whole.
func TestSignWrongDigest(t *testing.T) {
	signer, verifier := gatewaySigner(t)
	for _, chunked := range []bool{false, true} {
		rec := &recorder{}
		u := serve(t, respsign.Options{Signer: signer, OnError: rec.onError}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sum := sha256.Sum256([]byte("what was promised"))
			w.Header().Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":")
			if !chunked {
				w.Header().Set("Content-Length", "17")
			}
			io.WriteString(w, "what was sent !!!")
		}))
		_, _, err := fetch(t, verifier, http.MethodGet, u+"/x")
		if err == nil {
			t.Fatalf("chunked %v: the content verified", chunked)
		}
		if r, ok := httpsig.ReasonOf(err); ok && r != httpsig.ReasonDigestMismatch {
			t.Errorf("chunked %v: %v", chunked, err)
		}
		if errs := rec.get(); len(errs) != 1 {
			t.Errorf("chunked %v: OnError told %v", chunked, errs)
		}
	}
}

// TestSignEventStream sends the header at once and each event as it is
// flushed: a stream cannot wait for its end.
func TestSignEventStream(t *testing.T) {
	signer, verifier := gatewaySigner(t)
	next := make(chan struct{})
	u := serve(t, respsign.Options{Signer: signer}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "data: 2\n\n")
	}))
	req, _ := http.NewRequest(http.MethodGet, u+"/events", nil)
	clientSigner(t).SignRequest(req, nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	close(next)
	if _, err := verifier.VerifyStream(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	// The signature says nothing of the content: reading it is refused.
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("uncovered event-stream content was passed on")
	} else if r, _ := httpsig.ReasonOf(err); r != httpsig.ReasonMissingComponent {
		t.Error(err)
	}
}

// TestSignStreamed sends what Options.Streamed names as it comes.
func TestSignStreamed(t *testing.T) {
	signer, verifier := gatewaySigner(t)
	next := make(chan struct{})
	ndjson := func(_ *http.Request, _ int, h http.Header) bool {
		return h.Get("Content-Type") == "application/x-ndjson"
	}
	u := serve(t, respsign.Options{Signer: signer, Streamed: ndjson}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, "{}\n")
		w.(http.Flusher).Flush()
		<-next
	}))
	req, _ := http.NewRequest(http.MethodGet, u+"/feed", nil)
	clientSigner(t).SignRequest(req, nil)
	// The header arrives while the handler still waits.
	resp, err := http.DefaultTransport.RoundTrip(req)
	close(next)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := verifier.VerifyStream(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(resp.Header.Get("Signature-Input"), "content-digest") {
		t.Error("a streamed response claims a digest")
	}
}

// TestSignRefusals signs the refusals of middleware.Verify, so that a
// client can tell them from an upstream's 401.
func TestSignRefusals(t *testing.T) {
	signer, verifier := gatewaySigner(t)
	key, _ := httpsig.NewHMACKey(bytes.Repeat([]byte("c"), 32))
	verify := middleware.Verify(middleware.Options{Verifier: httpsig.Verifier{Keys: httpsig.KeyMap{"sk_client": key}, Nonces: memory.New(memory.Options{})}})
	u := serve(t, respsign.Options{Signer: signer}, verifyThenRelay{verify, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The service's own 401, dressed as the server's.
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("WWW-Authenticate", `Signature realm="signet"`)
		w.WriteHeader(401)
		io.WriteString(w, `{"type":"https://signet.dev/problems/expired"}`)
	})})
	// Unsigned: the server's refusal, with no request signature to bind to.
	resp, err := http.Get(u + "/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	res, err := verifier.VerifyStream(context.Background(), resp)
	if err != nil {
		t.Fatalf("the refusal of an unsigned request: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 401 || !strings.Contains(string(body), "missing-signature") || res.Tag != httpsig.GatewayTag {
		t.Errorf("%s %s %v, tag %q", resp.Status, body, err, res.Tag)
	}
	// Signed: accepted, and the service's 401 is signed as relayed.
	req, _ := http.NewRequest(http.MethodGet, u+"/v1/x", nil)
	clientSigner(t).SignRequest(req, nil)
	resp, err = http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if res, err := verifier.VerifyStream(context.Background(), resp); err != nil || resp.StatusCode != 401 || res.Tag != httpsig.ResponseTag {
		t.Errorf("%s, tag %q, %v", resp.Status, res.Tag, err)
	}
}

// TestSignProxy puts the middleware in front of an httputil.ReverseProxy,
// as the gateway does: the upstream's responses, big ones, its own digest,
// a WebSocket upgrade.
func TestSignProxy(t *testing.T) {
	signer, verifier := gatewaySigner(t)
	big := pattern(2 << 20)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write(big)
		case "/ws":
			if r.Header.Get("Upgrade") != "websocket" {
				http.Error(w, "no upgrade", 400)
				return
			}
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo " + line)
			brw.Flush()
		default:
			w.Header().Set("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
			io.WriteString(w, "hi")
		}
	}))
	t.Cleanup(upstream.Close)
	up, _ := url.Parse(upstream.URL)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(up) }}
	u := serve(t, respsign.Options{Signer: signer, MemoryBytes: 64 << 10, TempDir: t.TempDir()}, proxy)

	resp, body, err := fetch(t, verifier, http.MethodGet, u+"/big")
	if err != nil || !bytes.Equal(body, big) {
		t.Fatalf("/big: %d bytes, %v", len(body), err)
	}
	resp, body, err = fetch(t, verifier, http.MethodGet, u+"/hi")
	if err != nil || string(body) != "hi" {
		t.Fatalf("/hi: %q, %v", body, err)
	}
	if !strings.Contains(resp.Header.Get("Signature-Input"), `tag="signet-response"`) {
		t.Errorf("a relayed answer: %s", resp.Header.Get("Signature-Input"))
	}
	if d, _ := http.ParseTime(resp.Header.Get("Date")); time.Since(d) > time.Minute {
		t.Errorf("Date %s is the upstream's, not the signer's", resp.Header.Get("Date"))
	}

	// The upgrade: raw bytes, as a browser's WebSocket.
	conn, err := net.Dial("tcp", strings.TrimPrefix(u, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodGet, u+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	clientSigner(t).SignRequest(req, nil)
	req.Write(conn)
	br := bufio.NewReader(conn)
	wsResp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if wsResp.StatusCode != 101 {
		t.Fatalf("upgrade: %s", wsResp.Status)
	}
	if res, err := verifier.VerifyStream(context.Background(), wsResp); err != nil || res.Tag != httpsig.ResponseTag {
		t.Fatalf("the 101: tag %q, %v", res.Tag, err)
	}
	io.WriteString(conn, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo ping\n" {
		t.Errorf("through the upgraded connection: %q, %v", line, err)
	}
}

// TestKeysHandler publishes the key set a client reads.
func TestKeysHandler(t *testing.T) {
	if _, err := respsign.KeysHandler(nil); err == nil {
		t.Error("no keys: no error")
	}
	h, err := respsign.KeysHandler([]httpsig.JWK{{KeyID: "gw-1", Key: gwPriv.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + respsign.KeysPath)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	set, err := httpsig.ParseJWKS(data)
	if err != nil || set["gw-1"].VerifyingKey == nil || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Errorf("%s: %v %v", data, set, err)
	}
	resp, _ = http.Post(srv.URL+respsign.KeysPath, "text/plain", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s", resp.Status)
	}
	resp.Body.Close()
}
