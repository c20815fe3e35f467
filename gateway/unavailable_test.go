package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// fullStore is a key service whose writes fail as on a full disk.
type fullStore struct{ *keys.Service }

var errDiskFull = fmt.Errorf("keys/sqlite: database or disk is full: %w", keys.ErrUnavailable)

func (fullStore) Revoke(context.Context, string, string) error { return errDiskFull }

// TestAdminUnavailable: a change the key store cannot take now is answered
// 503 unavailable with Retry-After, its cause in the log, not 500.
func TestAdminUnavailable(t *testing.T) {
	e := newAdminEnv(t)
	logs := &lockedBuffer{}
	u, _ := url.Parse(e.up.srv.URL)
	g, err := gateway.New(gateway.Config{
		Upstream: u, Admin: fullStore{e.keys},
		Verify: middleware.Options{Verifier: httpsig.Verifier{Keys: e.keys, Nonces: memory.New(memory.Options{})}},
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.admin = httptest.NewServer(g.AdminHandler())
	defer e.admin.Close()
	var p problem
	if code := e.call(t, e.root, "POST", "/v1/keys/"+e.root.KeyID+"/revoke", nil, &p); code != 503 || p.reason() != "unavailable" {
		t.Fatalf("%d %+v", code, p)
	}
	if strings.Contains(p.Detail, "disk") {
		t.Errorf("the cause reached the client: %q", p.Detail)
	}
	if !strings.Contains(logs.String(), "database or disk is full") {
		t.Errorf("the cause is not in the log: %s", logs)
	}
}

// TestUnavailableLogBounded: a key store that cannot answer makes every
// request a 503, but the log gets one line for the outage, not one per
// request.
func TestUnavailableLogBounded(t *testing.T) {
	logs := &lockedBuffer{}
	e := newEnv(t, func(c *gateway.Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	e.keys.state["sk_acme"] = errors.New("postgres: connection refused")
	for range 50 {
		if resp, body := e.send(t, e.hmac, "GET", "/", "", nil); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 1 {
		t.Fatalf("%d ERROR lines for 50 refusals:\n%s", n, logs)
	}
}

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
