package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/wiretest"
	"github.com/signet-dev/signet/keyring"
	limitmemory "github.com/signet-dev/signet/limit/memory"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// TestInformationalGatewayFields: the 1xx responses of the upstream (103
// Early Hints, 100 Continue) reach the client with their fields, and the
// final response, the upstream's or the gateway's 502 when the upstream
// breaks off after a 1xx, still carries the fields the gateway sets on
// every response: X-Request-Id, the CORS fields of an allowed origin, the
// rate limits. httputil.ReverseProxy empties the client's header after
// each 1xx it passes on. Over the direct transport and over net/http's,
// and with the responses signed.
func TestInformationalGatewayFields(t *testing.T) {
	var upID atomic.Value // the X-Request-Id the upstream got
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upID.Store(r.Header.Get("X-Request-Id"))
		io.Copy(io.Discard, r.Body) // a 100 Continue first, if asked for
		h := w.Header()
		if r.URL.Path != "/plain" {
			h.Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			h.Del("Link")
		}
		if r.URL.Path == "/broken" {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		h.Set("Access-Control-Allow-Origin", "*") // the gateway answers for CORS
		h.Set("Vary", "Accept-Encoding")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	ve := &verifyEnv{keys: &keyTable{keys: map[string]testKey{}, state: map[string]error{}}}
	client := ve.hmacKey("sk_client", "orders:read")
	p := loadPolicy(t, fmt.Sprintf("upstream: %q\n%sroutes:\n  - {name: api, match: \"/\", rate: {limit: 1000/m}}\n", up.URL, corsPolicy))
	ring, err := keyring.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, setup := range []struct {
		name string
		rt   http.RoundTripper
		ring *keyring.Ring
	}{{"direct", nil, nil}, {"net/http", gateway.NewTransport(), nil}, {"signed responses", nil, ring}} {
		g, err := gateway.New(gateway.Config{
			Policy:    p,
			Transport: setup.rt,
			Keyring:   setup.ring,
			Limiter:   limitmemory.New(limitmemory.Options{}),
			Verify:    middleware.Options{Verifier: httpsig.Verifier{Keys: ve.keys, Nonces: memory.New(memory.Options{})}},
			Logger:    slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		gw := httptest.NewServer(g.Handler())
		t.Cleanup(gw.Close)
		body := `{"sku":"B-1"}`
		for _, c := range []struct {
			name, raw string
			status    int
			hints     []string // the 1xx responses: status and Link
		}{
			{"no 1xx", "GET /plain HTTP/1.1\r\n", 200, nil},
			{"103", "GET /hints HTTP/1.1\r\n", 200, []string{"103 </app.css>; rel=preload"}},
			{"103, an id of the gateway's", "GET /hints HTTP/1.1\r\nX-Request-Id: \r\n", 200, []string{"103 </app.css>; rel=preload"}},
			// The direct transport leaves requests with Expect to
			// net/http's; the upstream's 100 comes after the
			// gateway's own.
			{"100 and 103", "POST /hints HTTP/1.1\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n", 200,
				[]string{"100 ", "100 ", "103 </app.css>; rel=preload"}},
			{"103, then the upstream breaks off", "GET /broken HTTP/1.1\r\n", 502, []string{"103 </app.css>; rel=preload"}},
		} {
			t.Run(setup.name+"/"+c.name, func(t *testing.T) {
				raw := c.raw + "Host: api.example.com\r\nOrigin: " + appOrigin + "\r\n"
				wantID := ""
				if !strings.Contains(c.raw, "X-Request-Id") {
					wantID = "req-1xx"
					raw += "X-Request-Id: " + wantID + "\r\n"
				}
				raw += "\r\n"
				if strings.HasPrefix(raw, "POST") {
					raw += body
				}
				conn := wiretest.Dial(t, gw.Listener.Addr().String())
				io.WriteString(conn, wiretest.Sign(t, client, raw))
				br := bufio.NewReader(conn)
				var hints []string
				resp, got := wiretest.Read(t, br)
				for resp.StatusCode < 200 {
					hints = append(hints, fmt.Sprint(resp.StatusCode, " ", resp.Header.Get("Link")))
					resp, got = wiretest.Read(t, br)
				}
				if resp.StatusCode != c.status || c.status == 200 && got != "ok" || !slices.Equal(hints, c.hints) {
					t.Fatalf("%d %s after 1xx %q, want %d after %q", resp.StatusCode, got, hints, c.status, c.hints)
				}
				h := resp.Header
				if wantID == "" {
					wantID = upID.Load().(string) // made by the gateway
				}
				if id := h.Values("X-Request-Id"); len(id) != 1 || id[0] != wantID || wantID == "" {
					t.Errorf("X-Request-Id %q, want the one the upstream got, %q", id, wantID)
				}
				if o := h.Values("Access-Control-Allow-Origin"); len(o) != 1 || o[0] != appOrigin {
					t.Errorf("Access-Control-Allow-Origin %q, want %s alone", o, appOrigin)
				}
				if e := h.Values("Access-Control-Expose-Headers"); len(e) != 1 || !strings.Contains(e[0], "X-Request-Id") {
					t.Errorf("Access-Control-Expose-Headers %q", e)
				}
				if v := h.Values("Vary"); len(v) == 0 || v[0] != "Origin" || c.status == 200 && !slices.Contains(v, "Accept-Encoding") {
					t.Errorf("Vary %q, want Origin first and the upstream's", v)
				}
				if len(h.Values("RateLimit-Policy")) != 1 || len(h.Values("RateLimit")) != 1 {
					t.Errorf("rate limit fields %q, %q, want one of each", h.Values("RateLimit-Policy"), h.Values("RateLimit"))
				}
				if setup.ring != nil && h.Get("Signature") == "" {
					t.Errorf("a response not signed: %v", h)
				}
			})
		}
	}
}
