package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/internal/wiretest"
)

// ok answers 200 with a body, keeping the connection.
func ok(_ int, c net.Conn, req *http.Request) bool {
	if req.Method == "HEAD" {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
		return true
	}
	io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return true
}

func newTestDirect(t *testing.T, u *wiretest.Scripted, mutate func(*http.Transport)) *directTransport {
	t.Helper()
	tr := NewTransport()
	if mutate != nil {
		mutate(tr)
	}
	pu, _ := url.Parse(u.URL(""))
	d, isDirect := newDirectTransport(tr, pu.Scheme, pu.Host).(*directTransport)
	if !isDirect {
		t.Fatal("no direct transport for an http upstream")
	}
	t.Cleanup(d.CloseIdleConnections)
	return d
}

func get(t *testing.T, rt http.RoundTripper, method, target string, body string) (*http.Response, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, target, rd)
	req.Header["Accept-Encoding"] = []string{"identity"}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

func mustGet(t *testing.T, rt http.RoundTripper, method, target, body, want string) {
	t.Helper()
	resp, got, err := get(t, rt, method, target, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if resp.StatusCode != 200 || got != want {
		t.Fatalf("%s %s: %d %q, want 200 %q", method, target, resp.StatusCode, got, want)
	}
}

// idleCount returns how many idle connections d holds (a body read to its
// end hands its connection back before Read returns, so at once).
func idleCount(d *directTransport) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.idle)
}

