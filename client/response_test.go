package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/gwtest"
	"github.com/signet-dev/signet/respsign"
)

// realTransport signs with the real clock, as a program does.
func realTransport(t *testing.T, gw *gwtest.Server) *Transport {
	tr := &Transport{Signer: &httpsig.Signer{Key: testKeys(t)[1].sign, KeyID: testKeys(t)[1].id}}
	if gw != nil {
		tr.GatewayKeys = gw.Keys()
	}
	return tr
}

// mitm starts a proxy in front of target that alters each response.
func mitm(t *testing.T, target string, alter func(*http.Response) error) string {
	t.Helper()
	u, _ := url.Parse(target)
	p := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = pr.In.Host },
		ModifyResponse: alter,
		Transport:      &http.Transport{DisableCompression: true},
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

// replaceBody gives resp the body b.
func replaceBody(resp *http.Response, b []byte) {
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
}

// TestTransportVerifiesResponses sends requests through a man in the
// middle that alters the gateway's signed answers.
func TestTransportVerifiesResponses(t *testing.T) {
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(testKeys(t)), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"order-7","total":"10.00"}`)
	})})
	readAll := func(resp *http.Response) ([]byte, error) {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return body, err
	}
	for _, tt := range []struct {
		name    string
		alter   func(*http.Response) error
		require bool
		// reason of the error from RoundTrip, or else from reading the
		// body; verified says whether the response counts as verified.
		tripReason, readReason httpsig.Reason
		verified               bool
	}{
		{name: "as signed", verified: true},
		{name: "as signed, required", require: true, verified: true},
		{name: "a byte of the body", alter: func(r *http.Response) error {
			b, _ := io.ReadAll(r.Body)
			replaceBody(r, bytes.Replace(b, []byte("10.00"), []byte("99.00"), 1))
			return nil
		}, readReason: httpsig.ReasonDigestMismatch, verified: true},
		{name: "the body cut short", alter: func(r *http.Response) error {
			b, _ := io.ReadAll(r.Body)
			replaceBody(r, b[:10])
			return nil
		}, require: true, readReason: httpsig.ReasonDigestMismatch, verified: true},
		{name: "the status", alter: func(r *http.Response) error { r.StatusCode = 402; return nil }},
		{name: "the status, required", alter: func(r *http.Response) error { r.StatusCode = 402; return nil }, require: true, tripReason: httpsig.ReasonBadSignature},
		{name: "the Date, required", alter: func(r *http.Response) error {
			r.Header.Set("Date", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			return nil
		}, require: true, tripReason: httpsig.ReasonBadSignature},
		{name: "Content-Type, required", alter: func(r *http.Response) error { r.Header.Set("Content-Type", "text/html"); return nil },
			require: true, tripReason: httpsig.ReasonBadSignature},
		{name: "the signature removed", alter: func(r *http.Response) error {
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
			return nil
		}},
		{name: "the signature removed, required", alter: func(r *http.Response) error {
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
			return nil
		}, require: true, tripReason: httpsig.ReasonMissingSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := gw.URL
			if tt.alter != nil {
				target = mitm(t, gw.URL, tt.alter)
			}
			tr := realTransport(t, gw)
			tr.RequireSignedResponses = tt.require
			resp, err := (&http.Client{Transport: tr}).Get(target + "/v1/orders/7")
			if tt.tripReason != "" {
				if r, _ := httpsig.ReasonOf(err); r != tt.tripReason {
					t.Fatalf("RoundTrip: %v, want reason %s", err, tt.tripReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res, verified := VerifiedResponse(resp)
			body, err := readAll(resp)
			if verified != tt.verified || (verified && (res.Tag != httpsig.ResponseTag || res.KeyID != gw.KeyID)) {
				t.Errorf("verified %v %+v, want %v", verified, res, tt.verified)
			}
			if r, _ := httpsig.ReasonOf(err); r != tt.readReason || (tt.readReason == "" && err != nil) {
				t.Fatalf("reading %q: %v, want reason %q", body, err, tt.readReason)
			}
		})
	}
}

// TestTransportForgedRefusal: the API behind the gateway answers a 401
// that looks like the gateway's refusal of a stale signature, with a
// Date far ahead. With the gateway's keys the Transport sees that the
// gateway only relayed it: no retry, no clock change. Without them, it
// would have retried.
func TestTransportForgedRefusal(t *testing.T) {
	var posts atomic.Int64
	forged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("WWW-Authenticate", `Signature realm="signet"`)
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]any{"type": DefaultProblemBase + "expired", "status": 401})
	})
	var hits atomic.Int64
	count := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); h.ServeHTTP(w, r) })
	}
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(testKeys(t)), Handler: forged, Wrap: count})
	// The gateway sets Date to its own clock; a man in the middle puts
	// the forged one back.
	aheadDate := func(r *http.Response) error {
		r.Header.Set("Date", time.Now().Add(10*time.Minute).UTC().Format(http.TimeFormat))
		return nil
	}
	for _, tt := range []struct {
		name        string
		keys        bool
		target      string
		hits        int64 // at the gateway
		offsetMoved bool
	}{
		{name: "relayed, signed", keys: true, target: gw.URL, hits: 1},
		{name: "relayed, its Date altered", keys: true, target: mitm(t, gw.URL, aheadDate), hits: 1},
		// The old rule: the Transport believes the Date, sends the POST
		// again (which the gateway refuses: the clock is now wrong) and
		// keeps the wrong offset.
		{name: "without the gateway's keys, the Date altered", target: mitm(t, gw.URL, aheadDate), hits: 2, offsetMoved: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			posts.Store(0)
			hits.Store(0)
			tr := realTransport(t, nil)
			if tt.keys {
				tr.GatewayKeys = gw.Keys()
			}
			resp, err := (&http.Client{Transport: tr}).Post(tt.target+"/v1/orders", "application/json", strings.NewReader(`{"sku":"A-1"}`))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 || posts.Load() != 1 || hits.Load() != tt.hits {
				t.Errorf("%s, the gateway saw %d requests and the API %d POSTs; want 401, %d and 1", resp.Status, hits.Load(), posts.Load(), tt.hits)
			}
			if moved := tr.ClockOffset(mustURL(t, tt.target)) != 0; moved != tt.offsetMoved {
				t.Errorf("clock offset %v", tr.ClockOffset(mustURL(t, tt.target)))
			}
		})
	}
}

// TestTransportSignedClock: the gateway's own refusal of a stale
// signature, signed, corrects the clock and the request goes through; the
// same refusal with its Date altered on the way is ignored.
func TestTransportSignedClock(t *testing.T) {
	var posts atomic.Int64
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(testKeys(t)), Skew: 10 * time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		w.WriteHeader(http.StatusCreated)
	})})
	laterDate := func(r *http.Response) error {
		if d, err := http.ParseTime(r.Header.Get("Date")); err == nil {
			r.Header.Set("Date", d.Add(time.Hour).UTC().Format(http.TimeFormat))
		}
		return nil
	}
	for _, tt := range []struct {
		name    string
		target  string
		require bool
		status  int
		offset  time.Duration
		err     bool
	}{
		{name: "signed", target: gw.URL, status: 201, offset: 10 * time.Minute},
		{name: "the Date altered", target: mitm(t, gw.URL, laterDate), status: 401},
		{name: "the Date altered, required", target: mitm(t, gw.URL, laterDate), require: true, err: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			posts.Store(0)
			tr := realTransport(t, gw)
			tr.RequireSignedResponses = tt.require
			resp, err := (&http.Client{Transport: tr}).Post(tt.target+"/v1/orders", "application/json", strings.NewReader(`{}`))
			if tt.err {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("%s, want %d", resp.Status, tt.status)
			}
			if off := tr.ClockOffset(mustURL(t, tt.target)); (off - tt.offset).Abs() > time.Second {
				t.Errorf("clock offset %v, want %v", off, tt.offset)
			}
		})
	}
}

// heapPeak samples the heap while f runs and returns its peak above what
// it held before.
func heapPeak(f func()) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	if peak.Load() < base {
		return 0
	}
	return peak.Load() - base
}

// TestTransportStreamsLargeResponse reads a 50 MiB response through the
// gateway, verified, without either side holding it in memory; and the
// same with one byte changed on the way, which only the end reveals.
func TestTransportStreamsLargeResponse(t *testing.T) {
	const size = 50 << 20
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	whole := sha256.New()
	for n := 0; n < size; n += len(chunk) {
		whole.Write(chunk)
	}
	want := whole.Sum(nil)
	handler := func(ownDigest bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if ownDigest {
				w.Header().Set("Content-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(want)+":")
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			for n := 0; n < size; n += len(chunk) {
				w.Write(chunk)
			}
		}
	}
	flip := func(r *http.Response) error {
		r.Body = &flipByte{ReadCloser: r.Body, at: size / 2}
		return nil
	}
	for _, tt := range []struct {
		name      string
		ownDigest bool
		tamper    bool
	}{
		{name: "held on disk by the gateway"},
		{name: "the service's own digest, streamed", ownDigest: true},
		{name: "a byte changed on the way", tamper: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(testKeys(t)), Handler: handler(tt.ownDigest)})
			target := gw.URL
			if tt.tamper {
				target = mitm(t, gw.URL, flip)
			}
			tr := realTransport(t, gw)
			tr.RequireSignedResponses = true
			c := &http.Client{Transport: tr}
			var n int64
			var readErr error
			got := sha256.New()
			peak := heapPeak(func() {
				resp, err := c.Get(target + "/v1/export")
				if err != nil {
					readErr = err
					return
				}
				defer resp.Body.Close()
				n, readErr = io.Copy(got, resp.Body)
			})
			t.Logf("%d bytes read; heap peak %.1f MiB above the start", n, float64(peak)/(1<<20))
			if tt.tamper {
				if r, _ := httpsig.ReasonOf(readErr); r != httpsig.ReasonDigestMismatch || n != size {
					t.Fatalf("read %d bytes, %v; want all of them, then digest-mismatch", n, readErr)
				}
			} else if readErr != nil || n != size || !bytes.Equal(got.Sum(nil), want) {
				t.Fatalf("read %d bytes, %v", n, readErr)
			}
			// Holding the response would take 50 MiB at least; the
			// buffers of both ends and the test's own take a few.
			if peak > 16<<20 {
				t.Errorf("the heap grew by %.1f MiB while 50 MiB streamed through", float64(peak)/(1<<20))
			}
		})
	}
}

type flipByte struct {
	io.ReadCloser
	at, seen int64
}

func (f *flipByte) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if f.seen <= f.at && f.at < f.seen+int64(n) {
		p[f.at-f.seen] ^= 1
	}
	f.seen += int64(n)
	return n, err
}

// TestTransportGzip asks for gzip itself, checks the digest of the
// compressed content and hands the caller the decompressed one; a Base
// that decompresses on its own is refused, since it hides what was signed.
func TestTransportGzip(t *testing.T) {
	text := strings.Repeat("a compressible answer. ", 200)
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(testKeys(t)), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "gzip" {
			io.WriteString(w, text)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, text)
		zw.Close()
	})})
	tr := realTransport(t, gw)
	tr.RequireSignedResponses = true
	resp, err := (&http.Client{Transport: tr}).Get(gw.URL + "/v1/text")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != text || !resp.Uncompressed || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("%d bytes, %v, uncompressed %v", len(body), err, resp.Uncompressed)
	}
	if _, ok := VerifiedResponse(resp); !ok {
		t.Error("not marked verified")
	}
	// A Base net/http's own decompression hides behind.
	tr = realTransport(t, gw)
	tr.Base = roundTripFunc(http.DefaultTransport.RoundTrip)
	if _, err := (&http.Client{Transport: tr}).Get(gw.URL + "/v1/text"); err == nil || !strings.Contains(err.Error(), "decompressed") {
		t.Errorf("a Base that decompresses: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestJWKS fetches the gateway's keys once, again for a keyid it does not
// know (at most once a minute), over https or to loopback only, and keeps
// to the pinned keys.
func TestJWKS(t *testing.T) {
	var fetches atomic.Int64
	count := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == respsign.KeysPath {
				fetches.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(testKeys(t)), Wrap: count})
	now := time.Unix(1700000000, 0)
	j := &JWKS{URL: gw.URL + respsign.KeysPath, now: func() time.Time { return now }}
	tr := realTransport(t, nil)
	tr.GatewayKeys, tr.RequireSignedResponses = j, true
	c := &http.Client{Transport: tr}
	for i := 0; i < 3; i++ {
		resp, err := c.Get(gw.URL + "/v1/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if fetches.Load() != 1 {
		t.Errorf("%d fetches of the key set for three requests", fetches.Load())
	}
	ctx := context.Background()
	for i, tt := range []struct {
		after   time.Duration
		fetches int64
	}{{0, 1}, {30 * time.Second, 1}, {61 * time.Second, 2}, {62 * time.Second, 2}} {
		now = time.Unix(1700000000, 0).Add(tt.after)
		if _, err := j.ResolveKey(ctx, "rotated-away"); !errors.Is(err, httpsig.ErrUnknownKey) {
			t.Errorf("%d: %v", i, err)
		}
		if fetches.Load() != tt.fetches {
			t.Errorf("%d: an unknown keyid %v after the first fetch: %d fetches, want %d", i, tt.after, fetches.Load(), tt.fetches)
		}
	}
	for _, tt := range []struct {
		j    *JWKS
		want error
	}{
		{&JWKS{URL: "http://gateway.example/.well-known/signet-keys"}, nil},
		{&JWKS{URL: gw.URL + respsign.KeysPath, Pins: []string{"not-this-one"}}, httpsig.ErrUnknownKey},
	} {
		_, err := tt.j.ResolveKey(ctx, gw.KeyID)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s %v: %v", tt.j.URL, tt.j.Pins, err)
		}
	}
	pinned := &JWKS{URL: gw.URL + respsign.KeysPath, Pins: []string{gw.KeyID}} // its kid is its thumbprint
	if _, err := pinned.ResolveKey(ctx, gw.KeyID); err != nil {
		t.Error(err)
	}
}

// TestLoadGatewayKeys reads a key set, or one public key, and refuses a
// secret.
func TestLoadGatewayKeys(t *testing.T) {
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(testKeys(t))})
	dir := t.TempDir()
	der, _ := x509.MarshalPKIXPublicKey(gw.Public)
	files := map[string][]byte{
		"set.json": gw.JWKS,
		"gw.pub":   pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"secret":   []byte("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"),
	}
	for name, data := range files {
		os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
	for _, name := range []string{"set.json", "gw.pub"} {
		keys, err := LoadGatewayKeys(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		tr := realTransport(t, nil)
		tr.GatewayKeys, tr.RequireSignedResponses = keys, true
		resp, err := (&http.Client{Transport: tr}).Get(gw.URL + "/v1/x")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
	}
	if _, err := LoadGatewayKeys(filepath.Join(dir, "secret")); err == nil {
		t.Error("a shared secret was taken for a gateway key")
	}
	tr := realTransport(t, nil)
	tr.RequireSignedResponses = true
	if _, err := (&http.Client{Transport: tr}).Get(gw.URL + "/v1/x"); err == nil {
		t.Error("RequireSignedResponses without GatewayKeys: no error")
	}
}

// TestTransportPresign presigns URLs that a plain client (a browser)
// uses: with the clock offset the Transport learnt, they pass a gateway
// whose clock is behind; the single-use one passes once.
func TestTransportPresign(t *testing.T) {
	var seen atomic.Value
	gw := gwtest.Start(t, gwtest.Config{Keys: keyMap(testKeys(t)), Skew: -10 * time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.RequestURI)
		io.WriteString(w, "the image")
	})})
	tr := realTransport(t, gw)
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	u, err := tr.Presign(gw.URL+"/v1/img/7.png?size=large", httpsig.PresignOptions{Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if s := get(u); s != http.StatusUnauthorized {
		t.Errorf("created ahead of the gateway's clock: %d", s)
	}
	// A signed request teaches the Transport the gateway's clock.
	resp, err := (&http.Client{Transport: tr}).Get(gw.URL + "/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if off := tr.ClockOffset(mustURL(t, gw.URL)); (off + 10*time.Minute).Abs() > time.Second {
		t.Fatalf("clock offset %v", off)
	}
	u, err = tr.Presign(gw.URL+"/v1/img/7.png?size=large", httpsig.PresignOptions{Expires: time.Hour, SingleUse: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := get(u); s != 200 || seen.Load() != "/v1/img/7.png?size=large" {
		t.Errorf("%d, the API saw %v", s, seen.Load())
	}
	if s := get(u); s != http.StatusUnauthorized {
		t.Errorf("a single-use URL used twice: %d", s)
	}
	// Presign with a key file.
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "client.key")
	der, _ := x509.MarshalPKCS8PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)))
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	gw2 := gwtest.Start(t, gwtest.Config{Keys: keyMap(testKeys(t))})
	u, err = Presign(testKeys(t)[1].id, keyFile, gw2.URL+"/v1/files/a.pdf", httpsig.PresignOptions{Expires: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if s := get(u); s != 200 {
		t.Errorf("client.Presign: %d", s)
	}
}
