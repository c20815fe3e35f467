package interop

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	signetkeys "github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/sqlite"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// TestBrowser loads clients/js in headless Chromium as an ES module, as it
// is, and has the page (clients/js/test/browser/run.mjs) sign and verify
// with Web Crypto: in the page itself, against the Go verifier, and through
// a real gateway with its admin API. Everything is served by one server on
// 127.0.0.1, so the page's requests are same-origin: the gateway needs no
// CORS for them. The server hands /v1/keys… to the gateway's admin handler
// and the rest of /v1/ to its proxy, in process and unchanged, so the
// gateway verifies the request the browser sent.
//
// Chromium is Debian's chromium package (scripts/test installs it); without
// it the test fails under CI=true and is skipped elsewhere.
func TestBrowser(t *testing.T) {
	chromium := findChromium(t)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := signetkeys.New(ctx, store, signetkeys.Options{MasterKey: signetkeys.NewMasterKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	newKey := func(owner string, scopes ...string) browserKey {
		c, err := ks.Create(ctx, signetkeys.CreateRequest{Owner: owner, Alg: httpsig.AlgHMACSHA256, Scopes: scopes, Actor: "browser test"})
		if err != nil {
			t.Fatal(err)
		}
		return browserKey{KeyID: c.Key.ID, Secret: base64.StdEncoding.EncodeToString(c.Secret)}
	}
	config := browserConfig{
		Admin:   newKey("browser-admin", signetkeys.ScopeAdmin),
		Client:  newKey("browser-client", "orders:write"),
		BenchMS: 300,
	}

	up := httptest.NewServer(http.HandlerFunc(echo))
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)
	g, err := gateway.New(gateway.Config{
		Upstream: upURL, Admin: ks,
		Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: ks, Nonces: memory.New(memory.Options{})}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	goVerifier := newGoVerifier(t)
	config.Go = goVerifier.key

	js, err := filepath.Abs("../../clients/js")
	if err != nil {
		t.Fatal(err)
	}
	static := http.FileServer(http.Dir(js))
	testdata := http.StripPrefix("/testdata/", http.FileServer(http.Dir("../../testdata")))
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/v1/keys" || strings.HasPrefix(p, "/v1/keys/") || p == "/v1/audit":
			g.AdminHandler().ServeHTTP(w, r)
		case strings.HasPrefix(p, "/v1/"):
			g.Handler().ServeHTTP(w, r)
		case strings.HasPrefix(p, "/go/"):
			goVerifier.ServeHTTP(w, r)
		case strings.HasPrefix(p, "/testdata/rfc9421/"):
			testdata.ServeHTTP(w, r)
		case r.Method == http.MethodGet && (p == "/index.js" || strings.HasPrefix(p, "/lib/") ||
			strings.HasPrefix(p, "/test/browser/") || strings.HasPrefix(p, "/test/helpers/")):
			static.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(front.Close)

	report := runPage(t, chromium, front.URL+"/test/browser/index.html", config)
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
	for _, name := range []string{"sign hmac-sha256", "verify hmac-sha256", "sign ed25519", "verify ed25519"} {
		t.Logf("in Chromium: %-18s %7d ops/s", name, report.Bench[name])
	}
}

type browserKey struct {
	KeyID  string `json:"keyId"`
	Secret string `json:"secret"`
}

// browserConfig is the argument of run(config) in run.mjs.
type browserConfig struct {
	Admin   browserKey `json:"admin"`
	Client  browserKey `json:"client"`
	Go      browserKey `json:"go"`
	BenchMS int        `json:"benchMs"`
}

type browserReport struct {
	Results []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"results"`
	Bench map[string]int `json:"bench"`
}

// findChromium returns the path of Debian's chromium.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is needed for the browser test (apt-get install chromium; scripts/test does)")
	}
	t.Skip("chromium is needed for the browser test (apt-get install chromium)")
	return ""
}

// runPage opens page in a fresh headless Chromium, calls
// window.signetTest.run(config) there and returns what it resolves to.
func runPage(t *testing.T, chromium, page string, config any) browserReport {
	t.Helper()
	arg, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	return evalInPage[browserReport](t, chromium, page, `window.signetTest.run(`+string(arg)+`)`)
}

// evalInPage opens page in a fresh headless Chromium, waits for
// window.signetTest, and returns what expr resolves to there.
func evalInPage[T any](t *testing.T, chromium, page, expr string) T {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()

	// What the page could not do (a module that failed to load, say) is
	// told in its exceptions and console errors.
	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			problems = append(problems, (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				for _, a := range ev.Args {
					problems = append(problems, string(a.Value)+a.Description)
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("chromium: %v\npage errors: %q", err, problems)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(page),
		chromedp.Poll[chromedp.Void](`window.signetTest !== undefined`, chromedp.WithPollingTimeout(15*time.Second)),
	)
	if err != nil {
		fail(err)
	}
	report, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		fail(err)
	}
	return report
}

// goVerifier verifies requests with httpsig at /go/verify, answering what
// it found and the signature base it built, and takes public keys at
// /go/keys.
type goVerifier struct {
	key      browserKey
	mu       sync.Mutex
	keys     httpsig.KeyMap
	verifier *httpsig.Verifier
}

func newGoVerifier(t *testing.T) *goVerifier {
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i * 7)
	}
	hk, err := httpsig.NewHMACKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	v := &goVerifier{
		key:  browserKey{KeyID: "go-hmac", Secret: base64.StdEncoding.EncodeToString(secret)},
		keys: httpsig.KeyMap{"go-hmac": hk},
	}
	v.verifier = &httpsig.Verifier{Keys: v, Nonces: memory.New(memory.Options{}), Scheme: "http", Debug: true}
	return v
}

func (v *goVerifier) ResolveKey(ctx context.Context, keyID string) (httpsig.VerifyingKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys.ResolveKey(ctx, keyID)
}

func (v *goVerifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/go/keys":
		var req struct {
			KeyID     string `json:"keyId"`
			Alg       string `json:"alg"`
			PublicKey string `json:"publicKey"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key, err := httpsig.LoadVerifyingKey(httpsig.Algorithm(req.Alg), []byte(req.PublicKey))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		v.mu.Lock()
		v.keys[req.KeyID] = key
		v.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case "/go/verify":
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var out struct {
			OK     bool   `json:"ok"`
			Reason string `json:"reason,omitempty"`
			Detail string `json:"detail,omitempty"`
			Base   string `json:"base"`
		}
		res, err := v.verifier.VerifyRequest(r, body)
		var ve *httpsig.VerifyError
		switch {
		case err == nil:
			out.OK, out.Base = true, res.Base
		case errors.As(err, &ve):
			out.Reason, out.Detail, out.Base = string(ve.Reason), ve.Detail, ve.Base
		default:
			out.Reason, out.Detail = "error", err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(&out)
	default:
		http.NotFound(w, r)
	}
}