// TestDirectSameBytes: the upstream receives from the direct transport
// exactly what it receives from http.Transport, for the requests the
// gateway forwards (targets written as given, bodies, HEAD, Te).
func TestDirectSameBytes(t *testing.T) {
	u := wiretest.NewScripted(t, ok)
	d := newTestDirect(t, u, nil)
	std := NewTransport()
	defer std.CloseIdleConnections()
	host := u.Addr()
	type tc struct {
		method, path, rawQuery string
		body                   string
		header                 http.Header
	}
	cases := []tc{
		{"GET", "/v1/orders/7", "", "", nil},
		{"GET", "/v1/%6Frders/a%2Fb;x=1", "q=%20a+b&&c", "", http.Header{"X-Signet-Key-Id": {"sk_1"}, "Te": {"trailers"}}},
		{"GET", "//double//slash", "", "", nil},
		{"POST", "/v1/orders", "", `{"sku":"B-1"}`, http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {"k"}}},
		{"HEAD", "/h", "", "", nil},
		{"DELETE", "/d", "force", "", http.Header{"x-lower": {"v"}, "X-Many": {"a", "b"}, "User-Agent": {""}}},
		{"OPTIONS", "/o", "", "", http.Header{"X-Empty": {""}}},
	}
	for _, c := range cases {
		var got [2]string
		for i, rt := range []http.RoundTripper{std, d} {
			out := upstreamURL(&url.URL{Scheme: "http", Host: host}, c.path, c.rawQuery, c.rawQuery != "")
			req := &http.Request{Method: c.method, URL: out, Host: "api.example.com", Header: http.Header{"Accept-Encoding": {"br"}}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
			for k, v := range c.header {
				req.Header[k] = v
			}
			if c.body != "" {
				req.Body = io.NopCloser(strings.NewReader(c.body))
				req.ContentLength = int64(len(c.body))
			}
			if _, isDirect := rt.(*directTransport); isDirect && !d.direct(req) {
				t.Fatalf("%s %s would not go directly", c.method, c.path)
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatalf("%s %s: %v", c.method, c.path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got[i] = string(u.Last(t))
		}
		if got[0] != got[1] {
			t.Errorf("%s %s:\nhttp.Transport wrote\n%q\nthe direct transport\n%q", c.method, c.path, got[0], got[1])
		}
	}
	// The one difference: no Accept-Encoding of its own.
	mustGet(t, d, "GET", u.URL("/ae"), "", "ok")
	req, _ := http.NewRequest("GET", u.URL("/ae"), nil)
	resp, err := d.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if strings.Contains(strings.ToLower(string(u.Last(t))), "accept-encoding") {
		t.Errorf("the direct transport asked for an encoding:\n%s", string(u.Last(t)))
	}
}

// TestDirectRefusesInvalidFields: what http.Transport refuses to send,
// the direct transport refuses too.
func TestDirectRefusesInvalidFields(t *testing.T) {
	u := wiretest.NewScripted(t, ok)
	d := newTestDirect(t, u, nil)
	for _, h := range []http.Header{{"X-Bad": {"a\r\nX-Signet-Owner: evil"}}, {"X Bad": {"a"}}, {"X-Nul": {"a\x00"}}} {
		req, _ := http.NewRequest("GET", u.URL("/"), nil)
		req.Header = h
		if _, err := d.RoundTrip(req); err == nil {
			t.Errorf("%q was sent", h)
		}
	}
	if n := u.Count(); n != 0 {
		t.Fatalf("the upstream got %d requests", n)
	}
}

// TestDirectFallback: what the direct transport does not write goes to
// http.Transport.
func TestDirectFallback(t *testing.T) {
	u := wiretest.NewScripted(t, ok)
	d := newTestDirect(t, u, nil)
	mk := func(f func(*http.Request)) *http.Request {
		req, _ := http.NewRequest("POST", u.URL("/"), strings.NewReader("abc"))
		f(req)
		return req
	}
	for name, req := range map[string]*http.Request{
		"upgrade":         mk(func(r *http.Request) { r.Header.Set("Upgrade", "websocket"); r.Header.Set("Connection", "Upgrade") }),
		"expect":          mk(func(r *http.Request) { r.Header.Set("Expect", "100-continue") }),
		"unknown length":  mk(func(r *http.Request) { r.ContentLength = -1 }),
		"chunked":         mk(func(r *http.Request) { r.TransferEncoding = []string{"chunked"} }),
		"large body":      mk(func(r *http.Request) { r.ContentLength = directMaxBody + 1 }),
		"other host":      mk(func(r *http.Request) { r.URL.Host = "localhost:1" }),
		"https":           mk(func(r *http.Request) { r.URL.Scheme = "https" }),
		"trailer":         mk(func(r *http.Request) { r.Trailer = http.Header{"X": nil} }),
		"connection":      mk(func(r *http.Request) { r.Header.Set("Connection", "close") }),
		"close requested": mk(func(r *http.Request) { r.Close = true }),
	} {
		if d.direct(req) {
			t.Errorf("%s: sent directly", name)
		}
	}
	if !d.direct(mk(func(*http.Request) {})) {
		t.Error("a plain POST does not go directly")
	}
	for _, raw := range []string{"https://example.com"} {
		pu, _ := url.Parse(raw)
		if _, isDirect := newDirectTransport(NewTransport(), pu.Scheme, pu.Host).(*directTransport); isDirect {
			t.Errorf("%s: direct", raw)
		}
	}
	bounded := NewTransport()
	bounded.MaxConnsPerHost = 4
	if _, isDirect := newDirectTransport(bounded, "http", "localhost:1").(*directTransport); isDirect {
		t.Error("MaxConnsPerHost: direct")
	}
	// An upgrade really reaches the upstream through http.Transport.
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
}

// TestDirectReuse: keep-alive connections are reused, one per request
// at a time, HEAD and 204 included.
func TestDirectReuse(t *testing.T) {
	u := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
		switch req.URL.Path {
		case "/head":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
		case "/204":
			io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		case "/chunked":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n")
		default:
			ok(0, c, req)
		}
		return true
	})
	d := newTestDirect(t, u, nil)
	for range 3 {
		mustGet(t, d, "GET", u.URL("/"), "", "ok")
		mustGet(t, d, "POST", u.URL("/"), "body", "ok")
		mustGet(t, d, "HEAD", u.URL("/head"), "", "")
		resp, _, err := get(t, d, "GET", u.URL("/204"), "")
		if err != nil || resp.StatusCode != 204 {
			t.Fatal(resp, err)
		}
		resp, _, err = get(t, d, "GET", u.URL("/chunked"), "")
		if err != nil || resp.Trailer.Get("X-T") != "1" {
			t.Fatal(resp, err)
		}
	}
	if n := u.Conns(); n != 1 {
		t.Fatalf("%d connections for 15 requests in turn, want 1", n)
	}
	if n := idleCount(d); n != 1 {
		t.Fatalf("%d idle", n)
	}
}

