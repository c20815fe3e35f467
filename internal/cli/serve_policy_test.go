package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/signet-dev/signet/client"
)

// signet serve --config: routes from the file, flags over it, and a file
// changed under the running gateway reloaded (a broken one kept out).
func TestServeConfig(t *testing.T) {
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
	json.Unmarshal([]byte(out), &created)
	keyFile := filepath.Join(dir, "acme.key")
	os.WriteFile(keyFile, []byte(created.Secret), 0o600)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	defer upstream.Close()

	config := filepath.Join(dir, "signet.yaml")
	base := fmt.Sprintf("upstream: %s\nmax_age: 1s\nroutes:\n  - {match: \"GET /v1/orders/{id}\", scopes: [\"orders:read\"]}\n  - {match: \"GET /healthz\", public: true}\n", upstream.URL)
	replace := func(content string) {
		os.WriteFile(config+".new", []byte(content), 0o644)
		if err := os.Rename(config+".new", config); err != nil {
			t.Fatal(err)
		}
	}
	replace(base)
	// A flag over the file (the policy tests check that it wins).
	srv := startServe(t, "--config", config, "--db", db, "--max-age", "5m")
	tr, err := client.NewTransport(created.Key.ID, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	signed := &http.Client{Transport: tr}
	get := func(c *http.Client, path string) (int, string) {
		resp, err := c.Get("http://" + srv.addrs.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(signed, "/v1/orders/7"); code != 200 || body != "hello /v1/orders/7" {
		t.Fatalf("a route: %d %s", code, body)
	}
	if code, _ := get(http.DefaultClient, "/healthz"); code != 200 {
		t.Fatalf("a public route: %d", code)
	}
	if code, body := get(signed, "/v2/x"); code != 404 || !strings.Contains(body, "no-route") {
		t.Fatalf("no route: %d %s", code, body)
	}

	replace(base + "  - {match: \"GET /v2/\", scopes: [\"orders:read\"]}\n")
	eventually(t, 10*time.Second, "the new route", func() bool { code, _ := get(signed, "/v2/x"); return code == 200 })
	if !strings.Contains(srv.logs.String(), `"msg":"policy reloaded"`) {
		t.Fatalf("no log of the reload: %s", srv.logs)
	}

	replace(base + "  - {match: \"GET /v3/\", upstream: nowhere}\n")
	eventually(t, 10*time.Second, "the broken file to be reported", func() bool {
		return strings.Contains(srv.logs.String(), `unknown upstream \"nowhere\"`)
	})
	if code, _ := get(signed, "/v2/x"); code != 200 {
		t.Fatalf("the policy in force after a broken file: %d", code)
	}
	srv.stop(t)
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "signet.yaml")
	os.WriteFile(config, []byte("upstream: http://127.0.0.1:1\nmax-age: 30s\n"), 0o644)
	code, _, stderr := run(t, "", "serve", "--config", config)
	if code != exitUsage || !strings.Contains(stderr, `signet.yaml:2:1: unknown key "max-age" in the policy (did you mean "max_age"?)`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, _, stderr = run(t, "", "serve", "--config", filepath.Join(dir, "none.yaml"))
	if code != exitUsage || !strings.Contains(stderr, "no such file") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// TestServeFlags parses serve's command line as cobra does: both spellings
// of a value, and a flag given on the command line winning over the policy
// file even when it gives the flag's default, while a flag not given leaves
// the file's setting alone.
func TestServeFlags(t *testing.T) {
	config := filepath.Join(t.TempDir(), "signet.yaml")
	os.WriteFile(config, []byte("upstream: http://127.0.0.1:1\nmax_age: 1m\nmax_body: 1MiB\nlog_format: text\n"), 0o600)
	for _, tt := range []struct {
		args      []string
		maxAge    time.Duration
		maxBody   int64
		logFormat string
	}{
		{[]string{"--config", config}, time.Minute, 1 << 20, "text"},
		{[]string{"--config=" + config, "--max-age=5m"}, 5 * time.Minute, 1 << 20, "text"},
		{[]string{"--config", config, "--max-body", "2MiB", "--log-format=json"}, time.Minute, 2 << 20, "json"},
		{[]string{"--upstream=http://127.0.0.1:1", "--max-age", "90s"}, 90 * time.Second, 10 << 20, "json"},
	} {
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		o, check := newServeOptions(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if err := check(); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if o.maxAge != tt.maxAge || o.maxBody != tt.maxBody || o.logFormat != tt.logFormat {
			t.Errorf("%v: max-age %v, max-body %d, log-format %s; want %v, %d, %s", tt.args, o.maxAge, o.maxBody, o.logFormat, tt.maxAge, tt.maxBody, tt.logFormat)
		}
	}
}

// TestServeGCPercent: serve collects at 200% unless GOGC says otherwise.
func TestServeGCPercent(t *testing.T) {
	if n, ok := serveGCPercent(func(string) string { return "" }); !ok || n != 200 {
		t.Errorf("without GOGC: %d, %v; want 200, true", n, ok)
	}
	for _, v := range []string{"100", "off", "50"} {
		if _, ok := serveGCPercent(func(k string) string {
			if k == "GOGC" {
				return v
			}
			return ""
		}); ok {
			t.Errorf("GOGC=%s was overridden", v)
		}
	}
}
