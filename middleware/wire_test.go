package middleware_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/wiretest"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// wireApp is a server behind Verify that records what its handler got,
// for tests that send raw bytes.
type wireApp struct {
	addr   string
	signer *httpsig.Signer
	mu     sync.Mutex
	got    []*http.Request
}

func newWireApp(t testing.TB, mutate func(*middleware.Options)) *wireApp {
	t.Helper()
	key, _ := httpsig.NewHMACKey(bytes.Repeat([]byte("s"), 32))
	a := &wireApp{signer: &httpsig.Signer{Key: key, KeyID: "sk_1"}}
	opts := middleware.Options{Verifier: httpsig.Verifier{
		Keys: httpsig.KeyResolverFunc(func(_ context.Context, id string) (httpsig.VerifyingKey, error) {
			if id != "sk_1" {
				return nil, httpsig.ErrUnknownKey
			}
			return ownedKey{key, "acme", nil}, nil
		}),
		Nonces: memory.New(memory.Options{}),
	}}
	if mutate != nil {
		mutate(&opts)
	}
	srv := httptest.NewServer(middleware.Verify(opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		a.mu.Lock()
		a.got = append(a.got, r)
		a.mu.Unlock()
		io.WriteString(w, "ok")
	})))
	t.Cleanup(srv.Close)
	a.addr = srv.Listener.Addr().String()
	return a
}

func (a *wireApp) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.got)
}

func (a *wireApp) last() *http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got[len(a.got)-1]
}

func (a *wireApp) sign(t testing.TB, raw string) string {
	t.Helper()
	return wiretest.Sign(t, a.signer, a.host(raw))
}

func (a *wireApp) host(raw string) string { return strings.ReplaceAll(raw, "HOST", a.addr) }

// send sends raw and checks the answer: a problem with the reason, or
// 200 from the handler when reason is "".
func (a *wireApp) send(t *testing.T, raw string, status int, reason string) {
	t.Helper()
	before := a.count()
	resp, body := wiretest.Send(t, a.addr, raw)
	if resp.StatusCode != status {
		t.Fatalf("%d %s, want %d %s\nsent:\n%s", resp.StatusCode, body, status, reason, raw)
	}
	if reason == "" {
		if body != "ok" || a.count() != before+1 {
			t.Fatalf("%d %s: the handler did not answer", resp.StatusCode, body)
		}
		return
	}
	if p := problemOf(t, resp, body); p.Type != middleware.DefaultProblemBase+reason {
		t.Fatalf("problem %+v, want reason %s", p, reason)
	}
	if a.count() != before {
		t.Fatal("the refused request reached the handler")
	}
}

func TestWireFragment(t *testing.T) {
	a := newWireApp(t, nil)
	a.send(t, a.sign(t, "GET /v1/orders/7?x=1#&admin=true HTTP/1.1\r\nHost: HOST\r\n\r\n"), 400, "invalid-target")
	a.send(t, a.host("GET /v1/orders/7#/../../admin HTTP/1.1\r\nHost: HOST\r\n\r\n"), 400, "invalid-target")
}

func TestWireHostZone(t *testing.T) {
	a := newWireApp(t, nil)
	_, port, _ := net.SplitHostPort(a.addr)
	a.send(t, wiretest.Sign(t, a.signer, "GET /x HTTP/1.1\r\nHost: [::1%25evil.example]:"+port+"\r\n\r\n"), 400, "invalid-host")
}

func TestWireConnectionCovered(t *testing.T) {
	a := newWireApp(t, nil)
	raw := a.sign(t, "POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	raw = strings.Replace(raw, "\r\nContent-Type:", "\r\nConnection: close, content-type\r\nContent-Type:", 1)
	a.send(t, raw, 400, "hop-by-hop-field")
}

func TestWireTrailers(t *testing.T) {
	a := newWireApp(t, nil)
	for _, declare := range []string{"Trailer: X-Signet-Owner\r\n", ""} {
		raw := a.sign(t, "POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"+declare+"\r\n2\r\n{}\r\n0\r\n\r\n")
		raw = strings.TrimSuffix(raw, "0\r\n\r\n") + "0\r\nX-Signet-Owner: root\r\n\r\n"
		a.send(t, raw, 400, "trailers-not-accepted")
	}
}

func TestWireRepeatedCoveredField(t *testing.T) {
	a := newWireApp(t, nil)
	s := *a.signer
	s.Components = []httpsig.Component{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}, {Name: "x-tenant"}}
	a.send(t, wiretest.Sign(t, &s, a.host("GET /x HTTP/1.1\r\nHost: HOST\r\nX-Tenant: a\r\nX-Tenant: b\r\n\r\n")), 200, "")
	if got := a.last().Header["X-Tenant"]; len(got) != 1 || got[0] != "a, b" {
		t.Fatalf("the handler got X-Tenant %q, want the one verified value", got)
	}
	a.send(t, wiretest.Sign(t, &s, a.host("GET /x HTTP/1.1\r\nHost: HOST\r\nX-Tenant: a\r\nX-Tenant:\r\n\r\n")), 400, "invalid-field")
}

