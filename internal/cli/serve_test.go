package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/internal/testtime"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestServe runs signet serve as a user would, on a SQLite file made by
// signet keys create, sends it a signed request, checks /healthz, and stops
// it with a signal (a cancelled context).
func TestServe(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "keys.db")
	code, out, stderr := run(t, "", "keys", "create", "--db", db, "--owner", "acme", "--scopes", "orders:read", "--json")
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

	var seen http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		io.WriteString(w, "hello")
	}))
	defer upstream.Close()

	srv := startServe(t, "--upstream", upstream.URL, "--db", db, "--log-level", "debug")
	logs, addrs := srv.logs, srv.addrs

	tr, err := client.NewTransport(created.Key.ID, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Get("http://" + addrs.Addr + "/v1/orders/7")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello" || seen.Get("X-Signet-Owner") != "acme" {
		t.Fatalf("through the gateway: %d %q, upstream header %v", resp.StatusCode, body, seen)
	}
	resp, err = http.Get("http://" + addrs.AdminAddr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	if !strings.Contains(logs.String(), `"msg":"accepted"`) || !strings.Contains(logs.String(), created.Key.ID) {
		t.Fatalf("no access log for the request: %s", logs)
	}

	srv.stop(t)
}

type serveProc struct {
	logs  *syncBuffer
	addrs struct {
		Addr      string `json:"addr"`
		AdminAddr string `json:"admin_addr"`
	}
	cancel context.CancelFunc
	done   chan int
}

// startServe runs signet serve with args, on free loopback ports, and
// waits until it listens.
func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &serveProc{logs: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	e := &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: p.logs, Getenv: func(string) string { return "" }, Now: time.Now, Context: ctx}
	go func() {
		p.done <- Run(e, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--drain", "0"}, args...))
	}()
	t.Cleanup(cancel)
	testtime.Eventually(t, 10*time.Second, func() error {
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if strings.Contains(line, `"msg":"signet serve listening"`) {
				json.Unmarshal([]byte(line), &p.addrs)
			}
		}
		select {
		case code := <-p.done:
			t.Fatalf("serve exited %d: %s", code, p.logs)
		default:
		}
		if p.addrs.Addr == "" {
			return fmt.Errorf("serve did not start: %s", p.logs)
		}
		return nil
	})
	return p
}

// stop sends the signal (cancels the context) and waits for a clean exit.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case code := <-p.done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, p.logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on a signal")
	}
}

func TestServeUsage(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"serve"}, "--upstream is required"},
		{[]string{"serve", "--upstream", "ftp://x"}, "is not an http:// or https:// URL"},
		{[]string{"serve", "--upstream", "http://x", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"serve", "--upstream", "http://x", "--max-body", "lots"}, "--max-body"},
		{[]string{"serve", "--upstream", "http://x", "--log-format", "xml"}, "--log-format"},
		{[]string{"serve", "--upstream", "http://x", "--log-level", "loud"}, "--log-level"},
		{[]string{"serve", "--upstream", "http://x", "--scheme", "gopher"}, "--scheme"},
		{[]string{"serve", "--upstream", "http://x", "--max-in-flight", "0"}, "--max-in-flight must be at least 1"},
		{[]string{"serve", "--upstream", "http://x", "--default-rate", "lots"}, "--default-rate: rate"},
		{[]string{"serve", "--upstream", "http://x", "--owner-burst", "5"}, "--owner-rate: a burst needs a rate"},
		{[]string{"serve", "--upstream", "http://x", "--default-rate", "1/week", "--default-burst", "2000"}, "lasts longer"},
		{[]string{"serve", "--upstream", "http://x", "--meter-interval", "0s"}, "--meter-interval must be positive"},
		{[]string{"serve", "--upstream", "http://x", "--drain", "-1s"}, "cannot be negative"},
		{[]string{"serve", "--upstream", "http://x", "--replay-capacity", "0"}, "--replay-capacity must be at least 1"},
		{[]string{"serve", "--upstream", "http://x", "--redis", "redis://r", "--replay-capacity", "10"}, "with --redis, Redis holds the nonces"},
		{[]string{"serve", "--upstream=http://x", "--max-in-flight=0"}, "--max-in-flight must be at least 1"},
		{[]string{"serve", "--upstream", "http://x", "--max-age", "soon"}, `invalid argument "soon" for "--max-age" flag`},
		{[]string{"serve", "--upstream", "http://x", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"serve", "--upstream", "http://x", "--upstream-signing"}, "--upstream-signing (upstream_signing) needs the gateway's own keys: --gateway-keys FILE"},
		{[]string{"serve", "--upstream", "http://x", "extra"}, `unexpected argument "extra"`},
		{[]string{"demo", "extra"}, "unexpected argument"},
	} {
		code, _, stderr := run(t, "", tt.args...)
		if code != exitUsage || !strings.Contains(stderr, tt.stderr) {
			t.Errorf("%v: exit %d, stderr %q", tt.args, code, stderr)
		}
	}
	for in, want := range map[string]int64{"10MiB": 10 << 20, "512KiB": 512 << 10, "1048576": 1 << 20, "2GiB": 2 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
}

// TestDemo runs the newcomer's first command: every step must come out
// as it says.
func TestDemo(t *testing.T) {
	code, out, stderr := run(t, "", "demo")
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"-> 200 OK", "401 digest-mismatch", "401 replayed", "401 missing-signature", "401 key-revoked", "5 of 5 outcomes as expected"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestServeTLS serves HTTPS with --tls-cert and --tls-key.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signet test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(priv)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	db := filepath.Join(dir, "keys.db")
	code, out, stderr := run(t, "", "keys", "create", "--db", db, "--owner", "acme", "--json")
	if code != 0 {
		t.Fatalf("keys create: %s", stderr)
	}
	var created struct {
		Key    struct{ ID string }
		Secret string
	}
	json.Unmarshal([]byte(out), &created)
	secretFile := filepath.Join(dir, "acme.key")
	os.WriteFile(secretFile, []byte(created.Secret), 0o600)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer upstream.Close()
	srv := startServe(t, "--upstream", upstream.URL, "--db", db, "--tls-cert", certFile, "--tls-key", keyFile)
	defer srv.stop(t)

	roots := x509.NewCertPool()
	roots.AddCert(mustParseCert(t, der))
	tr, err := client.NewTransport(created.Key.ID, secretFile, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Get("https://" + srv.addrs.Addr + "/secure")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "https" || resp.TLS == nil {
		t.Fatalf("over TLS: %d %q", resp.StatusCode, body)
	}
}

func mustParseCert(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
