package interop

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// TestBrowserCrossOrigin runs the real signet serve binary with
// --cors-origin naming the origin of a test page that headless Chromium
// loads from another server on 127.0.0.1 (another port: another origin).
// The page (clients/js/test/browser/cross-origin.mjs) imports the package
// as an ES module, makes an Ed25519 key with Web Crypto, has it registered,
// signs fetches to the gateway (each after a CORS preflight the gateway
// answers), reads refusals, and has the key revoked, after which it is
// refused. Registration and revocation go through the page's own server,
// which relays them to the admin API signed with an admin key made with
// signet keys create: an admin key has no place in a page, and the admin
// listener serves no CORS. The gateway signs its responses
// (--gateway-keys, a keyring made with signet gateway-keys init): the page
// verifies every one against the JWK set the gateway publishes, through
// CORS, on the listener it calls, and checks the key and tag (relayed
// answers and the gateway's own refusals).
func TestBrowserCrossOrigin(t *testing.T) {
	chromium := findChromium(t)
	if testing.Short() {
		t.Skip("builds the signet binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "signet")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/signet-dev/signet/cmd/signet").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "SIGNET_MASTER_KEY=", "SIGNET_DB=")
	db := filepath.Join(dir, "keys.db")
	cmd := exec.Command(bin, "keys", "create", "--db", db, "--owner", "ops", "--scopes", "admin", "--json")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	var admin struct {
		Key    struct{ ID string }
		Secret string
	}
	if err := json.Unmarshal(out, &admin); err != nil {
		t.Fatal(err)
	}
	secret, err := base64.StdEncoding.DecodeString(admin.Secret)
	if err != nil {
		t.Fatal(err)
	}
	adminKey, err := httpsig.NewHMACKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	adminSigner := &httpsig.Signer{Key: adminKey, KeyID: admin.Key.ID}

	ring := filepath.Join(dir, "gateway-keys.json")
	cmd = exec.Command(bin, "gateway-keys", "init", ring)
	cmd.Env = env
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("gateway-keys init: %v", err)
	}
	gatewayKeyID := strings.TrimSpace(string(out))

	// The upstream answers with the identity and body it got (at /v1/gz,
	// gzip-compressed), and counts the preflights that reach it (none
	// should).
	var preflights atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			preflights.Add(1)
		}
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/gz" && !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			// A compressing server that honours Accept-Encoding: the
			// gateway asks for identity on a page's behalf.
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"compressed":false}`)
			return
		}
		if r.URL.Path == "/v1/gz" || r.URL.Path == "/v1/gz-always" {
			// What an API behind a compressing server answers a browser,
			// which always asks for gzip (/v1/gz-always: even when asked
			// for identity).
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, `{"compressed":true}`)
			zw.Close()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"key_id": r.Header.Get("X-Signet-Key-Id"), "body": string(body), "method": r.Method})
	}))
	t.Cleanup(up.Close)

	var adminURL string
	callAdmin := func(method, path string, in any) (int, []byte) {
		var body []byte
		if in != nil {
			body, _ = json.Marshal(in)
		}
		r, _ := http.NewRequest(method, adminURL+path, bytes.NewReader(body))
		if body == nil {
			r.Body, r.ContentLength = http.NoBody, 0
		} else {
			r.Header.Set("Content-Type", "application/json")
		}
		if err := adminSigner.SignRequest(r, body); err != nil {
			return 0, []byte(err.Error())
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, got
	}

	// The page's server: the package's files, the page, and the relay.
	js, err := filepath.Abs("../../clients/js")
	if err != nil {
		t.Fatal(err)
	}
	static := http.FileServer(http.Dir(js))
	var mu sync.Mutex
	registered := map[string]bool{}
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case r.Method == http.MethodPost && p == "/relay/register":
			var req struct {
				PublicKey string `json:"public_key"`
			}
			json.NewDecoder(io.LimitReader(r.Body, 8<<10)).Decode(&req)
			code, got := callAdmin("POST", "/v1/keys", map[string]any{"owner": "browser", "alg": "ed25519", "public_key": req.PublicKey, "scopes": []string{"orders:write"}})
			var c struct{ Key struct{ ID string } }
			if code != http.StatusCreated || json.Unmarshal(got, &c) != nil {
				http.Error(w, string(got), http.StatusBadGateway)
				return
			}
			mu.Lock()
			registered[c.Key.ID] = true
			mu.Unlock()
			json.NewEncoder(w).Encode(map[string]string{"key_id": c.Key.ID})
		case r.Method == http.MethodPost && p == "/relay/revoke":
			var req struct {
				KeyID string `json:"key_id"`
			}
			json.NewDecoder(io.LimitReader(r.Body, 8<<10)).Decode(&req)
			mu.Lock()
			ok := registered[req.KeyID] // the relay revokes only the keys it registered
			mu.Unlock()
			if !ok {
				http.Error(w, "not a key of this page", http.StatusForbidden)
				return
			}
			if code, got := callAdmin("POST", "/v1/keys/"+req.KeyID+"/revoke", nil); code != http.StatusOK {
				http.Error(w, string(got), http.StatusBadGateway)
				return
			}
			w.Write([]byte("{}"))
		case r.Method == http.MethodGet && (p == "/index.js" || strings.HasPrefix(p, "/lib/") || strings.HasPrefix(p, "/test/browser/")):
			static.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(page.Close)

	// The gateway, allowing the page's origin.
	logs := &lockedBuffer{}
	serve := exec.Command(bin, "serve", "--upstream", up.URL, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--db", db, "--log-format", "json", "--drain", "0", "--cors-origin", page.URL, "--gateway-keys", ring)
	serve.Env, serve.Stderr = env, logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		serve.Process.Kill()
		<-exited
	})
	var addrs struct {
		Addr      string `json:"addr"`
		AdminAddr string `json:"admin_addr"`
	}
	for deadline := time.Now().Add(20 * time.Second); addrs.Addr == ""; {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"msg":"signet serve listening"`) {
				json.Unmarshal([]byte(line), &addrs)
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("signet serve exited: %v\n%s", err, logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("signet serve did not start:\n%s", logs)
		}
	}
	adminURL = "http://" + addrs.AdminAddr

	report := runPage(t, chromium, page.URL+"/test/browser/cross-origin.html", map[string]string{"gateway": "http://" + addrs.Addr, "keyId": gatewayKeyID})
	for _, r := range report.Results {
		if r.OK {
			t.Logf("ok: %s %s", r.Name, r.Detail)
		} else {
			t.Errorf("%s: %s", r.Name, r.Detail)
		}
	}
	if len(report.Results) < 8 {
		t.Errorf("the page ran %d checks, want 8", len(report.Results))
	}
	if n := preflights.Load(); n != 0 {
		t.Errorf("%d preflights reached the upstream", n)
	}
	if t.Failed() {
		t.Logf("signet serve logs:\n%s", logs)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
