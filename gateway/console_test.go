package gateway_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/keys/sqlite"
	limitmemory "github.com/signet-dev/signet/limit/memory"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// TestConsoleServed checks the console's files and their headers: a
// strict Content-Security-Policy, no inline script, and the JavaScript
// client's modules as they are in clients/js.
func TestConsoleServed(t *testing.T) {
	e := newAdminEnv(t)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(e.admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, page := get("/")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") ||
		resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GET /: %d %v", resp.StatusCode, resp.Header)
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, " style=") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Errorf("the page has inline script or style, or an absolute URL:\n%s", page)
	}
	want, err := os.ReadFile("../clients/js/lib/keys.js")
	if err != nil {
		t.Fatal(err)
	}
	if resp, got := get("/ui/signet/lib/keys.js"); resp.StatusCode != 200 || got != string(want) || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("/ui/signet/lib/keys.js: %d %s, %d bytes (want %d)", resp.StatusCode, resp.Header.Get("Content-Type"), len(got), len(want))
	}
	for _, p := range []string{"/ui/signet/lib/server/verifier.js", "/ui/../go.mod", "/ui/signet/package.json", "/index.html"} {
		if resp, _ := get(p); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// TestConsoleBrowser drives the admin console in headless Chromium as an
// operator would: a key without the admin scope is refused with a clear
// message; an Ed25519 admin key file is loaded; an HMAC key is made and
// its secret read once; an Ed25519 key is made from a pair generated in
// the browser, whose private key is downloaded; both are used through the
// gateway by the test; their usage and refusals appear; one is rotated,
// the other revoked with confirmation; a key is edited, disabled and
// enabled; the audit log names the admin key; after a reload the page
// holds no key and no secret. Every request the page makes is to its own
// origin (checked on the browser's network events), no CSP violation or
// script error happens, and screenshots of the main pages are saved in
// $SIGNET_TEST_OUTPUT/console (default: under the system's temporary
// directory).
//
// Requests are counted by the gateway's keys.Meter, flushed by the test.
func TestConsoleBrowser(t *testing.T) {
	chromium := findChromium(t)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keys.db"), sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.New(ctx, store, keys.Options{MasterKey: keys.NewMasterKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	meter := keys.NewMeter(ks, keys.MeterOptions{Interval: time.Hour})
	t.Cleanup(func() { meter.Close() })
	up := newUpstream(t)
	upURL, _ := url.Parse(up.srv.URL)
	lim := limitmemory.New(limitmemory.Options{Ledger: gateway.Ledger(ks)})
	g, err := gateway.New(gateway.Config{
		Upstream: upURL, Admin: ks, Meter: meter, Limiter: lim, Uses: lim,
		Verify: middleware.Options{
			Verifier: httpsig.Verifier{Keys: ks, Nonces: memory.New(memory.Options{})},
		},
		Logger: slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	admin := httptest.NewServer(g.AdminHandler())
	t.Cleanup(admin.Close)
	gw := &env{up: up, gw: httptest.NewServer(g.Handler())}
	t.Cleanup(gw.gw.Close)

	// The operator's Ed25519 admin key, as signet keygen writes it, and a
	// client key without the admin scope.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(pub)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
	adminKey, err := ks.Create(ctx, keys.CreateRequest{Owner: "ops", Scopes: []string{keys.ScopeAdmin}, Actor: "test",
		PublicKey: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})})
	if err != nil {
		t.Fatal(err)
	}
	adminFile := filepath.Join(t.TempDir(), "ops.key")
	if err := os.WriteFile(adminFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	plain, err := ks.Create(ctx, keys.CreateRequest{Owner: "app", Scopes: []string{"orders:read"}, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}

	b := newConsoleBrowser(t, chromium, admin.URL)
	defer b.close()

	// A key without the admin scope: refused, with the reason in words.
	b.do(chromedp.Navigate(admin.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#load-form")))
	b.do(chromedp.SetValue(chromedp.CSS(`input[name=keyid]`), plain.Key.ID),
		chromedp.SetValue(chromedp.CSS(`input[name=secret]`), base64.StdEncoding.EncodeToString(plain.Secret)),
		chromedp.Click(chromedp.CSS(`#load-form button[type=submit]`)))
	msg := b.poll(`document.getElementById('error').textContent`)
	if !strings.Contains(msg, "403 insufficient-scope") || !strings.Contains(msg, "does not hold the admin scope") {
		t.Fatalf("a non-admin key: %q", msg)
	}
	if v := b.eval(`document.querySelector('input[name=secret]').value`); v != "" {
		t.Fatalf("the pasted secret stays in the form: %q", v)
	}
	b.shot("01-non-admin-refused")

	// The admin key, from its file: imported not extractable.
	b.do(chromedp.SetValue(chromedp.CSS(`input[name=keyid]`), adminKey.Key.ID),
		chromedp.SetUploadFiles(chromedp.CSS(`input[name=keyfile]`), []string{adminFile}),
		chromedp.Click(chromedp.CSS(`#load-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("table#keys")))
	if s := b.text("#session-key"); !strings.Contains(s, adminKey.Key.ID) || !strings.Contains(s, "ed25519, not extractable") {
		t.Fatalf("session: %q", s)
	}
	b.checkLabels()

	// An HMAC key: its secret shown once.
	b.nav("#/create", "#create-form")
	b.checkLabels()
	b.do(chromedp.SetValue(chromedp.CSS(`#create-form input[name=owner]`), "acme"),
		chromedp.SetValue(chromedp.CSS(`#create-form input[name=scopes]`), "orders:read"),
		chromedp.SetValue(chromedp.CSS(`#create-form input[name=label]`), "ci"),
		chromedp.SetValue(chromedp.CSS(`#create-form input[name=uses]`), "100"),
		chromedp.Click(chromedp.CSS(`#create-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#secret")))
	secret := b.text("#secret")
	hmacID := b.text("#created-key a")
	if d := b.eval(`document.getElementById('download-secret').download`); d != hmacID+".key" {
		t.Errorf("the secret downloads as %q", d)
	}
	b.shot("02-create-hmac-secret-once")
	hmacClient := hmacSignerB64(t, hmacID, secret)

	// An Ed25519 key from a pair made in the browser; the private key is
	// downloaded, and only the public key sent.
	b.do(chromedp.Click(chromedp.CSS(`#create-another`)), chromedp.WaitVisible(chromedp.CSS("#create-form")))
	b.do(chromedp.SetValue(chromedp.CSS(`#create-form select[name=alg]`), "ed25519"))
	b.eval(`document.querySelector('#create-form select[name=alg]').dispatchEvent(new Event('change')), ''`)
	b.do(chromedp.Click(chromedp.CSS(`#create-form button.generate`)), chromedp.WaitVisible(chromedp.CSS("#download-private")))
	privPEM := b.download("#download-private")
	b.shot("03-create-ed25519-generating")
	b.do(chromedp.SetValue(chromedp.CSS(`#create-form input[name=owner]`), "globex"),
		chromedp.SetValue(chromedp.CSS(`#create-form input[name=scopes]`), "orders:read"),
		chromedp.Click(chromedp.CSS(`#create-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#created-key a")))
	edID := b.text("#created-key a")
	b.shot("04-create-ed25519-generated")
	edKey, err := httpsig.LoadSigningKey(httpsig.AlgEd25519, privPEM)
	if err != nil {
		t.Fatalf("the downloaded private key: %v\n%s", err, privPEM)
	}
	edClient := &httpsig.Signer{Key: edKey, KeyID: edID}
	if k, err := ks.Get(ctx, edID); err != nil || k.Alg != httpsig.AlgEd25519 || !strings.Contains(string(k.PublicKey), "PUBLIC KEY") {
		t.Fatalf("the Ed25519 key in the store: %+v %v", k, err)
	}

	// Both keys through the gateway, and a forged request.
	for range 3 {
		sendExpect(t, gw, hmacClient, 200, "")
	}
	for range 2 {
		sendExpect(t, gw, edClient, 200, "")
	}
	sendExpect(t, gw, hmacSigner(t, hmacID, make([]byte, 32)), 401, "bad-signature")
	flush(t, meter)

	b.nav("#/key/"+hmacID, "#key-usage")
	if s := b.text("#key-usage .totals"); !strings.HasPrefix(s, "3 accepted, 1 refused") || !strings.Contains(s, "bad-signature: 1") {
		t.Errorf("usage of %s: %q", hmacID, s)
	}
	if s := b.text("#details"); !strings.Contains(s, "active") || !strings.Contains(s, "orders:read") || !strings.Contains(s, "remaining") {
		t.Errorf("details of %s: %q", hmacID, s)
	}
	b.shot("05-key-detail")

	// Edit scopes and metadata, with If-Match.
	b.do(chromedp.Click(chromedp.CSS("#edit summary")),
		chromedp.SetValue(chromedp.CSS(`#edit-form input[name=scopes]`), "orders:read, orders:write"),
		chromedp.SetValue(chromedp.CSS(`#edit-form textarea[name=metadata]`), `{"plan":"pro"}`))
	b.checkLabels()
	b.do(chromedp.Click(chromedp.CSS(`#edit-form button[type=submit]`)))
	b.poll(`(document.getElementById('metadata') || {}).textContent`)
	if k, _ := ks.Get(ctx, hmacID); !slices.Equal(k.Scopes, []string{"orders:read", "orders:write"}) || string(k.Metadata) != `{"plan":"pro"}` || k.Uses == nil {
		t.Errorf("after the edit: %+v", k)
	}

	// Disable, refused through the gateway; enable again.
	b.do(chromedp.Click(chromedp.CSS("#disable")), chromedp.WaitVisible(chromedp.CSS("#enable")))
	sendExpect(t, gw, hmacClient, 401, "")
	b.do(chromedp.Click(chromedp.CSS("#enable")), chromedp.WaitVisible(chromedp.CSS("#disable")))
	sendExpect(t, gw, hmacClient, 200, "")

	// Rotate the HMAC key with an hour's overlap: both secrets work.
	b.do(chromedp.Click(chromedp.CSS("#rotate summary")),
		chromedp.SetValue(chromedp.CSS(`#rotate-form input[name=overlap]`), "1h"),
		chromedp.Click(chromedp.CSS(`#rotate-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#secret")))
	newSecret, newID := b.text("#secret"), b.text("#created-key a")
	if newID == hmacID || newSecret == secret {
		t.Fatalf("rotation made %s", newID)
	}
	sendExpect(t, gw, hmacSignerB64(t, newID, newSecret), 200, "")
	sendExpect(t, gw, hmacClient, 200, "")
	b.nav("#/key/"+newID, "#chain")
	if s := b.text("#chain"); !strings.Contains(s, hmacID+" expiring") || !strings.Contains(s, newID+" active") {
		t.Errorf("rotation chain: %q", s)
	}

	// Revoke the Ed25519 key, confirmed in a dialog.
	// From the keyboard: Escape cancels; Enter on the focused button confirms.
	b.nav("#/key/"+edID, "#revoke")
	b.do(chromedp.Click(chromedp.CSS("#revoke")), chromedp.WaitVisible(chromedp.CSS("#confirm-revoke")))
	if f := b.eval(`document.activeElement.id`); f != "cancel-revoke" {
		t.Errorf("the dialog opens with %q focused, want Cancel", f)
	}
	b.do(chromedp.KeyEvent(kb.Escape))
	b.poll(`document.querySelector('dialog') ? '' : 'closed'`)
	if k, _ := ks.Get(ctx, edID); !k.Revoked.IsZero() {
		t.Fatal("Escape revoked the key")
	}
	b.do(chromedp.Click(chromedp.CSS("#revoke")), chromedp.WaitVisible(chromedp.CSS("#confirm-revoke")))
	b.shot("06-revoke-confirm")
	b.do(chromedp.Click(chromedp.CSS("#confirm-revoke")))
	if s := b.poll(`(s => s && s.textContent === 'revoked' && s.textContent)(document.querySelector('h1 .status'))`); s != "revoked" {
		t.Fatalf("after revoking: %q", s)
	}
	sendExpect(t, gw, edClient, 401, "key-revoked")
	sendExpect(t, gw, edClient, 401, "key-revoked")
	flush(t, meter)

	// The refusals across all keys.
	b.nav("#/usage", "#refusals")
	rep, err := ks.Usage(ctx, keys.UsageQuery{Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// The disabled key's refusal is key-disabled, the revoked one's
	// key-revoked.
	if rep.Total.Refused[httpsig.ReasonKeyRevoked]+rep.Total.Refused[keys.ReasonKeyDisabled] < 2 || rep.Total.Refused[httpsig.ReasonBadSignature] != 1 {
		t.Errorf("refusals counted: %v", rep.Total.Refused)
	}
	s := b.text("#refusals")
	for reason, n := range rep.Total.Refused {
		if want := fmt.Sprintf("\n%s\t%d\t%d", reason, n, n); !strings.Contains(s, want) {
			t.Errorf("refusals lack %q: %q", want, s)
		}
	}
	if want := fmt.Sprintf("\naccepted\t%d\t%d", rep.Total.Accepted, rep.Total.Accepted); !strings.Contains(s, want) {
		t.Errorf("refusals lack %q: %q", want, s)
	}
	b.shot("07-usage")

	b.nav("#/keys?owner=acme", "table#keys")
	if s := b.text("table#keys"); !strings.Contains(s, hmacID) || !strings.Contains(s, newID) || strings.Contains(s, edID) {
		t.Errorf("keys of acme: %q", s)
	}
	b.nav("#/keys?status=revoked", "table#keys")
	if s := b.text("table#keys"); !strings.Contains(s, edID) || strings.Contains(s, hmacID) {
		t.Errorf("revoked keys: %q", s)
	}
	// Pages of 50 keys.
	for i := range 55 {
		if _, err := ks.Create(ctx, keys.CreateRequest{Owner: "bulk", Label: fmt.Sprint(i), Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	b.nav("#/keys?owner=bulk", "table#keys")
	rows := `String(document.querySelectorAll('table#keys tbody tr').length)`
	if n := b.eval(rows); n != "50" {
		t.Errorf("first page: %s rows", n)
	}
	b.shot("08-keys")
	b.do(chromedp.Click(chromedp.CSS("#next-page")))
	if n := b.poll(`location.hash.includes('cursor=') && !document.getElementById('main').hasAttribute('aria-busy') && document.getElementById('next-page') === null ? ` + rows + ` : ''`); n != "5" {
		t.Errorf("second page: %s rows", n)
	}

	b.nav("#/audit", "table#audit")
	s = b.text("table#audit")
	for _, want := range []string{"key:" + adminKey.Key.ID + "\trevoke\t" + edID, "key:" + adminKey.Key.ID + "\trotate\t" + hmacID,
		"key:" + adminKey.Key.ID + "\tcreate\t" + edID, "\tdisable\t", "\tenable\t", "\tset-scopes\t"} {
		if !strings.Contains(s, want) {
			t.Errorf("audit log lacks %q:\n%s", want, s)
		}
	}
	b.shot("09-audit")

	// A reload forgets the admin key, and no secret is left anywhere.
	b.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#load-form")))
	html := b.eval(`document.documentElement.outerHTML + localStorage.length + sessionStorage.length + document.cookie`)
	if strings.Contains(html, secret) || strings.Contains(html, newSecret) || !strings.HasSuffix(html, "</html>00") {
		t.Errorf("after a reload the page still holds something:\n%s", html)
	}
	if s := b.text("#session"); s != "" {
		t.Errorf("after a reload the session shows %q", s)
	}
	b.shot("10-reloaded")

	// Every request the page made went to its own origin.
	reqs := b.requests()
	if len(reqs) < 20 {
		t.Errorf("only %d requests seen", len(reqs))
	}
	for _, u := range reqs {
		if !strings.HasPrefix(u, admin.URL+"/") && !strings.HasPrefix(u, "blob:"+admin.URL+"/") {
			t.Errorf("the page requested %s", u)
		}
	}
	b.checkProblems()
	t.Logf("screenshots in %s", b.out)
}

// send sends a signed GET through the gateway and checks its status and,
// if given, the reason of the refusal.
func sendExpect(t *testing.T, e *env, s *httpsig.Signer, status int, reason string) {
	t.Helper()
	resp, body := e.send(t, s, "GET", "/orders", "", nil)
	if resp.StatusCode != status || reason != "" && reasonOf(t, resp, body) != reason {
		t.Fatalf("%s through the gateway: %d %s, want %d %s", s.KeyID, resp.StatusCode, body, status, reason)
	}
}

func flush(t *testing.T, m *keys.Meter) {
	t.Helper()
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// findChromium returns the path of Debian's chromium; without it the test
// fails under CI=true and is skipped elsewhere.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is needed for the console's browser test (apt-get install chromium; scripts/test does)")
	}
	t.Skip("chromium is needed for the console's browser test (apt-get install chromium)")
	return ""
}

// consoleBrowser is a headless Chromium on one tab, recording what the page
// requests and what goes wrong in it.
type consoleBrowser struct {
	t      *testing.T
	ctx    context.Context
	cancel func()
	out    string // screenshots
	dl     string // downloads
	origin string

	mu       sync.Mutex
	urls     []string
	problems []string
}

func newConsoleBrowser(t *testing.T, chromium, origin string) *consoleBrowser {
	t.Helper()
	out := os.Getenv("SIGNET_TEST_OUTPUT")
	if out == "" {
		out = filepath.Join(os.TempDir(), "signet-test-output")
	}
	out = filepath.Join(out, "console")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
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
		chromedp.WindowSize(1366, 900),
	)
	tctx, cancelTab := chromedp.NewContext(actx)
	b := &consoleBrowser{t: t, ctx: tctx, out: out, dl: t.TempDir(), origin: origin,
		cancel: func() { cancelTab(); cancelAlloc(); cancel() }}
	err := chromedp.Listen(tctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.urls = append(b.urls, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			b.problems = append(b.problems, (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				for _, a := range ev.Args {
					b.problems = append(b.problems, "console: "+string(a.Value)+a.Description)
				}
			}
		case *cdplog.EventEntryAdded:
			// The refusals the test asks for are network errors; anything
			// else logged as an error (a CSP violation) is a problem.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				b.problems = append(b.problems, fmt.Sprintf("log (%s): %s", ev.Entry.Source, ev.Entry.Text))
			}
		}
	})
	if err != nil {
		b.close()
		t.Fatalf("chromium: %v", err)
	}
	return b
}

func (b *consoleBrowser) close() { b.cancel() }

func (b *consoleBrowser) fail(format string, args ...any) {
	b.t.Helper()
	b.mu.Lock()
	problems := slices.Clone(b.problems)
	b.mu.Unlock()
	b.shot("failure")
	b.t.Fatalf(format+"\npage problems: %q", append(args, problems)...)
}

func (b *consoleBrowser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.fail("chromium: %v", err)
	}
}

func (b *consoleBrowser) eval(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.fail("evaluating %s: %v", js, err)
	}
	return v
}

// poll waits for js to give a non-empty string and returns it.
func (b *consoleBrowser) poll(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Poll[string](js, chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		b.fail("waiting for %s: %v", js, err)
	}
	return v
}

func (b *consoleBrowser) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.fail("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

// nav goes to a route of the console and waits for sel.
func (b *consoleBrowser) nav(hash, sel string) {
	b.t.Helper()
	b.eval(`location.hash = ` + jsString(hash) + `, ''`)
	b.poll(`(document.getElementById('main').getAttribute('aria-busy') === null && document.querySelector(` + jsString(sel) + `)) ? 'yes' : ''`)
}

func jsString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + `'`
}

func (b *consoleBrowser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.out, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// download clicks the link sel and returns the file it downloads.
func (b *consoleBrowser) download(sel string) []byte {
	b.t.Helper()
	progress := chromedp.Events(b.ctx, browser.DownloadProgress)
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		yes := true
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: b.dl, EventsEnabled: &yes,
		})
		return err
	}), chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range progress {
		if err != nil {
			b.fail("download: %v", err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			data, err := os.ReadFile(filepath.Join(b.dl, ev.GUID))
			if err != nil {
				b.fail("download: %v", err)
			}
			return data
		case browser.DownloadProgressStateCanceled:
			b.fail("the download of %s was cancelled", sel)
		}
	}
	b.fail("no download")
	return nil
}

// checkLabels fails if a form control of the page has no label.
func (b *consoleBrowser) checkLabels() {
	b.t.Helper()
	if s := b.eval(`[...document.querySelectorAll('input, select, textarea')]
		.filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
		.map(el => el.outerHTML).join('\n')`); s != "" {
		b.t.Errorf("controls without a label:\n%s", s)
	}
}

func (b *consoleBrowser) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.urls)
}

func (b *consoleBrowser) checkProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("in the page: %s", p)
	}
}
