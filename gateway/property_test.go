package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/wiretest"
)

// Pieces of generated requests: ordinary ones, and tricky ones that stacks
// read differently, drawn one time in five.
var (
	genSegments = [2][]string{
		{"a", "v1", "orders", "caf\xc3\xa9", `\`, `"`, "<>", "~", "!$&'()*+,;=", "@", ":", "%41", "%2F", "{}", "|^`", "", "a.b"},
		{"..", ".", "%2e%2e", "%2E", ".%2e", "%2e%2E%2f", "..;x", `..\`, "%252e", "%", "%zz", "a b", "\x7f", "#", "?", "[]"},
	}
	genQueries = [2][]string{
		{"", "", "?a=1", "?a=1&a=2", `?q="<>\`, "?a=b?c", "?", "?&&"},
		{"?x=%zz", "?%", "?a=1#f", "??", "?a=%2e%2e/x"},
	}
	genFields = [2][]string{
		{"Content-Type: application/json", "X-Tenant: a", "x-tenant: b", "X-Tenant: c, d", "Accept: */*", "Accept: text/plain",
			"X_Signet_Owner: root", "X-Signet-Scopes: admin", "x-signet-key-id: sk_root", "X_Forwarded_Host: evil.example",
			"X-Forwarded-Host: evil.example", "Connection: keep-alive", "Expect: 100-continue", "X-Empty:",
			"Cookie: a=1", "Cookie: b=2", "Cache-Control: no-cache"},
		{"Connection: close, x-tenant", "Connection: accept", "Upgrade: h2c", "Upgrade: websocket", "Trailer: X-Tenant", "Te: trailers"},
	}
	genHosts = [2][]string{{"HOST", "LocalHost:PORT", "127.0.0.1:0PORT"}, {"[::1%25x]:PORT", "127.0.0.1:PORT.", "127.0.0.1:PORT:1"}}
)

// pick returns an ordinary piece, or one time in five a tricky one.
func pick(rng *rand.Rand, pieces [2][]string) string {
	set := pieces[0]
	if rng.IntN(5) == 0 {
		set = pieces[1]
	}
	return set[rng.IntN(len(set))]
}

// genRequest makes a raw request and the components to sign it with.
func genRequest(rng *rand.Rand) (raw string, comps []httpsig.Component) {
	var target strings.Builder
	for range 1 + rng.IntN(4) {
		target.WriteString("/" + pick(rng, genSegments))
	}
	target.WriteString(pick(rng, genQueries))
	method, body := "GET", ""
	if rng.IntN(3) == 0 {
		method, body = "POST", `{"n":`+fmt.Sprint(rng.IntN(1000))+"}"
	}
	var head strings.Builder
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target.String(), pick(rng, genHosts))
	comps = []httpsig.Component{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}}
	if strings.Contains(target.String(), "?") {
		comps = append(comps, httpsig.Component{Name: "@query"})
	}
	for _, name := range []string{"@target-uri", "@request-target"} {
		if rng.IntN(3) == 0 {
			comps = append(comps, httpsig.Component{Name: name})
		}
	}
	if rng.IntN(4) == 0 {
		comps = append(comps, httpsig.Component{Name: "@query-param", Param: "a"})
	}
	covered := map[string]bool{}
	for range rng.IntN(6) {
		f := pick(rng, genFields)
		head.WriteString(f + "\r\n")
		name := strings.ToLower(f[:strings.IndexByte(f, ':')])
		if !covered[name] && rng.IntN(2) == 0 && !gatewayOwned(name) {
			covered[name] = true
			comps = append(comps, httpsig.Component{Name: name, BS: rng.IntN(4) == 0})
		}
	}
	if body != "" {
		fmt.Fprintf(&head, "Content-Length: %d\r\n", len(body))
		comps = append(comps, httpsig.Component{Name: "content-digest"})
	}
	return head.String() + "\r\n" + body, comps
}

// gatewayOwned reports whether the gateway sets the field, in any spelling,
// whatever the client sent: a signature that covers it is checked, but the
// upstream gets the gateway's value.
func gatewayOwned(name string) bool {
	norm := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	return strings.HasPrefix(norm, "x-signet-") || strings.HasPrefix(norm, "x-forwarded-") || norm == "forwarded" || norm == "x-request-id"
}

