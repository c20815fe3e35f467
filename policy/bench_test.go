package policy

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// routes100 is a policy of 100 routes, of the shapes APIs have.
func routes100() string {
	var b strings.Builder
	b.WriteString("upstream: http://127.0.0.1:1\nroutes:\n")
	for i := range 20 {
		fmt.Fprintf(&b, "  - {match: \"GET /v1/res%d\", scopes: [\"r%d:read\"]}\n", i, i)
		fmt.Fprintf(&b, "  - {match: \"POST /v1/res%d\", scopes: [\"r%d:write\"]}\n", i, i)
		fmt.Fprintf(&b, "  - {match: \"GET /v1/res%d/{id}\", scopes: [\"r%d:read\"]}\n", i, i)
		fmt.Fprintf(&b, "  - {match: \"DELETE /v1/res%d/{id}\", scopes: [\"r%d:write\"]}\n", i, i)
		fmt.Fprintf(&b, "  - {match: \"GET /v1/res%d/{id}/sub/{rest...}\"}\n", i)
	}
	return b.String()
}

// BenchmarkRoute finds the route of the reference request among 100
// routes, and, in the same run, what http.ServeMux takes for the same.
func BenchmarkRoute(b *testing.B) {
	p := mustParse(b, routes100())
	if len(p.Routes) != 100 {
		b.Fatal(len(p.Routes))
	}
	cases := []struct{ name, method, path, want string }{
		{"literal", "POST", "/v1/res17", "POST /v1/res17"},
		{"wildcard", "GET", "/v1/res17/42", "GET /v1/res17/{id}"},
		{"multi", "GET", "/v1/res17/42/sub/a/b", "GET /v1/res17/{id}/sub/{rest...}"},
		{"none", "GET", "/v2/other/thing", ""},
	}
	for _, c := range cases {
		b.Run("policy/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, _ := p.Match(c.method, "api.example.com", c.path)
				if (r == nil) != (c.want == "") || r != nil && r.Pattern != c.want {
					b.Fatal(r)
				}
			}
		})
	}
	mux := http.NewServeMux()
	for i, r := range p.Routes {
		mux.Handle(r.Pattern, routeHandler(i))
	}
	for _, c := range cases {
		b.Run("servemux/"+c.name, func(b *testing.B) {
			req := &http.Request{Method: c.method, Host: "api.example.com", URL: &url.URL{Path: c.path}}
			b.ReportAllocs()
			for b.Loop() {
				_, pat := mux.Handler(req)
				if pat != c.want {
					b.Fatal(pat)
				}
			}
		})
	}
}