// TestDirectStale: a connection the upstream closed while it was idle is
// not used: the next request, GET or POST, goes on a new one, as with
// http.Transport, whose reader notices the close.
func TestDirectStale(t *testing.T) {
	u := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
		ok(0, c, req)
		return false // close once answered, without saying so
	})
	d := newTestDirect(t, u, nil)
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
	time.Sleep(50 * time.Millisecond) // the FIN arrives
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
	time.Sleep(50 * time.Millisecond)
	mustGet(t, d, "POST", u.URL("/"), "body", "ok")
	if n := u.Conns(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// TestDirectStaleRace: when the upstream closes an idle connection just
// as a request is sent on it (the check saw it open), a GET is sent again
// on a new connection, and a POST, which the upstream may have acted on
// for all the gateway knows, fails: http.Transport's rule. Without the
// check, every stale connection is such a race.
func TestDirectStaleRace(t *testing.T) {
	directMode = "nopeek"
	defer func() { directMode = "" }()
	u := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
		ok(0, c, req)
		return false
	})
	d := newTestDirect(t, u, nil)
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
	time.Sleep(50 * time.Millisecond)
	mustGet(t, d, "GET", u.URL("/"), "", "ok") // sent twice: the first one got EOF
	time.Sleep(50 * time.Millisecond)
	if _, _, err := get(t, d, "POST", u.URL("/"), "body"); err == nil {
		t.Fatal("a POST on a connection the upstream had closed: no error")
	}
	time.Sleep(50 * time.Millisecond)
	// With an Idempotency-Key, and a body it can send again, it is sent
	// again.
	req, _ := http.NewRequest("POST", u.URL("/"), strings.NewReader("body"))
	req.Header.Set("Idempotency-Key", "k1")
	mustGet(t, d, "GET", u.URL("/"), "", "ok") // a connection to go stale
	time.Sleep(50 * time.Millisecond)
	resp, err := d.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST with Idempotency-Key: %v", err)
	}
	resp.Body.Close()
	// Read: the 2 GETs, the GET that left a connection to go stale, and
	// the POST sent again; not the requests sent on closed connections.
	if n := u.Count(); n != 4 {
		t.Fatalf("the upstream read %d requests, want 4", n)
	}
}

// TestDirectUnsolicited: an idle connection on which the upstream sent
// something nobody asked for (a 408, say) is not used.
func TestDirectUnsolicited(t *testing.T) {
	u := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
		ok(0, c, req)
		io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	d := newTestDirect(t, u, nil)
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
	time.Sleep(50 * time.Millisecond)
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
	if n := u.Conns(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// TestDirectConnectionClose: a response that says Connection: close, or
// HTTP/1.0 without keep-alive, or one without a length (read to the end
// of the connection) ends its connection.
func TestDirectConnectionClose(t *testing.T) {
	for name, answer := range map[string]string{
		"close":     "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"1.0":       "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"no length": "HTTP/1.1 200 OK\r\n\r\nok",
	} {
		t.Run(name, func(t *testing.T) {
			u := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
				io.WriteString(c, answer)
				return false
			})
			d := newTestDirect(t, u, nil)
			for range 3 {
				mustGet(t, d, "GET", u.URL("/"), "", "ok")
				mustGet(t, d, "POST", u.URL("/"), "x", "ok")
			}
			if n := u.Conns(); n != 6 {
				t.Fatalf("%d connections, want 6", n)
			}
			if n := idleCount(d); n != 0 {
				t.Fatalf("%d idle", n)
			}
		})
	}
}