// checkForwarded sends a generated request through the gateway signed
// with comps (unsigned if it cannot be signed) and checks that it is
// refused with a 4xx, or that the upstream received it with every covered
// component as verified, its body intact, and no identity but the
// gateway's.
func checkForwarded(t *testing.T, e *wireEnv, base, raw string, comps []httpsig.Component) {
	t.Helper()
	s := *e.signer
	s.Components = comps
	_, port, _ := net.SplitHostPort(e.addr)
	raw = strings.ReplaceAll(e.host(raw), "PORT", port)
	if signed, err := wiretest.TrySign(&s, raw); err == nil {
		raw = signed
	}
	before := e.up.Count()
	resp, answer, err := wiretest.TrySend(t, e.addr, raw)
	if err != nil {
		// Go's server refused the request as malformed and closed the
		// connection before all of it was written.
		if e.up.Count() != before {
			t.Fatalf("%v, and the upstream got\n%s\nfor\n%s", err, e.up.Last(t), raw)
		}
		return
	}
	if resp.StatusCode != 200 {
		if resp.StatusCode >= 500 || resp.StatusCode < 400 || e.up.Count() != before {
			t.Fatalf("%d %s (upstream count %d→%d) for\n%s", resp.StatusCode, answer, before, e.up.Count(), raw)
		}
		return
	}
	sent := wiretest.Parse(t, []byte(raw))
	got := wiretest.Parse(t, e.up.Last(t))
	rel, ok := strings.CutPrefix(got.RequestURI, strings.TrimSuffix(base, "/"))
	if !ok {
		t.Fatalf("the upstream got %q outside its base path %q, for\n%s", got.RequestURI, base, raw)
	}
	got.RequestURI = rel
	sigs, err := httpsig.ParseSignatures(sent.Header)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("accepted with signatures %v (%v):\n%s", sigs, err, raw)
	}
	verified, err := httpsig.SignatureBase(&httpsig.Message{Request: sent}, &sigs[0].Params)
	if err != nil {
		t.Fatalf("accepted, but its base cannot be built (%v):\n%s", err, raw)
	}
	received, err := httpsig.SignatureBase(&httpsig.Message{Request: got}, &sigs[0].Params)
	if err != nil || !bytes.Equal(received, verified) {
		t.Fatalf("the upstream received other components (%v)\nverified:\n%s\nreceived:\n%s\nsent:\n%s\nupstream got:\n%s", err, verified, received, raw, e.up.Last(t))
	}
	sentBody, _ := io.ReadAll(sent.Body)
	gotBody, _ := io.ReadAll(got.Body)
	if !bytes.Equal(sentBody, gotBody) {
		t.Fatalf("the upstream got the body %q, the client sent %q", gotBody, sentBody)
	}
	checkIdentity(t, got.Header, raw)
}

// checkIdentity fails unless the identity fields, in any spelling, are the
// gateway's, once each.
func checkIdentity(t *testing.T, h http.Header, raw string) {
	t.Helper()
	for name, v := range h {
		norm := strings.ReplaceAll(strings.ToLower(name), "_", "-")
		switch {
		case strings.HasPrefix(norm, "x-signet-"):
			want := map[string]string{"X-Signet-Key-Id": "sk_acme", "X-Signet-Owner": "acme", "X-Signet-Scopes": "orders:read"}[name]
			if len(v) != 1 || v[0] != want {
				t.Fatalf("the upstream got %s: %q for\n%s", name, v, raw)
			}
		case strings.HasPrefix(norm, "x-forwarded-") && strings.Contains(name, "_"):
			t.Fatalf("the upstream got %s: %q for\n%s", name, v, raw)
		}
	}
}

// TestForwardedAsVerified: for generated targets and field sets, what the
// upstream receives yields the signature base that was verified, or the
// request is refused.
func TestForwardedAsVerified(t *testing.T) {
	for _, base := range []string{"", "/base"} {
		t.Run("base="+base, func(t *testing.T) {
			e := newWireEnv(t, base, quiet)
			rng := rand.New(rand.NewPCG(9421, uint64(len(base))))
			accepted := 0
			for range 1000 {
				before := e.up.Count()
				raw, comps := genRequest(rng)
				checkForwarded(t, e, base, raw, comps)
				accepted += e.up.Count() - before
			}
			t.Logf("%d of 1000 accepted", accepted)
			if accepted < 250 {
				t.Fatalf("only %d of 1000 generated requests were accepted: the test checks too little", accepted)
			}
		})
	}
}

// quiet leaves out the gateway's log of refusals, thousands of them.
func quiet(c *gateway.Config) { c.Logger = slog.New(slog.DiscardHandler) }

var fuzzEnv = struct {
	once sync.Once
	e    *wireEnv
}{}

// FuzzForwardedAsVerified is TestForwardedAsVerified with fuzzed targets
// and fields, behind an upstream with a base path.
func FuzzForwardedAsVerified(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		raw, _ := genRequest(rng)
		head, _, _ := strings.Cut(raw, "\r\n\r\n")
		line, fields, _ := strings.Cut(head, "\r\n")
		f.Add(strings.Split(line, " ")[1], fields)
	}
	// What the property test found: a covered field whose last line is
	// empty, and one covered both whole and line by line (bs).
	f.Add("/x", "X-Empty:\r\nX-Empty:")
	f.Add("/x?a", "X-Repeat: a\r\nx-repeat: b")
	fuzzEnv.once.Do(func() { fuzzEnv.e = newWireEnv(f, "/base", quiet) })
	f.Fuzz(func(t *testing.T, target, fields string) {
		if strings.ContainsAny(target, " \r\n") || strings.Contains(fields, "\r\n\r\n") || strings.Contains(fields, "\n\n") {
			return
		}
		comps := []httpsig.Component{{Name: "@method"}, {Name: "@authority"}, {Name: "@path"}, {Name: "@request-target"}}
		for _, line := range strings.Split(fields, "\r\n") {
			name, _, ok := strings.Cut(line, ":")
			name = strings.ToLower(name)
			if ok && name != "" && !strings.ContainsAny(name, " \t") && !gatewayOwned(name) && name != "host" && name != "content-length" {
				comps = append(comps, httpsig.Component{Name: name})
			}
		}
		raw := "GET " + target + " HTTP/1.1\r\nHost: HOST\r\n"
		if fields != "" {
			raw += fields + "\r\n"
		}
		checkForwarded(t, fuzzEnv.e, "/base", raw+"\r\n", comps)
	})
}