// TestWireBodyAfterVerification: 100 Continue only once the signature
// verified; a refusal without reading the body.
func TestWireBodyAfterVerification(t *testing.T) {
	a := newWireApp(t, nil)
	signed := a.sign(t, "POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	head, _, _ := strings.Cut(signed, "\r\n\r\n")
	c := wiretest.Dial(t, a.addr)
	io.WriteString(c, head+"\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, _ := wiretest.Read(t, br); resp.StatusCode != 100 {
		t.Fatalf("signed: %d, want 100", resp.StatusCode)
	}
	io.WriteString(c, "{}")
	if resp, body := wiretest.ReadFinal(t, br); resp.StatusCode != 200 {
		t.Fatalf("signed: %d %s", resp.StatusCode, body)
	}

	c = wiretest.Dial(t, a.addr)
	fmt.Fprintf(c, "POST /v1/orders HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n", a.addr)
	resp, body := wiretest.Read(t, bufio.NewReader(c))
	if resp.StatusCode != 401 || !resp.Close {
		t.Fatalf("unsigned: %d (close %v) %s, want 401 and close before any body", resp.StatusCode, resp.Close, body)
	}
}

func TestWireBodyBudget(t *testing.T) {
	a := newWireApp(t, func(o *middleware.Options) { o.MaxBodyBytes, o.BodyBudget = 6000, 10000 })
	body := strings.Repeat("x", 6000)
	post := func() string {
		return a.sign(t, "POST /upload HTTP/1.1\r\nHost: HOST\r\nContent-Type: text/plain\r\nContent-Length: 6000\r\n\r\n"+body)
	}
	head, _, _ := strings.Cut(post(), "\r\n\r\n")
	c := wiretest.Dial(t, a.addr)
	io.WriteString(c, head+"\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, _ := wiretest.Read(t, br); resp.StatusCode != 100 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	a.send(t, post(), 503, "unavailable")
	io.WriteString(c, body)
	if resp, got := wiretest.ReadFinal(t, br); resp.StatusCode != 200 {
		t.Fatalf("first: %d %s", resp.StatusCode, got)
	}
	a.send(t, post(), 200, "")
}

// heapGrowth returns how much the live heap grew while each head was sent
// on a connection of its own and answered (or wait passed), and the
// statuses of the answers.
func heapGrowth(t *testing.T, addr string, heads []string, wait time.Duration) (int64, []int) {
	t.Helper()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	statuses := make([]int, len(heads))
	var wg sync.WaitGroup
	for i, h := range heads {
		c := wiretest.Dial(t, addr)
		c.SetDeadline(time.Now().Add(wait))
		io.WriteString(c, h)
		wg.Go(func() {
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				statuses[i] = resp.StatusCode
			}
		})
	}
	wg.Wait()
	return int64(heap()) - int64(before), statuses
}

// TestWireHeapFlat: heads of unsigned requests that announce large bodies
// cost no memory for them.
func TestWireHeapFlat(t *testing.T) {
	a := newWireApp(t, nil)
	heads := make([]string, 64)
	for i := range heads {
		heads[i] = a.host("POST /v1/orders HTTP/1.1\r\nHost: HOST\r\nContent-Length: 4194304\r\n\r\n")
	}
	grown, statuses := heapGrowth(t, a.addr, heads, 3*time.Second)
	t.Logf("heap grew by %d KiB", grown>>10)
	for _, s := range statuses {
		if s != 401 {
			t.Fatalf("statuses %v, want 401 without the bodies", statuses)
		}
	}
	if grown > 16<<20 {
		t.Fatalf("the heap grew by %d MiB for %d unsigned heads", grown>>20, len(heads))
	}
}

// TestWireBodyGrowsAsItArrives: even a verified request gets memory for
// the body it sends, not for the length it announces.
func TestWireBodyGrowsAsItArrives(t *testing.T) {
	const n, length = 16, 4 << 20
	a := newWireApp(t, func(o *middleware.Options) { o.BodyBudget = n * length })
	heads := make([]string, n)
	for i := range heads {
		raw := a.sign(t, fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: HOST\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", length, strings.Repeat("x", length)))
		head, _, _ := strings.Cut(raw, "\r\n\r\n")
		heads[i] = head + "\r\n\r\n" + strings.Repeat("x", 100)
	}
	grown, _ := heapGrowth(t, a.addr, heads, time.Second)
	t.Logf("heap grew by %d KiB", grown>>10)
	if grown > 8<<20 {
		t.Fatalf("the heap grew by %d MiB for %d bodies of 100 bytes", grown>>20, n)
	}
}
