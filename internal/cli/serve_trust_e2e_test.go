package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/middleware"
)

// TestServeUpstreamTrustEndToEnd runs signet serve as an operator would,
// from a policy file that turns on upstream_signing and gateway_keys, in
// front of a Go API behind middleware.TrustGateway, whose key set comes
// from the gateway's /.well-known/signet-keys. It checks that what the
// gateway forwards is accepted with the identity the gateway vouched for
// (signed and public routes), that the gateway's own refusals are signed as
// such, that requests sent around the gateway (forged
// identity fields, another key under the gateway's keyid, a replay, a
// changed field) are refused, that responses verify against the published
// keys in the Go client, and that `signet gateway-keys rotate` on the live
// file while traffic runs refuses no request, on either side, and that
// both keys are seen signing, by the API and by the client.
func TestServeUpstreamTrustEndToEnd(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "keys.db")
	code, out, stderr := run(t, "", "keys", "create", "--db", db, "--owner", "acme", "--scopes", "orders:read,orders:write", "--json")
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
	ringFile := filepath.Join(dir, "gateway-keys.json")
	code, out, stderr = run(t, "", "gateway-keys", "init", ringFile)
	if code != 0 {
		t.Fatalf("gateway-keys init: %s", stderr)
	}
	oldKey := strings.TrimSpace(out)

	// The API: TrustGateway in front of a handler that says what it was
	// vouched for. The trust middleware is put in once the gateway's admin
	// address is known; the raw requests are kept to be sent again.
	type seen struct {
		KeyID, Owner, GatewayKey string
		Scopes                   []string
		Public                   bool
		Body                     string
	}
	var (
		trust      atomic.Pointer[http.Handler]
		mu         sync.Mutex
		signedBy   = map[string]int{}
		captured   *http.Request
		upRefusals atomic.Int64
	)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := middleware.VouchedFromContext(r.Context())
		if !ok {
			http.Error(w, "not vouched for", http.StatusInternalServerError)
			return
		}
		mu.Lock()
		signedBy[v.GatewayKeyID]++
		mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{KeyID: v.KeyID, Owner: v.Owner, Scopes: v.Scopes, Public: v.Public, GatewayKey: v.GatewayKeyID, Body: string(body)})
	})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/orders/capture" {
			mu.Lock()
			if captured == nil {
				captured = r.Clone(context.Background())
				captured.Body = nil
			}
			mu.Unlock()
		}
		h := trust.Load()
		if h == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	}))
	defer upstream.Close()

	config := filepath.Join(dir, "signet.yaml")
	policyText := fmt.Sprintf(`# The API behind the gateway checks the gateway's signature.
upstream: %s
db: %s
gateway_keys: %s
upstream_signing: true
routes:
  - {match: "GET /v1/orders/{id}", scopes: ["orders:read"]}
  - {match: "POST /v1/orders", scopes: ["orders:write"]}
  - {match: "GET /healthz", public: true}
`, upstream.URL, db, ringFile)
	if err := os.WriteFile(config, []byte(policyText), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, "--config", config)
	defer srv.stop(t)
	base := "http://" + srv.addrs.Addr
	jwksURL := "http://" + srv.addrs.AdminAddr + "/.well-known/signet-keys"

	mwTrust, err := middleware.TrustGateway(middleware.TrustOptions{
		JWKSURL: jwksURL,
		Observe: func(r *http.Request, o middleware.Outcome) {
			if o.Status != 0 {
				upRefusals.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := mwTrust(app)
	trust.Store(&h)

	newTransport := func(require bool) *client.Transport {
		t.Helper()
		tr, err := client.NewTransport(created.Key.ID, keyFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr.GatewayKeys = &client.JWKS{URL: jwksURL}
		tr.RequireSignedResponses = require
		return tr
	}
	do := func(hc *http.Client, method, path, body string) (*http.Response, seen, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, seen{}, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return resp, seen{}, err
		}
		var s seen
		if resp.StatusCode != http.StatusOK {
			return resp, s, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return resp, s, fmt.Errorf("%s %s: %q: %v", method, path, raw, err)
		}
		return resp, s, nil
	}

	// Through the gateway: signed reads and writes, and a public route.
	hc := &http.Client{Transport: newTransport(true)}
	resp, s, err := do(hc, "GET", "/v1/orders/capture", "")
	if err != nil {
		t.Fatal(err)
	}
	res, ok := client.VerifiedResponse(resp)
	if !ok || res.KeyID != oldKey || res.Tag != httpsig.ResponseTag {
		t.Fatalf("the response did not verify against the published key %s: %v %+v", oldKey, ok, res)
	}
	if s.KeyID != created.Key.ID || s.Owner != "acme" || s.Public || s.GatewayKey != oldKey || strings.Join(s.Scopes, ",") != "orders:read,orders:write" {
		t.Fatalf("the API was vouched for %+v", s)
	}
	if _, s, err = do(hc, "POST", "/v1/orders", `{"sku":"A-1"}`); err != nil || s.Body != `{"sku":"A-1"}` || s.KeyID != created.Key.ID {
		t.Fatalf("POST through the gateway: %+v %v", s, err)
	}
	if _, s, err = do(http.DefaultClient, "GET", "/healthz", ""); err != nil || !s.Public || s.KeyID != "" || s.GatewayKey != oldKey {
		t.Fatalf("public route: %+v %v", s, err)
	}

	// The gateway's own refusal (no route) is signed as its own.
	resp, _, err = do(hc, "GET", "/v2/nothing", "")
	if res, ok := client.VerifiedResponse(resp); resp == nil || resp.StatusCode != 404 || !ok || res.Tag != httpsig.GatewayTag || res.KeyID != oldKey {
		t.Fatalf("no-route: %v %v %+v", err, ok, res)
	}

	// Around the gateway: refused by the API.
	mu.Lock()
	raw := captured
	mu.Unlock()
	if raw == nil || raw.Header.Get("Signature-Input") == "" {
		t.Fatal("the forwarded request was not captured")
	}
	direct := func(r *http.Request) (int, string) {
		t.Helper()
		r.RequestURI = ""
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p middleware.Problem
		json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, strings.TrimPrefix(p.Type, middleware.DefaultProblemBase)
	}
	forged, _ := http.NewRequest("GET", upstream.URL+"/v1/orders/7", nil)
	forged.Header.Set("X-Signet-Key-Id", created.Key.ID)
	forged.Header.Set("X-Signet-Owner", "acme")
	forged.Header.Set("X-Signet-Scopes", "orders:read,orders:write,admin")
	if status, reason := direct(forged); status != 401 || reason != "missing-signature" {
		t.Fatalf("forged identity fields, unsigned: %d %s", status, reason)
	}
	rogue, err := keyring.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rogue.Keys[0].Signer()
	if err != nil {
		t.Fatal(err)
	}
	comps, _ := httpsig.ParseComponents(`@method @authority @path x-signet-key-id x-signet-owner x-signet-scopes x-request-id`)
	forged.Header.Set("X-Request-Id", "r-1")
	impostor := httpsig.Signer{Key: rk, KeyID: oldKey, Label: middleware.GatewayLabel, Tag: middleware.GatewayTag, Components: comps}
	if err := impostor.SignRequest(forged, nil); err != nil {
		t.Fatal(err)
	}
	if status, reason := direct(forged); status != 401 || reason != "bad-signature" {
		t.Fatalf("forged, signed by another key under the gateway's keyid: %d %s", status, reason)
	}
	replayed := raw.Clone(context.Background())
	replayed.URL.Scheme, replayed.URL.Host = "http", strings.TrimPrefix(upstream.URL, "http://")
	if status, reason := direct(replayed); status != 401 || reason != "replayed" {
		t.Fatalf("a forwarded request sent again: %d %s", status, reason)
	}
	changed := raw.Clone(context.Background())
	changed.URL.Scheme, changed.URL.Host = "http", replayed.URL.Host
	changed.Header.Set("X-Signet-Scopes", "orders:read,orders:write,admin")
	if status, reason := direct(changed); status != 401 || reason != "bad-signature" {
		t.Fatalf("a forwarded request with its scopes widened: %d %s", status, reason)
	}
	refusedDirect := upRefusals.Load()
	if refusedDirect != 4 {
		t.Fatalf("the API counted %d refusals, want the 4 direct requests", refusedDirect)
	}

	// Rotation on the live file while traffic runs: stream A started
	// before (its responses checked when their key is known to it), stream
	// B once the successor is published (every response must verify, as
	// for a client whose cached set is younger than --publish-ahead).
	var (
		stop         = make(chan struct{})
		wg           sync.WaitGroup
		sent, failed atomic.Int64
		failMu       sync.Mutex
		failures     []string
		verifiedBy   = map[string]int{}
		verifiedMu   sync.Mutex
	)
	fail := func(err error) {
		failed.Add(1)
		failMu.Lock()
		if len(failures) < 5 {
			failures = append(failures, err.Error())
		}
		failMu.Unlock()
	}
	stream := func(tr *client.Transport, i int) {
		defer wg.Done()
		hc := &http.Client{Transport: tr}
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			method, path, body := "GET", fmt.Sprintf("/v1/orders/%d", n), ""
			if (n+i)%3 == 0 {
				method, path, body = "POST", "/v1/orders", fmt.Sprintf(`{"n":%d}`, n)
			}
			sent.Add(1)
			resp, _, err := do(hc, method, path, body)
			if err != nil {
				fail(err)
				continue
			}
			if res, ok := client.VerifiedResponse(resp); ok {
				verifiedMu.Lock()
				verifiedBy[res.KeyID]++
				verifiedMu.Unlock()
			} else if tr.RequireSignedResponses {
				fail(fmt.Errorf("%s %s: not verified", method, path))
			}
		}
	}
	trA := newTransport(false)
	wg.Add(2)
	go stream(trA, 0)
	go stream(trA, 1)
	testtime.Eventually(t, 10*time.Second, func() error {
		if sent.Load() < 10 {
			return fmt.Errorf("%d requests sent", sent.Load())
		}
		return nil
	})

	code, out, stderr = run(t, "", "gateway-keys", "rotate", ringFile, "--publish-ahead", "4s", "--overlap", "1h")
	if code != 0 {
		t.Fatalf("gateway-keys rotate: %s", stderr)
	}
	newKey := strings.TrimSpace(out)
	testtime.Eventually(t, 20*time.Second, func() error {
		resp, err := http.Get(jwksURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		set, _ := io.ReadAll(resp.Body)
		keys, err := keyring.ParseJWKS(set)
		if err != nil {
			return err
		}
		if _, ok := keys[newKey]; !ok || len(keys) != 2 {
			return fmt.Errorf("the gateway publishes %s", set)
		}
		return nil
	})
	trB := newTransport(true)
	wg.Add(1)
	go stream(trB, 2)

	testtime.Eventually(t, 60*time.Second, func() error {
		mu.Lock()
		n := signedBy[newKey]
		mu.Unlock()
		verifiedMu.Lock()
		v := verifiedBy[newKey]
		verifiedMu.Unlock()
		if n < 10 || v < 10 {
			return fmt.Errorf("the new key signed %d requests for the API and %d verified responses", n, v)
		}
		return nil
	})
	close(stop)
	wg.Wait()

	failMu.Lock()
	defer failMu.Unlock()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the rotation, e.g. %v", failed.Load(), sent.Load(), failures)
	}
	if got := upRefusals.Load() - refusedDirect; got != 0 {
		t.Fatalf("the API refused %d requests during the rotation", got)
	}
	mu.Lock()
	defer mu.Unlock()
	verifiedMu.Lock()
	defer verifiedMu.Unlock()
	if signedBy[oldKey] == 0 || signedBy[newKey] == 0 || verifiedBy[oldKey] == 0 || verifiedBy[newKey] == 0 {
		t.Fatalf("keys seen by the API %v, by the client %v; want both %s and %s", signedBy, verifiedBy, oldKey, newKey)
	}
	t.Logf("%d requests through the rotation from %s to %s; the API saw %v, the client verified %v", sent.Load(), oldKey, newKey, signedBy, verifiedBy)

	code, out, _ = run(t, "", "gateway-keys", "list", ringFile)
	if code != 0 || !strings.Contains(out, newKey+"  signing") || !strings.Contains(out, oldKey+"  published") {
		t.Fatalf("gateway-keys list: %s", out)
	}
	if !bytes.Contains([]byte(srv.logs.String()), []byte(`"msg":"gateway keys reloaded"`)) {
		t.Fatal("no log of the reload")
	}
}