// TestDirectBodyCut: a body cut short fails, and its connection is not
// kept; one closed before its end is not kept either.
func TestDirectBodyCut(t *testing.T) {
	u := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
		if req.URL.Path == "/cut" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")
		return true
	})
	d := newTestDirect(t, u, nil)
	if _, _, err := get(t, d, "GET", u.URL("/cut"), ""); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut body: %v", err)
	}
	req, _ := http.NewRequest("GET", u.URL("/"), nil)
	resp, err := d.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 3))
	resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 3)); err == nil {
		t.Fatal("read after Close")
	}
	if n := idleCount(d); n != 0 {
		t.Fatalf("%d idle after a body closed early", n)
	}
	mustGet(t, d, "GET", u.URL("/"), "", "0123456789")
	if n := u.Conns(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// heldUp answers nothing to /hold until released, and "ok" to the rest.
func heldUp(t *testing.T) (*wiretest.Scripted, func()) {
	release := make(chan struct{})
	var once sync.Once
	u := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
		switch req.URL.Path {
		case "/hold":
			<-release
			return false
		case "/slowbody":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok")
			select {
			case <-release:
			case <-time.After(300 * time.Millisecond):
			}
			io.WriteString(c, "ok")
			return true
		}
		ok(0, c, req)
		return true
	})
	r := func() { once.Do(func() { close(release) }) }
	t.Cleanup(r)
	return u, r
}

// TestDirectCancel: a request whose context ends while it waits for the
// response header, or while its body is read, fails at once with the
// context's error, as the gateway's error handler expects.
func TestDirectCancel(t *testing.T) {
	u, release := heldUp(t)
	defer release()
	d := newTestDirect(t, u, nil)
	mustGet(t, d, "GET", u.URL("/"), "", "ok") // an idle connection, reused below
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", u.URL("/hold"), nil)
	start := time.Now()
	_, err := d.RoundTrip(req)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("canceled while waiting: %v after %v", err, time.Since(start))
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", u.URL("/hold"), nil)
	if _, err = d.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline while waiting: %v", err)
	}
	// Canceled while the body is read.
	ctx, cancel = context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", u.URL("/slowbody"), nil)
	resp, err := d.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled while reading the body: %v", err)
	}
	resp.Body.Close()
	// Already canceled: nothing is sent.
	before := u.Count()
	req, _ = http.NewRequestWithContext(ctx, "GET", u.URL("/"), nil)
	if _, err := d.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled before: %v", err)
	}
	if u.Count() != before {
		t.Fatal("a canceled request was sent")
	}
	// The connections are left fit: the next requests succeed.
	release()
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
	mustGet(t, d, "GET", u.URL("/slowbody"), "", "okok")
}

// TestDirectHeaderTimeout: ResponseHeaderTimeout bounds the wait for the
// response header, with an error the gateway answers 504 for, and not
// the reading of the body.
func TestDirectHeaderTimeout(t *testing.T) {
	u, release := heldUp(t)
	defer release()
	d := newTestDirect(t, u, func(tr *http.Transport) { tr.ResponseHeaderTimeout = 100 * time.Millisecond })
	start := time.Now()
	_, _, err := get(t, d, "GET", u.URL("/hold"), "")
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) > 2*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	// The body takes 300ms, beyond the header timeout: it is read.
	mustGet(t, d, "GET", u.URL("/slowbody"), "", "okok")
	mustGet(t, d, "GET", u.URL("/slowbody"), "", "okok") // reused: no deadline left over
}

// TestDirectInformational: 1xx responses before the final one are
// skipped, and passed to a ClientTrace that asks for them, as
// ReverseProxy does to pass 103 Early Hints on to the client.
func TestDirectInformational(t *testing.T) {
	u := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
		io.WriteString(c, "HTTP/1.1 102 Processing\r\n\r\n")
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
		ok(0, c, req)
		return true
	})
	d := newTestDirect(t, u, nil)
	mustGet(t, d, "GET", u.URL("/"), "", "ok") // no trace: skipped
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprint(code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", u.URL("/"), nil)
	resp, err := d.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" || strings.Join(got, ",") != "103</style.css>; rel=preload,102,100" {
		t.Fatalf("%d %q, 1xx %q", resp.StatusCode, b, got)
	}

	// Through a ReverseProxy, the client gets the 103.
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "http", Host: u.Addr()}) },
		Transport: d,
	})
	defer proxy.Close()
	got = nil
	creq, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", proxy.URL+"/", nil)
	cresp, err := proxy.Client().Do(creq)
	if err != nil {
		t.Fatal(err)
	}
	cresp.Body.Close()
	if len(got) == 0 || got[0] != "103</style.css>; rel=preload" {
		t.Fatalf("the client got 1xx %q", got)
	}
}

