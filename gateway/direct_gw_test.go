package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/signet-dev/signet/gateway"
)

// TestUpstreamConnections: the gateway keeps its connections to the
// upstream, and one the upstream closed while it was idle costs no
// request an error, a POST included; a 103 Early Hints of the upstream
// reaches the client.
func TestUpstreamConnections(t *testing.T) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/hints" {
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
		}
		io.WriteString(w, "ok")
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	u, _ := url.Parse(up.URL)
	e := newEnv(t, func(c *gateway.Config) { c.Upstream = u })
	for range 3 {
		if resp, body := e.send(t, e.hmac, "GET", "/v1/orders/1", "", nil); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d upstream connections for 3 requests in turn", n)
	}
	for _, method := range []string{"GET", "POST", "PUT", "DELETE"} {
		up.CloseClientConnections() // the upstream closes the idle connection
		body := ""
		if method == "POST" || method == "PUT" {
			body = `{"sku":"B-1"}`
		}
		if resp, got := e.send(t, e.hmac, method, "/v1/orders/1", body, nil); resp.StatusCode != 200 || got != "ok" {
			t.Fatalf("%s after the upstream closed the idle connection: %d %s", method, resp.StatusCode, got)
		}
	}

	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if code == http.StatusEarlyHints {
			hints = append(hints, h.Get("Link"))
		}
		return nil
	}}
	r, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", e.gw.URL+"/hints", nil)
	if err := e.hmac.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" || strings.Join(hints, ",") != "</app.css>; rel=preload" {
		t.Fatalf("%d %s, 103s %q", resp.StatusCode, b, hints)
	}
}
