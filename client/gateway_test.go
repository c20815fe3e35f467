package client

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// TestDefaultProblemBase keeps the client's problem base the server's.
func TestDefaultProblemBase(t *testing.T) {
	if DefaultProblemBase != middleware.DefaultProblemBase {
		t.Errorf("client.DefaultProblemBase %q, middleware's %q", DefaultProblemBase, middleware.DefaultProblemBase)
	}
}

// counted is a real signet gateway in front of a real upstream, each
// counting the requests it receives.
type counted struct {
	url                  string
	gatewayHits, upPOSTs atomic.Int64
}

// newGateway starts an upstream answering with respond, and a gateway in
// front of it whose clock runs skew ahead of the real one, knowing keys.
func newGateway(t *testing.T, skew time.Duration, respond http.HandlerFunc) *counted {
	t.Helper()
	c := &counted{}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			c.upPOSTs.Add(1)
		}
		respond(w, r)
	}))
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	now := func() time.Time { return time.Now().Add(skew) }
	g, err := gateway.New(gateway.Config{
		Upstream: u,
		Verify:   middleware.Options{Verifier: httpsig.Verifier{Keys: keyMap(testKeys(t)), Nonces: memory.New(memory.Options{Now: now}), Now: now}},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := g.Handler()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.gatewayHits.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(gw.Close)
	c.url = gw.URL
	return c
}

// TestTransportThroughGateway sends POSTs through a real gateway: the
// upstream's own refusal, dressed as the gateway's, is never sent twice;
// the gateway's refusal for a skewed clock is, once, and then succeeds.
func TestTransportThroughGateway(t *testing.T) {
	created := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"order-7"}`)
	}
	// The API refuses with the gateway's problem type, challenge and a
	// Date of its own: a session or token it checks has expired.
	ownRefusal := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("WWW-Authenticate", `Signature realm="api"`)
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]any{"type": middleware.DefaultProblemBase + "expired", "status": 401})
	}
	for _, tt := range []struct {
		name                     string
		skew                     time.Duration
		respond                  http.HandlerFunc
		status                   int
		gatewayHits, upstreamHit int64
		offset                   time.Duration
	}{
		{name: "the upstream's own 401 expired", respond: ownRefusal, status: 401, gatewayHits: 1, upstreamHit: 1},
		{name: "gateway clock ahead", skew: 10 * time.Minute, respond: created, status: 201, gatewayHits: 2, upstreamHit: 1, offset: 10 * time.Minute},
		{name: "gateway clock behind", skew: -10 * time.Minute, respond: created, status: 201, gatewayHits: 2, upstreamHit: 1, offset: -10 * time.Minute},
		{name: "gateway clock ahead, upstream refuses", skew: 10 * time.Minute, respond: ownRefusal, status: 401, gatewayHits: 2, upstreamHit: 1, offset: 10 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gw := newGateway(t, tt.skew, tt.respond)
			tr := &Transport{Signer: newTransport(testKeys(t)[0], nil).Signer}
			tr.Signer.Now = nil // the real clock, as the gateway's
			c := &http.Client{Transport: tr}
			for i := 1; i <= 2; i++ {
				resp, err := c.Post(gw.url+"/v1/orders?customer=42", "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Fatalf("POST %d: %s %s, want %d", i, resp.Status, body, tt.status)
				}
				// The second POST is signed with what the first taught.
				if g, u := gw.gatewayHits.Load(), gw.upPOSTs.Load(); g != tt.gatewayHits+int64(i-1) || u != tt.upstreamHit*int64(i) {
					t.Fatalf("after POST %d: the gateway saw %d requests, the upstream %d POSTs; want %d and %d",
						i, g, u, tt.gatewayHits+int64(i-1), tt.upstreamHit*int64(i))
				}
			}
			if off := tr.ClockOffset(mustURL(t, gw.url)); (off - tt.offset).Abs() > time.Second {
				t.Errorf("clock offset %v, want %v", off, tt.offset)
			}
		})
	}
}