// TestDirectCloseIdle: CloseIdleConnections closes the idle connections,
// and those in use once their response ends, until the next request.
func TestDirectCloseIdle(t *testing.T) {
	u, release := heldUp(t)
	defer release()
	d := newTestDirect(t, u, nil)
	req, _ := http.NewRequest("GET", u.URL("/slowbody"), nil)
	resp, err := d.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
	if n := idleCount(d); n != 1 {
		t.Fatalf("%d idle", n)
	}
	d.CloseIdleConnections()
	if n := idleCount(d); n != 0 {
		t.Fatalf("%d idle after CloseIdleConnections", n)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := idleCount(d); n != 0 {
		t.Fatalf("a connection in use became idle after CloseIdleConnections")
	}
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
	if n := idleCount(d); n != 1 {
		t.Fatalf("%d idle after a new request", n)
	}
	if n := u.Conns(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// TestDirectIdleTimeout: a connection idle for IdleConnTimeout is closed.
func TestDirectIdleTimeout(t *testing.T) {
	u := wiretest.NewScripted(t, ok)
	d := newTestDirect(t, u, func(tr *http.Transport) { tr.IdleConnTimeout = 100 * time.Millisecond })
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
	testtime.Eventually(t, 5*time.Second, func() error {
		if u.Ended() == 0 {
			return errors.New("the idle connection was not closed")
		}
		return nil
	})
	if n := idleCount(d); n != 0 {
		t.Fatalf("%d idle", n)
	}
	mustGet(t, d, "GET", u.URL("/"), "", "ok")
}

// TestDirectMaxIdle: the pool keeps at most MaxIdleConnsPerHost idle
// connections; the others are closed.
func TestDirectMaxIdle(t *testing.T) {
	const n = 5
	var arrived sync.WaitGroup
	arrived.Add(n)
	u := wiretest.NewScripted(t, func(_ int, c net.Conn, req *http.Request) bool {
		if req.URL.Path == "/together" {
			arrived.Done()
			arrived.Wait()
		}
		ok(0, c, req)
		return true
	})
	d := newTestDirect(t, u, func(tr *http.Transport) { tr.MaxIdleConnsPerHost = 2 })
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := get(t, d, "GET", u.URL("/together"), ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := idleCount(d); got != 2 {
		t.Fatalf("%d idle, want 2", got)
	}
	if got := u.Conns(); got != n {
		t.Fatalf("%d connections, want %d", got, n)
	}
}

// TestDirectDialError: a refused dial is an error, and a canceled one
// the context's.
func TestDirectDialError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	d, _ := newDirectTransport(NewTransport(), "http", addr).(*directTransport)
	if _, _, err := get(t, d, "GET", "http://"+addr+"/", ""); err == nil {
		t.Fatal("no error from a closed port")
	}
}

// TestDirectConcurrentReuse: requests that hand connections back and take
// them concurrently, with an idle timeout set, share the pool without a
// data race (run under -race, as the test command does).
func TestDirectConcurrentReuse(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	pu, _ := url.Parse(up.URL)
	tr := NewTransport()
	tr.IdleConnTimeout = time.Minute
	d, ok := newDirectTransport(tr, "http", pu.Host).(*directTransport)
	if !ok {
		t.Fatal("no direct transport")
	}
	defer d.CloseIdleConnections()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if i%10 == 0 {
					// New connections, each handed back a first
					// time while others look for one.
					d.CloseIdleConnections()
				}
				if _, body, err := get(t, d, "GET", up.URL+"/", ""); err != nil || body != "ok" {
					t.Errorf("%q, %v", body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
