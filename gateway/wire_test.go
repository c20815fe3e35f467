package gateway_test

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/wiretest"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// wireEnv is a gateway set up as signet serve sets it up, in front of a
// raw upstream that records the bytes it receives.
type wireEnv struct {
	addr   string // of the gateway
	up     *wiretest.Upstream
	signer *httpsig.Signer
	keys   *keyTable
}

// newWireEnv starts the gateway; upstreamPath is the path of its
// --upstream URL.
func newWireEnv(t testing.TB, upstreamPath string, mutate func(*gateway.Config)) *wireEnv {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	hk, _ := httpsig.NewHMACKey(secret)
	e := &wireEnv{
		up:     wiretest.NewUpstream(t),
		signer: &httpsig.Signer{Key: hk, KeyID: "sk_acme"},
		keys:   &keyTable{keys: map[string]testKey{"sk_acme": {hk, "acme", []string{"orders:read"}}}, state: map[string]error{}},
	}
	u, _ := url.Parse(e.up.URL(upstreamPath))
	cfg := gateway.Config{
		Upstream: u,
		Verify:   middleware.Options{Verifier: httpsig.Verifier{Keys: e.keys, Nonces: memory.New(memory.Options{})}},
		Logger:   slog.New(slog.NewTextHandler(newTestWriter(t), nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The settings of signet serve's client listener.
	srv := &http.Server{
		Handler:           g.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.addr = ln.Addr().String()
	return e
}

// sign signs a raw request whose Host is the gateway's ("HOST" in raw).
func (e *wireEnv) sign(t testing.TB, raw string) string {
	t.Helper()
	return wiretest.Sign(t, e.signer, e.host(raw))
}

func (e *wireEnv) host(raw string) string { return strings.ReplaceAll(raw, "HOST", e.addr) }

// send sends raw and checks the answer: a problem with the reason, or,
// when reason is "", 200 from the upstream.
func (e *wireEnv) send(t *testing.T, raw string, status int, reason string) {
	t.Helper()
	before := e.up.Count()
	resp, body := wiretest.Send(t, e.addr, raw)
	if resp.StatusCode != status {
		t.Fatalf("%d %s, want %d %s\nsent:\n%s", resp.StatusCode, body, status, reason, raw)
	}
	if reason == "" {
		if body != "ok" || e.up.Count() != before+1 {
			t.Fatalf("%d %s: the upstream did not answer", resp.StatusCode, body)
		}
		return
	}
	if got := reasonOf(t, resp, body); got != reason {
		t.Fatalf("reason %s (%s), want %s", got, body, reason)
	}
	if e.up.Count() != before {
		t.Fatalf("the refused request reached the upstream:\n%s", e.up.Last(t))
	}
}

func TestWireFragment(t *testing.T) {
	e := newWireEnv(t, "", nil)
	for _, target := range []string{"/v1/orders/7?x=1#&admin=true", "/v1/orders/7#/../../admin/delete", "/v1/orders#"} {
		t.Run(target, func(t *testing.T) {
			raw := e.sign(t, "GET "+target+" HTTP/1.1\r\nHost: HOST\r\n\r\n")
			e.send(t, raw, 400, "invalid-target")
			// Unsigned, it is refused for its target, before its signature.
			e.send(t, e.host("GET "+target+" HTTP/1.1\r\nHost: HOST\r\n\r\n"), 400, "invalid-target")
		})
	}
}

// TestWireBodyAfterVerification: the body of a request is read only once
// its signature verified: a client that asks first (Expect: 100-continue)
// gets 100 Continue only then, and a refused client gets its answer
// without sending its body.
func TestWireBodyAfterVerification(t *testing.T) {
	e := newWireEnv(t, "", nil)
	body := `{"sku":"B-1"}`
	post := "POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	signed := e.sign(t, post)
	head, _, _ := strings.Cut(signed, "\r\n\r\n")
	expectHead := head + "\r\nExpect: 100-continue\r\n\r\n"

	// Signed: 100 Continue, then the body, then the upstream's answer.
	c := wiretest.Dial(t, e.addr)
	io.WriteString(c, expectHead)
	br := bufio.NewReader(c)
	if resp, _ := wiretest.Read(t, br); resp.StatusCode != 100 {
		t.Fatalf("signed: %d before the body, want 100", resp.StatusCode)
	}
	io.WriteString(c, body)
	if resp, got := wiretest.ReadFinal(t, br); resp.StatusCode != 200 || got != "ok" {
		t.Fatalf("signed: %d %s", resp.StatusCode, got)
	}

	badSig := strings.Replace(expectHead, "Signature: sig1=:", "Signature: sig1=:AAAA", 1)
	unknownKey := strings.Replace(expectHead, `keyid="sk_acme"`, `keyid="sk_nobody"`, 1)
	unsigned := e.host("POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n")
	noExpect := e.host("POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
	for name, raw := range map[string]string{"bad signature": badSig, "unknown key": unknownKey, "unsigned": unsigned, "unsigned, no Expect": noExpect} {
		t.Run(name, func(t *testing.T) {
			// Only the head is sent: the answer must come without the body.
			c := wiretest.Dial(t, e.addr)
			io.WriteString(c, raw)
			resp, got := wiretest.Read(t, bufio.NewReader(c))
			if resp.StatusCode != 401 {
				t.Fatalf("%d %s, want 401 before any body", resp.StatusCode, got)
			}
			if !resp.Close {
				t.Fatal("the connection of an unread body is kept open")
			}
		})
	}
	if n := e.up.Count(); n != 1 {
		t.Fatalf("the upstream got %d requests", n)
	}
}

// TestWireBodyBudget: the bodies held at once stay within the budget;
// beyond it, 503 with Retry-After; the budget comes back.
func TestWireBodyBudget(t *testing.T) {
	e := newWireEnv(t, "", func(c *gateway.Config) { c.Verify.MaxBodyBytes, c.Verify.BodyBudget = 6000, 10000 })
	body := strings.Repeat("x", 6000)
	post := func() string {
		return e.sign(t, "POST /upload HTTP/1.1\r\nHost: HOST\r\nContent-Type: text/plain\r\nContent-Length: 6000\r\n\r\n"+body)
	}
	// The first request holds 6000 bytes of budget while its body comes.
	first := post()
	head, _, _ := strings.Cut(first, "\r\n\r\n")
	c := wiretest.Dial(t, e.addr)
	io.WriteString(c, head+"\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, _ := wiretest.Read(t, br); resp.StatusCode != 100 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	io.WriteString(c, body[:100])

	resp, got := wiretest.Send(t, e.addr, post())
	if resp.StatusCode != 503 || reasonOf(t, resp, got) != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the budget: %d %v %s", resp.StatusCode, resp.Header, got)
	}

	io.WriteString(c, body[100:])
	if resp, got := wiretest.ReadFinal(t, br); resp.StatusCode != 200 {
		t.Fatalf("first: %d %s", resp.StatusCode, got)
	}
	e.send(t, post(), 200, "")
}

// TestWireHeapFlat: connections that send only a head with a large
// Content-Length and no signature cost no memory for their bodies.
func TestWireHeapFlat(t *testing.T) {
	e := newWireEnv(t, "", nil)
	const conns, length = 64, 4 << 20
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	var wg sync.WaitGroup
	cs := make([]net.Conn, conns)
	for i := range cs {
		cs[i] = wiretest.Dial(t, e.addr)
		cs[i].SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(cs[i], "POST /v1/orders HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", e.addr, length)
	}
	answered := make(chan int, conns)
	for _, c := range cs {
		wg.Go(func() {
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				answered <- resp.StatusCode
			}
		})
	}
	wg.Wait()
	grown := int64(heap()) - int64(before)
	close(answered)
	n := 0
	for status := range answered {
		if status != 401 {
			t.Errorf("status %d", status)
		}
		n++
	}
	t.Logf("%d of %d answered; heap grew by %d KiB", n, conns, grown>>10)
	if n != conns {
		t.Errorf("%d of %d connections answered", n, conns)
	}
	if grown > 16<<20 {
		t.Fatalf("the heap grew by %d MiB for %d unsigned heads", grown>>20, conns)
	}
}

// TestWireSpoofedIdentity: no field of the client that any stack could
// read as an identity or forwarding field reaches the upstream.
func TestWireSpoofedIdentity(t *testing.T) {
	e := newWireEnv(t, "", nil)
	raw := e.sign(t, "GET /v1/orders HTTP/1.1\r\nHost: HOST\r\n"+
		"X_Signet_Scopes: admin\r\nx-signet-owner: root\r\nX-SIGNET-KEY-ID: sk_root\r\nX_signet-Anything: 1\r\nx_SIGNET_owner: root\r\n"+
		"X_Forwarded_Host: evil.example\r\nX_Forwarded_For: 10.0.0.1\r\nForwarded_: x\r\nX-Custom_Field: kept\r\n\r\n")
	e.send(t, raw, 200, "")
	_, fields := wiretest.Head(e.up.Last(t))
	want := map[string]string{"X-Signet-Key-Id": "sk_acme", "X-Signet-Owner": "acme", "X-Signet-Scopes": "orders:read"}
	seen := map[string]int{}
	for _, f := range fields {
		norm := strings.ReplaceAll(strings.ToLower(f.Name), "_", "-")
		switch {
		case strings.HasPrefix(norm, "x-signet-"):
			if want[f.Name] != f.Value {
				t.Errorf("the upstream got %q", f)
			}
			seen[f.Name]++
		case strings.HasPrefix(norm, "x-forwarded-") && strings.Contains(f.Name, "_"):
			t.Errorf("the upstream got %q", f)
		}
	}
	for name := range want {
		if seen[name] != 1 {
			t.Errorf("%s sent %d times", name, seen[name])
		}
	}
	if !strings.Contains(string(e.up.Last(t)), "\r\nX-Custom_field: kept\r\n") {
		t.Errorf("an ordinary field with '_' was dropped:\n%s", e.up.Last(t))
	}
}

// TestWireConnectionCovered: a covered field named in Connection, which a
// proxy removes, is refused.
func TestWireConnectionCovered(t *testing.T) {
	e := newWireEnv(t, "", nil)
	for _, conn := range []string{"close, content-type, content-digest", "Content-Digest", "keep-alive,CONTENT-TYPE"} {
		signed := e.sign(t, "POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
		raw := strings.Replace(signed, "\r\nContent-Type:", "\r\nConnection: "+conn+"\r\nContent-Type:", 1)
		e.send(t, raw, 400, "hop-by-hop-field")
	}
	// A covered field that is hop-by-hop by definition.
	s := *e.signer
	s.Components = []httpsig.Component{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}, {Name: "te"}}
	raw := wiretest.Sign(t, &s, e.host("GET /x HTTP/1.1\r\nHost: HOST\r\nTE: trailers\r\n\r\n"))
	e.send(t, raw, 400, "hop-by-hop-field")
	// An uncovered field may be named.
	e.send(t, strings.Replace(e.sign(t, "GET /x HTTP/1.1\r\nHost: HOST\r\n\r\n"), "\r\n\r\n", "\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\n\r\n", 1), 200, "")
}

// TestWireTrailers: request trailers, declared or not, are refused.
func TestWireTrailers(t *testing.T) {
	e := newWireEnv(t, "", nil)
	chunked := func(declare string) string {
		raw := e.sign(t, "POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"+declare+"\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n")
		return strings.TrimSuffix(raw, "0\r\n\r\n") + "0\r\nX-Signet-Owner: root\r\nX_Signet_Scopes: admin\r\n\r\n"
	}
	e.send(t, chunked("Trailer: X-Signet-Owner, X_Signet_Scopes\r\n"), 400, "trailers-not-accepted")
	e.send(t, chunked(""), 400, "trailers-not-accepted")
	// Without trailers, a chunked body passes.
	e.send(t, e.sign(t, "POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n"), 200, "")
}

// TestWireHost: a zone in Host is refused; the upstream gets the Host
// that was verified, and it alone in X-Forwarded-Host.
func TestWireHost(t *testing.T) {
	e := newWireEnv(t, "", nil)
	_, port, _ := net.SplitHostPort(e.addr)
	for _, host := range []string{"[::1%25evil.example]:" + port, "[::1%eth0]:" + port, "127.0.0.1%2e:" + port, "a,b:" + port, "[::1]x"} {
		e.send(t, wiretest.Sign(t, e.signer, "GET /x HTTP/1.1\r\nHost: "+host+"\r\n\r\n"), 400, "invalid-host")
	}
	e.send(t, e.sign(t, "GET /x HTTP/1.1\r\nHost: HOST\r\nX-Forwarded-Host: evil.example\r\n\r\n"), 200, "")
	got := wiretest.Parse(t, e.up.Last(t))
	if got.Host != e.addr || strings.Join(got.Header.Values("X-Forwarded-Host"), "|") != e.addr {
		t.Fatalf("upstream Host %q, X-Forwarded-Host %q", got.Host, got.Header.Values("X-Forwarded-Host"))
	}
}

// TestWireDotSegments: with a base path, a target with a dot-segment in
// any spelling is refused; without one, it is passed on as signed.
func TestWireDotSegments(t *testing.T) {
	e := newWireEnv(t, "/base", nil)
	for _, target := range []string{
		"/../admin/x", "/%2e%2e/admin/x", "/%2E%2e/admin", "/.%2E/admin", "/x/..%2Fadmin", `/x/..\admin`, "/x/%2e%2e%5cadmin",
		"/..;/admin", "/x/.", "/x/..", "/./x", "/%2e/x?y=1",
	} {
		e.send(t, e.sign(t, "GET "+target+" HTTP/1.1\r\nHost: HOST\r\n\r\n"), 400, "invalid-target")
	}
	for target, want := range map[string]string{"/ok/x": "/base/ok/x", "/": "/base/", "/a..b/.x/x.": "/base/a..b/.x/x.", "/x?p=../..": "/base/x?p=../.."} {
		e.send(t, e.sign(t, "GET "+target+" HTTP/1.1\r\nHost: HOST\r\n\r\n"), 200, "")
		if line, _ := wiretest.Head(e.up.Last(t)); line != "GET "+want+" HTTP/1.1" {
			t.Errorf("%s: upstream got %q", target, line)
		}
	}
	plain := newWireEnv(t, "", nil)
	plain.send(t, plain.sign(t, "GET /x/../admin HTTP/1.1\r\nHost: HOST\r\n\r\n"), 200, "")
	if line, _ := wiretest.Head(plain.up.Last(t)); line != "GET /x/../admin HTTP/1.1" {
		t.Errorf("without a base path: upstream got %q", line)
	}
}

// TestWireTargetVerbatim: the upstream gets the target byte for byte, with
// what net/url would re-encode.
func TestWireTargetVerbatim(t *testing.T) {
	targets := []string{
		`/a\b?q="<>\`, "/caf\xc3\xa9/\xe2\x9c\x93?x=\xc3\xa9", "/\"<>^`{|}?`{}", "//double/slash?x",
		"/a%2Fb/c%7e?odd=%zz%4&x=1;y=2&sp=a+b", "/q?", "/q??&&", "/%41%2f",
	}
	for _, base := range []string{"", "/base", "/base/"} {
		e := newWireEnv(t, base, nil)
		for _, target := range targets {
			e.send(t, e.sign(t, "GET "+target+" HTTP/1.1\r\nHost: HOST\r\n\r\n"), 200, "")
			want := "GET " + strings.TrimSuffix(base, "/") + target + " HTTP/1.1"
			if line, _ := wiretest.Head(e.up.Last(t)); line != want {
				t.Errorf("upstream got %q, want %q", line, want)
			}
		}
	}
	// The absolute form would reach the upstream in origin form: refused.
	e := newWireEnv(t, "", nil)
	e.send(t, e.sign(t, "GET http://HOST/a\\b?c=%zz HTTP/1.1\r\nHost: HOST\r\n\r\n"), 400, "invalid-target")
	// Without a base path, net/url would re-encode a path that starts
	// with "//" and has what it escapes.
	e.send(t, e.sign(t, "GET //a\\b HTTP/1.1\r\nHost: HOST\r\n\r\n"), 400, "invalid-target")
	// Go answers OPTIONS * itself; it never reaches the upstream.
	if resp, _ := wiretest.Send(t, e.addr, e.host("OPTIONS * HTTP/1.1\r\nHost: HOST\r\n\r\n")); resp.StatusCode != 200 || e.up.Count() != 0 {
		t.Errorf("OPTIONS *: %d, upstream count %d", resp.StatusCode, e.up.Count())
	}
}

// TestWireRepeatedCoveredField: a covered field sent as several lines
// reaches the upstream as the one value that was verified.
func TestWireRepeatedCoveredField(t *testing.T) {
	e := newWireEnv(t, "", nil)
	s := *e.signer
	s.Components = []httpsig.Component{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}, {Name: "x-tenant"}, {Name: "accept"}}
	raw := wiretest.Sign(t, &s, e.host("GET /x HTTP/1.1\r\nHost: HOST\r\nX-Tenant: a\r\nAccept: text/plain\r\nX-Tenant: b\r\nX-Other: 1\r\nX-Other: 2\r\n\r\n"))
	e.send(t, raw, 200, "")
	_, fields := wiretest.Head(e.up.Last(t))
	var tenant, other []string
	for _, f := range fields {
		switch f.Name {
		case "X-Tenant":
			tenant = append(tenant, f.Value)
		case "X-Other":
			other = append(other, f.Value)
		}
	}
	if strings.Join(tenant, "|") != "a, b" {
		t.Errorf("upstream X-Tenant lines %q, want the one verified value", tenant)
	}
	if strings.Join(other, "|") != "1|2" {
		t.Errorf("upstream X-Other lines %q: an uncovered field was changed", other)
	}
	// "a, " cannot be sent as one line: a parser trims it to "a,".
	for _, lines := range []string{"X-Tenant: a\r\nX-Tenant:", "X-Tenant:\r\nX-Tenant:"} {
		raw := wiretest.Sign(t, &s, e.host("GET /x HTTP/1.1\r\nHost: HOST\r\nAccept: */*\r\n"+lines+"\r\n\r\n"))
		e.send(t, raw, 400, "invalid-field")
	}
	e.send(t, wiretest.Sign(t, &s, e.host("GET /x HTTP/1.1\r\nHost: HOST\r\nAccept: */*\r\nX-Tenant:\r\nX-Tenant: b\r\n\r\n")), 200, "")
	if _, fields := wiretest.Head(e.up.Last(t)); !slices.Contains(fields, wiretest.Field{Name: "X-Tenant", Value: ", b"}) {
		t.Errorf("upstream fields %q", fields)
	}
}

// TestWireConnect: CONNECT, which asks the upstream for a tunnel (after a
// 2xx, the connection is no longer HTTP), is refused before anything is
// verified, in origin form as in authority form.
func TestWireConnect(t *testing.T) {
	e := newWireEnv(t, "", nil)
	e.send(t, e.sign(t, "CONNECT /v1/orders HTTP/1.1\r\nHost: HOST\r\n\r\n"), 400, "invalid-target")
	for _, target := range []string{"/v1/orders", "HOST"} {
		e.send(t, e.host("CONNECT "+target+" HTTP/1.1\r\nHost: HOST\r\n\r\n"), 400, "invalid-target")
	}
	e.send(t, e.sign(t, "GET /v1/orders HTTP/1.1\r\nHost: HOST\r\n\r\n"), 200, "")
}

// TestWireUpgrade: only WebSocket upgrades are let through.
func TestWireUpgrade(t *testing.T) {
	e := newWireEnv(t, "", nil)
	for _, up := range []string{"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA", "Upgrade: websocket, h2c", "Upgrade: websocket\r\nUpgrade: h2c", "Upgrade: tls/1.2"} {
		raw := e.sign(t, "GET /x HTTP/1.1\r\nHost: HOST\r\nConnection: Upgrade, HTTP2-Settings\r\n"+up+"\r\n\r\n")
		e.send(t, raw, 400, "upgrade-not-accepted")
	}
}
