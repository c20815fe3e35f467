package policy

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func mustParse(t testing.TB, yaml string) *Policy {
	t.Helper()
	p, err := Parse("test.yaml", []byte(yaml), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMatchPrecedence(t *testing.T) {
	p := mustParse(t, `
upstream: http://127.0.0.1:1
routes:
  - {match: "/"}
  - {match: "GET /v1/orders"}
  - {match: "GET /v1/orders/{id}"}
  - {match: "GET /v1/orders/{id}/items/{item...}"}
  - {match: "GET /v1/orders/new"}
  - {match: "POST /v1/orders"}
  - {match: "/v1/files/"}
  - {match: "/v1/files/{$}"}
  - {match: "api.example.com/"}
  - {match: "GET api.example.com/v1/orders"}
  - {match: "/static/"}
  - {match: "GET /only-get"}
  - {match: "/users/{u}/files/"}
`)
	tests := []struct {
		method, host, path, want string
	}{
		{"GET", "other.test", "/", "/"},
		{"GET", "other.test", "/v1/orders", "GET /v1/orders"},
		{"HEAD", "other.test", "/v1/orders", "GET /v1/orders"},
		{"POST", "other.test", "/v1/orders", "POST /v1/orders"},
		{"PUT", "other.test", "/v1/orders", "/"},
		{"GET", "other.test", "/v1/orders/7", "GET /v1/orders/{id}"},
		{"GET", "other.test", "/v1/orders/new", "GET /v1/orders/new"},
		{"GET", "other.test", "/v1/orders/%6eew", "GET /v1/orders/new"}, // segments are compared unescaped, as by ServeMux
		{"GET", "other.test", "/v1/orders/7/items/a/b", "GET /v1/orders/{id}/items/{item...}"},
		{"GET", "other.test", "/v1/orders/7/items/", "GET /v1/orders/{id}/items/{item...}"},
		{"GET", "other.test", "/v1/orders/7/", "/"},
		{"GET", "other.test", "/v1/files/", "/v1/files/{$}"},
		{"GET", "other.test", "/v1/files/x", "/v1/files/"},
		{"GET", "other.test", "/v1/files", "/v1/files/{$}"}, // ServeMux would redirect to /v1/files/
		{"GET", "other.test", "/static", "/static/"},
		{"GET", "other.test", "/staticx", "/"},
		{"GET", "other.test", "/users/7/files", "/users/{u}/files/"},
		{"GET", "API.Example.COM:8443", "/v1/orders", "GET api.example.com/v1/orders"},
		{"GET", "api.example.com", "/v1/orders/7", "api.example.com/"}, // host patterns first
		{"DELETE", "other.test", "/only-get", "/"},
		{"GET", "other.test", "/v1/x/a%2Fb", ""}, // refused unless encoded slashes are allowed
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.host+tt.path, func(t *testing.T) {
			r, err := p.Match(tt.method, tt.host, tt.path)
			if strings.Contains(tt.path, "%2F") {
				if _, ok := err.(*TargetError); !ok {
					t.Fatalf("err = %v, want a TargetError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Pattern != tt.want {
				t.Fatalf("matched %q, want %q", r.Pattern, tt.want)
			}
		})
	}
}

func TestMatchEncodedSlashesAllowed(t *testing.T) {
	p := mustParse(t, `
upstream: http://127.0.0.1:1
paths: {allow_encoded_slashes: true}
routes:
  - {match: "/"}
  - {match: "GET /projects/{id}"}
  - {match: "GET /raw/a%2Fb"}
`)
	for path, want := range map[string]string{
		"/projects/group%2Fproject": "GET /projects/{id}",
		"/raw/a%2Fb":                "GET /raw/a%2Fb",
		"/raw/a/b":                  "/",
	} {
		r, err := p.Match("GET", "h", path)
		if err != nil || r.Pattern != want {
			t.Errorf("%s: %v %v, want %q", path, r, err, want)
		}
	}
}

func TestNoRoute(t *testing.T) {
	p := mustParse(t, `
upstream: http://127.0.0.1:1
routes:
  - {match: "GET /v1/orders"}
  - {match: "example.com/"}
`)
	for _, c := range [][3]string{
		{"POST", "h", "/v1/orders"},
		{"GET", "h", "/v1/orders/"},
		{"GET", "h", "/"},
		{"GET", "example.org", "/x"},
		{"GET", "sub.example.com", "/x"},
	} {
		if r, err := p.Match(c[0], c[1], c[2]); err != ErrNoRoute {
			t.Errorf("%v: %v %v, want ErrNoRoute", c, r, err)
		}
	}
}

func TestCheckPath(t *testing.T) {
	ok := []string{"/", "/a", "/a/", "/a/b/c", "/a.b", "/...", "/a..", "/.well-known/x", "/%41", "/a%20b", "/%e2%82%ac", "/a%2e"}
	bad := []string{
		"", "a", "//", "/a//b", "/a/./b", "/a/../b", "/.", "/..", "/a/.", "/a/..",
		"/%2e", "/%2E%2e", "/.%2e/", "/%2e./x",
		"/a%2Fb", "/a%2fb", "/a%5cb", "/a%5Cb", "/a\\b",
		"/a%00", "/a%0a", "/a%7f", "/a\x01",
		"/a%", "/a%2", "/a%zz", "/%g0",
		"/a;b", "/..;/admin", "/admin;x/", "/;/admin", "/.;x",
	}
	for _, p := range ok {
		if msg := checkPath(p, PathRules{}); msg != "" {
			t.Errorf("%q refused: %s", p, msg)
		}
	}
	for _, p := range bad {
		if msg := checkPath(p, PathRules{}); msg == "" {
			t.Errorf("%q accepted", p)
		}
	}
	semi := PathRules{Semicolons: true}
	for _, p := range []string{"/a;b", "/a;b/c", "/admin;x/"} {
		if msg := checkPath(p, semi); msg != "" {
			t.Errorf("%q refused with semicolons allowed: %s", p, msg)
		}
	}
	for _, p := range []string{"/..;/admin", "/.;x/", "/;x/admin", "/%2e%2e;x/a"} {
		if msg := checkPath(p, semi); msg == "" {
			t.Errorf("%q accepted with semicolons allowed", p)
		}
	}
}

// routeHandler marks the handlers of the reference ServeMux.
type routeHandler int

func (routeHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// The route table picks what http.ServeMux picks, or, where ServeMux would
// redirect /tree to /tree/, the pattern it would redirect for.
func FuzzMatchLikeServeMux(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(42), uint64(7))
	f.Add(uint64(1234567), uint64(99))
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64) {
		compareWithServeMux(t, rand.New(rand.NewPCG(seed1, seed2)))
	})
}

func TestMatchLikeServeMux(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 30
	}
	for i := range n {
		compareWithServeMux(t, rand.New(rand.NewPCG(uint64(i), 1)))
	}
}

