package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/middleware"
)

// TestServeSignsResponses runs signet serve --gateway-keys as a user
// would and checks, with the Go client and the CLI, that it signs what it
// relays and what it refuses, that a 401 the API forges is neither
// retried nor taken for a clock correction, that a 50 MiB response
// streams through verified without being held in memory, that presigned
// URLs work through it and reach the API without their signature, and
// that a rotation of the key file is picked up while it runs.
func TestServeSignsResponses(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "keys.db")
	code, out, stderr := run(t, "", "keys", "create", "--db", db, "--owner", "acme", "--scopes", "orders:read,presign", "--json")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, stderr)
	}
	var created struct {
		Key    struct{ ID string }
		Secret string
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "acme.key")
	if err := writeFile(keyFile, []byte(created.Secret), 0o600, false); err != nil {
		t.Fatal(err)
	}

	const big = 50 << 20
	var forged, seenTarget atomic.Value
	var calls atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		seenTarget.Store(r.RequestURI)
		switch r.URL.Path {
		case "/forged":
			// The API's own 401, dressed as the gateway's refusal, dated
			// an hour ahead.
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("WWW-Authenticate", `Signature realm="signet"`)
			w.Header().Set("Date", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]any{"type": middleware.DefaultProblemBase + "expired", "status": 401})
			forged.Store(true)
		case "/big":
			w.Header().Set("Content-Type", "application/octet-stream")
			chunk := make([]byte, 64<<10)
			for i := range chunk {
				chunk[i] = byte(i * 7)
			}
			for sent := 0; sent < big; sent += len(chunk) {
				w.Write(chunk)
			}
		default:
			io.WriteString(w, "hello")
		}
	}))
	defer upstream.Close()

	ringFile := filepath.Join(dir, "gateway-keys.json")
	srv := startServe(t, "--upstream", upstream.URL, "--db", db, "--gateway-keys", ringFile)
	fi, err := os.Stat(ringFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file was not made 0600: %v %v", fi, err)
	}
	ring, err := keyring.Load(ringFile)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.addrs.Addr
	jwksURL := base + "/.well-known/signet-keys"
	tr, err := client.NewTransport(created.Key.ID, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.GatewayKeys = &client.JWKS{URL: jwksURL}
	tr.RequireSignedResponses = true
	hc := &http.Client{Transport: tr}
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp, body
	}

	resp, body := get("/v1/orders/7")
	res, ok := client.VerifiedResponse(resp)
	if resp.StatusCode != 200 || string(body) != "hello" || !ok || res.Tag != httpsig.ResponseTag || res.KeyID != ring.Keys[0].ID {
		t.Fatalf("200: %d %q %v %+v", resp.StatusCode, body, ok, res)
	}

	// The forged 401: relayed, so not retried, and the clock stays.
	before := calls.Load()
	resp, _ = get("/forged")
	res, ok = client.VerifiedResponse(resp)
	if resp.StatusCode != 401 || !ok || res.Tag != httpsig.ResponseTag || calls.Load() != before+1 || forged.Load() == nil {
		t.Fatalf("forged 401: %d %v %+v, %d calls", resp.StatusCode, ok, res, calls.Load()-before)
	}
	if off := tr.ClockOffset(resp.Request.URL); off != 0 {
		t.Fatalf("the forged 401 moved the clock by %v", off)
	}

	// The gateway's own refusal, verified by the CLI.
	code, _, stderr = run(t, "", "request", "-v", "--require-signed-responses", "--gateway-key", jwksURL, "--key-id", "sk_nobody", "--key", keyFile, base+"/v1/orders/7")
	if code == 0 || !strings.Contains(stderr, `tag="signet-gateway"`) || !strings.Contains(stderr, "unknown-key") {
		t.Fatalf("signet request, unknown key: %d %s", code, stderr)
	}

	// 50 MiB, streamed through and checked as read.
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	resp, err = hc.Get(base + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	close(stop)
	<-sampled
	res, ok = client.VerifiedResponse(resp)
	if err != nil || n != big || !ok || res.Tag != httpsig.ResponseTag {
		t.Fatalf("50 MiB: %d bytes, %v, %v %+v", n, err, ok, res)
	}
	if grew := int64(peak.Load()) - int64(baseline); grew > 20<<20 {
		t.Fatalf("the heap grew by %d MiB for a 50 MiB response", grew>>20)
	}

	// A presigned URL made by the CLI, used by a plain client.
	code, out, stderr = run(t, "", "presign", "--key-id", created.Key.ID, "--key", keyFile, "--expires", "1m", "--single-use", base+"/files/a.png?size=2")
	if code != 0 {
		t.Fatalf("presign: %s", stderr)
	}
	url := strings.TrimSpace(out)
	for i, want := range []int{200, 401} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("presigned URL, use %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	if got := seenTarget.Load(); got != "/files/a.png?size=2" {
		t.Fatalf("the API saw %v", got)
	}

	// Rotation: the new key signs at once (no time published ahead, so a
	// client that cached the set would meet an unknown key: a fresh one
	// checks); the old one stays published.
	code, out, stderr = run(t, "", "gateway-keys", "rotate", "--publish-ahead", "0s", "--overlap", "1h", ringFile)
	if code != 0 || !strings.Contains(stderr, "warning: the new key signs in 0s, before the 5m0s") {
		t.Fatalf("rotate: %d %s", code, stderr)
	}
	next := strings.TrimSpace(out)
	testtime.Eventually(t, 10*time.Second, func() error {
		fresh := &client.Transport{Signer: tr.Signer, GatewayKeys: &client.JWKS{URL: jwksURL}, RequireSignedResponses: true}
		resp, err := (&http.Client{Transport: fresh}).Get(base + "/v1/orders/8")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if res, _ := client.VerifiedResponse(resp); res.KeyID != next {
			return fmt.Errorf("signed by %s, want %s", res.KeyID, next)
		}
		return nil
	})
	code, out, _ = run(t, "", "gateway-keys", "list", ringFile)
	if code != 0 || !strings.Contains(out, next+"  signing") || !strings.Contains(out, ring.Keys[0].ID+"  published") {
		t.Fatalf("gateway-keys list: %s", out)
	}
	resp, err = http.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	keys, err := keyring.ParseJWKS(set)
	if err != nil || len(keys) != 2 {
		t.Fatalf("the key set after the rotation: %s %v", set, err)
	}
	if !strings.Contains(srv.logs.String(), `"msg":"gateway keys reloaded"`) {
		t.Fatal("no log of the reload")
	}
	if strings.Contains(srv.logs.String(), httpsig.PresignSignatureParam) {
		t.Fatal("the logs hold a presigned URL's signature")
	}
	srv.stop(t)
}

func TestGatewayKeysInit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gw.json")
	code, out, stderr := run(t, "", "gateway-keys", "init", file)
	if code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	r, err := keyring.Load(file)
	if err != nil || len(r.Keys) != 1 || r.Keys[0].ID != strings.TrimSpace(out) {
		t.Fatalf("%v %v, printed %q", r, err, out)
	}
	if code, _, stderr = run(t, "", "gateway-keys", "init", file); code != 2 || !strings.Contains(stderr, "exists") {
		t.Fatalf("init over a keyring: %d %s", code, stderr)
	}
	if code, _, stderr = run(t, "", "gateway-keys", "rotate", file); code != 0 || stderr != "" {
		t.Fatalf("rotate with the defaults: %d %q", code, stderr)
	}
	// A key file others may read is refused by serve, not used.
	os.Chmod(file, 0o644)
	db := filepath.Join(t.TempDir(), "keys.db")
	if code, _, stderr := run(t, "", "keys", "create", "--db", db, "--owner", "acme"); code != 0 {
		t.Fatal(stderr)
	}
	code, _, stderr = run(t, "", "serve", "--upstream", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--db", db, "--gateway-keys", file)
	if code != 1 || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("serve with a 0644 key file: %d %s", code, stderr)
	}
}
