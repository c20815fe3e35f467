package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/replay/memory"
)

// newGateway is newEnv that also returns the Gateway, for the tests that
// drive it (drain, in-flight requests).
func newGateway(t *testing.T, mutate func(*gateway.Config)) (*env, *gateway.Gateway) {
	t.Helper()
	var cfg gateway.Config
	e := newEnv(t, func(c *gateway.Config) {
		if mutate != nil {
			mutate(c)
		}
		cfg = *c
	})
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = httptest.NewServer(g.Handler())
	e.admin = httptest.NewServer(g.AdminHandler())
	t.Cleanup(e.gw.Close)
	t.Cleanup(e.admin.Close)
	return e, g
}

// heldUpstream is an upstream that holds every request until released,
// and reports each arrival.
func heldUpstream(t *testing.T) (u *url.URL, arrived <-chan struct{}, release func()) {
	t.Helper()
	arrivals := make(chan struct{}, 1024)
	held := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrivals <- struct{}{}
		select {
		case <-held:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "late")
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(held) }) }
	t.Cleanup(srv.Close) // callers defer release, which runs before
	u, _ = url.Parse(srv.URL)
	return u, arrivals, release
}

// metric returns the value of a sample of the admin listener's /metrics.
func metric(t *testing.T, e *env, sample string) float64 {
	t.Helper()
	resp, err := http.Get(e.admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics:\n%s", sample, b)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestUpstreamTimeout: an upstream that sends no response header within
// UpstreamTimeout is answered 504, instead of being waited for.
func TestUpstreamTimeout(t *testing.T) {
	u, _, release := heldUpstream(t)
	defer release()
	e := newEnv(t, func(c *gateway.Config) { c.Upstream, c.UpstreamTimeout = u, 200*time.Millisecond })
	r, _ := http.NewRequest("GET", e.gw.URL+"/slow", nil)
	if err := e.hmac.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(r)
	if err != nil {
		t.Fatalf("a gateway with a 200ms upstream timeout: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || reasonOf(t, resp, string(b)) != "upstream-unavailable" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if n := metric(t, e, `signet_upstream_errors_total{phase="header"}`); n != 1 {
		t.Fatalf("upstream errors %v", n)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(fds)
}

// TestMaxInFlight sends 300 requests at once to a gateway whose upstream
// holds them: MaxInFlight reach the upstream, the others are refused with
// 503 and Retry-After while those are still held, the descriptors open
// stay bounded by the limit, and the admin listener still answers.
func TestMaxInFlight(t *testing.T) {
	const limit, total = 16, 300
	u, arrived, release := heldUpstream(t)
	defer release()
	e := newEnv(t, func(c *gateway.Config) { c.Upstream, c.MaxInFlight = u, limit })
	reqs := make([]*http.Request, total)
	for i := range reqs {
		reqs[i], _ = http.NewRequest("GET", e.gw.URL+"/v1/orders/"+strconv.Itoa(i), nil)
		if err := e.hmac.SignRequest(reqs[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	fdsBefore := openFDs(t)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	type answer struct {
		status     int
		reason     string
		retryAfter string
		err        error
	}
	answers := make(chan answer, total)
	for _, r := range reqs {
		go func() {
			resp, err := client.Do(r)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
			var p struct{ Type string }
			if json.Unmarshal(b, &p) == nil {
				a.reason = p.Type[strings.LastIndexByte(p.Type, '/')+1:]
			}
			answers <- a
		}()
	}
	timeout := time.After(20 * time.Second)
	for range limit {
		select {
		case <-arrived:
		case <-timeout:
			t.Fatal("the upstream did not get its share of requests")
		}
	}
	for range total - limit {
		select {
		case a := <-answers:
			if a.err != nil || a.status != 503 || a.reason != "unavailable" || a.retryAfter != "1" {
				t.Fatalf("beyond the limit: %+v", a)
			}
		case <-arrived:
			t.Fatal("more requests than MaxInFlight reached the upstream")
		case <-timeout:
			t.Fatal("requests beyond the limit were not refused while the others were held")
		}
	}
	if opened := openFDs(t) - fdsBefore; opened > 4*limit+32 {
		t.Errorf("%d descriptors open for %d requests held (limit %d)", opened, total, limit)
	}
	adminDone := make(chan struct{})
	go func() {
		defer close(adminDone)
		if n := metric(t, e, "signet_requests_in_flight"); n != limit {
			t.Errorf("in flight: %v", n)
		}
		if n := metric(t, e, `signet_requests_total{outcome="overloaded",reason="unavailable",route=""}`); n != total-limit {
			t.Errorf("overloaded: %v", n)
		}
		resp, err := http.Get(e.admin.URL + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("healthz while saturated: %v %v", resp, err)
			return
		}
		resp.Body.Close()
	}()
	select {
	case <-adminDone:
	case <-timeout:
		t.Fatal("the admin listener did not answer while the gateway was saturated")
	}
	release()
	for range limit {
		if a := <-answers; a.err != nil || a.status != 200 {
			t.Fatalf("held request: %+v", a)
		}
	}
}

// TestWriteTimeout: a client that stops reading its response is cut off
// after WriteTimeout, and its request no longer counts as in flight.
func TestWriteTimeout(t *testing.T) {
	chunk := strings.Repeat("x", 1<<20)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 256 { // far more than socket buffers hold
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	e := newEnv(t, func(c *gateway.Config) { c.Upstream, c.WriteTimeout = u, 300*time.Millisecond })
	r, _ := http.NewRequest("GET", e.gw.URL+"/download", nil)
	if err := e.hmac.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	if err := r.Write(conn); err != nil {
		t.Fatal(err)
	}
	// Read the header, then nothing more.
	if _, err := http.ReadResponse(bufio.NewReader(conn), r); err != nil {
		t.Fatal(err)
	}
	testtime.Eventually(t, 10*time.Second, func() error {
		if n := metric(t, e, "signet_requests_in_flight"); n != 0 {
			return fmt.Errorf("a client that reads nothing still holds its request (write timeout 300ms): %v in flight", n)
		}
		return nil
	})
	if n := metric(t, e, `signet_upstream_errors_total{phase="body"}`); n != 0 {
		t.Errorf("a slow client counted as an upstream error: %v", n)
	}
}

// TestUpstreamBreaksOffBody: an upstream that dies in the middle of its
// response body is counted, and the client gets a cut response, not a
// whole-looking one.
func TestUpstreamBreaksOffBody(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		io.WriteString(w, strings.Repeat("x", 16<<10)) // past the gateway's write buffer
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	e := newEnv(t, func(c *gateway.Config) { c.Upstream = u })
	r, _ := http.NewRequest("GET", e.gw.URL+"/broken", nil)
	e.hmac.SignRequest(r, nil)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err == nil {
		t.Fatalf("%d, reading the body: %v; want a cut body", resp.StatusCode, err)
	}
	if n := metric(t, e, `signet_upstream_errors_total{phase="body"}`); n != 1 {
		t.Fatalf("upstream body errors %v", n)
	}
	if n := metric(t, e, `signet_upstream_errors_total{phase="header"}`); n != 0 {
		t.Fatalf("upstream header errors %v", n)
	}
}

// TestDrain: once draining, /healthz fails with "draining" while requests
// are still served.
func TestDrain(t *testing.T) {
	e, g := newGateway(t, nil)
	g.Drain()
	resp, err := http.Get(e.admin.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), `"status": "draining"`) {
		t.Fatalf("healthz while draining: %d %s", resp.StatusCode, b)
	}
	if resp, body := e.send(t, e.hmac, "GET", "/still", "", nil); resp.StatusCode != 200 {
		t.Fatalf("a request while draining: %d %s", resp.StatusCode, body)
	}
}

// TestInFlight lists the requests being handled, without their queries.
func TestInFlight(t *testing.T) {
	u, arrived, release := heldUpstream(t)
	defer release()
	e, g := newGateway(t, func(c *gateway.Config) { c.Upstream = u })
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.send(t, e.hmac, "POST", "/v1/upload?X-Amz-Signature=secret", "{}", func(r *http.Request) {
			r.Header.Set(gateway.HeaderRequestID, "req-42")
		})
	}()
	<-arrived
	got := g.InFlight()
	if len(got) != 1 || got[0].Method != "POST" || got[0].Path != "/v1/upload" || got[0].RequestID != "req-42" || got[0].Started.IsZero() {
		t.Fatalf("in flight: %+v", got)
	}
	release()
	<-done
	if got := g.InFlight(); len(got) != 0 {
		t.Fatalf("in flight after the end: %+v", got)
	}
}

// TestProcessMetrics: /metrics has the Go and process collectors, and key
// lookups are timed.
func TestProcessMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.send(t, e.hmac, "GET", "/", "", nil)
	for _, s := range []string{"go_goroutines", "process_resident_memory_bytes", "process_open_fds"} {
		if metric(t, e, s) <= 0 {
			t.Errorf("%s is not positive", s)
		}
	}
	if n := metric(t, e, "signet_key_lookup_duration_seconds_count"); n != 1 {
		t.Errorf("key lookups timed: %v", n)
	}
}

// TestHTTP2 serves a client over HTTP/2, where write deadlines are kept
// per stream: answers get through, one after another on one connection.
func TestHTTP2(t *testing.T) {
	var cfg gateway.Config
	e := newEnv(t, func(c *gateway.Config) { c.WriteTimeout = time.Second; cfg = *c })
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g.Handler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	for i := range 3 {
		r, _ := http.NewRequest("POST", srv.URL+"/v1/orders", strings.NewReader(`{"n":1}`))
		r.Header.Set("Content-Type", "application/json")
		if err := e.hmac.SignRequest(r, []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(b) != "hello acme" {
			t.Fatalf("request %d: %s %d %q", i, resp.Proto, resp.StatusCode, b)
		}
	}
}

// TestReplayStoreFull fills a small in-memory replay store with one key's
// requests: that key is refused with 503 once it holds its share, another
// key that the store holds entries of still gets through, the occupancy is in /metrics, and the refusals
// are logged once, not once each.
func TestReplayStoreFull(t *testing.T) {
	logs := &lockedBuffer{}
	store := memory.New(memory.Options{MaxEntries: 1500}) // one shard
	e := newEnv(t, func(c *gateway.Config) {
		c.Verify.Verifier.Nonces = store
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	// The other key has been seen before the flood: the store shares
	// itself among the keys it holds entries of.
	if resp, body := e.send(t, e.ed, "GET", "/", "", nil); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	refused := 0
	for i := 0; i < 4*store.Cap() && refused < 20; i++ {
		resp, body := e.send(t, e.hmac, "GET", "/", "", nil)
		switch resp.StatusCode {
		case 200:
		case 503:
			refused++
		default:
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	if refused == 0 {
		t.Fatalf("one key sent %d requests into a store of %d and none was refused", 4*store.Cap(), store.Cap())
	}
	if resp, body := e.send(t, e.ed, "GET", "/", "", nil); resp.StatusCode != 200 {
		t.Fatalf("another key, while the first is refused: %d %s", resp.StatusCode, body)
	}
	entries, capacity := metric(t, e, "signet_replay_store_entries"), metric(t, e, "signet_replay_store_capacity")
	if capacity != float64(store.Cap()) || entries < capacity/2 || entries > capacity {
		t.Errorf("replay store gauges: %v of %v", entries, capacity)
	}
	if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 1 {
		t.Errorf("%d ERROR lines for %d refusals", n, refused)
	}
}

// TestCutRequestGetsNoResponse: a request whose context ends while the
// upstream holds it (signet serve cancels its requests when a shutdown
// times out) gets its connection cut, never a response: returning from
// the handler would have net/http write an empty 200.
func TestCutRequestGetsNoResponse(t *testing.T) {
	u, arrived, release := heldUpstream(t)
	defer release()
	e := newEnv(t, func(c *gateway.Config) { c.Upstream = u })
	base, cut := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(e.gw.Config.Handler)
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	defer srv.Close()
	r, _ := http.NewRequest("GET", srv.URL+"/slow", nil)
	if err := e.hmac.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(r)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = fmt.Errorf("a whole response: %d %q", resp.StatusCode, b)
			done <- err
			return
		}
		done <- nil
	}()
	<-arrived
	cut()
	if err := <-done; err != nil {
		t.Fatalf("the cut request got %v", err)
	}
}