func compareWithServeMux(t *testing.T, rnd *rand.Rand) {
	lits := []string{"a", "b", "orders", "new", "x%2Fy"}
	methods := []string{"", "", "GET ", "POST ", "HEAD "}
	hosts := []string{"", "", "", "h.test"}
	randPattern := func() string {
		var b strings.Builder
		b.WriteString(methods[rnd.IntN(len(methods))])
		b.WriteString(hosts[rnd.IntN(len(hosts))])
		n := rnd.IntN(4)
		names := 0
		for i := 0; i < n; i++ {
			b.WriteByte('/')
			switch k := rnd.IntN(10); {
			case k < 6:
				b.WriteString(lits[rnd.IntN(len(lits))])
			case k < 8:
				fmt.Fprintf(&b, "{w%d}", names)
				names++
			case k == 8 && i == n-1:
				fmt.Fprintf(&b, "{m%d...}", names)
				return b.String()
			case i == n-1:
				b.WriteString("{$}")
				return b.String()
			default:
				b.WriteString(lits[0])
			}
		}
		if n == 0 || rnd.IntN(3) == 0 {
			b.WriteByte('/')
		}
		return b.String()
	}
	// Build both from the same accepted patterns.
	mux := http.NewServeMux()
	var routes []*Route
	for i := 0; i < 12; i++ {
		pat := randPattern()
		if func() (bad bool) {
			defer func() { bad = recover() != nil }()
			mux.Handle(pat, routeHandler(len(routes)))
			return false
		}() {
			continue
		}
		m, h, segs := parsePattern(pat)
		routes = append(routes, &Route{Pattern: pat, Name: pat, Method: m, Host: h, segs: segs})
	}
	if len(routes) == 0 {
		return
	}
	tab := newTable(routes)
	segs := []string{"a", "b", "orders", "new", "x%2Fy", "z", "%61"}
	for range 40 {
		var b strings.Builder
		for n := rnd.IntN(5); n >= 0; n-- {
			b.WriteByte('/')
			if n > 0 || rnd.IntN(3) > 0 {
				b.WriteString(segs[rnd.IntN(len(segs))])
			}
		}
		path := b.String()
		method := []string{"GET", "POST", "HEAD", "PUT"}[rnd.IntN(4)]
		host := []string{"h.test", "other.test"}[rnd.IntN(2)]
		req := &http.Request{Method: method, Host: host, URL: &url.URL{Path: mustUnescape(path), RawPath: path}}
		h, pat := mux.Handler(req)
		want := ""
		if rh, ok := h.(routeHandler); ok {
			want = routes[rh].Pattern
		} else if pat != "" {
			want = pat // the pattern ServeMux redirects for
		}
		got := ""
		if r := tab.match(method, host, path); r != nil {
			got = r.Pattern
		}
		if got != want {
			var all []string
			for _, r := range routes {
				all = append(all, r.Pattern)
			}
			t.Fatalf("%s %s%s: matched %q, ServeMux %q (handler %T)\npatterns: %q", method, host, path, got, want, h, all)
		}
	}
}

func mustUnescape(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		panic(err)
	}
	return u
}
