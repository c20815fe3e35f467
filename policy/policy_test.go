package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

func TestExample(t *testing.T) {
	p, err := Load("testdata/example.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) > 0 {
		t.Errorf("warnings: %v", p.Warnings)
	}
	s := p.Settings
	if s.Listen != ":8443" || s.MaxBody != 1<<20 || s.MaxAge != 300*time.Second || s.Redis == "" || s.MaxSkew != httpsig.DefaultMaxSkew {
		t.Errorf("settings %+v", s)
	}
	if u := p.Upstreams["admin"]; u == nil || u.URL.Path != "/internal" || u.MaxConns != 64 || u.ResponseHeaderTimeout != 2*time.Minute {
		t.Errorf("admin upstream %+v", u)
	}
	if p.Proxies == nil || p.Proxies.Prefix != "/api" || len(p.Proxies.From) != 1 {
		t.Errorf("proxies %+v", p.Proxies)
	}
	cases := []struct {
		method, path, route, upstream string
		public                        bool
		ok, missing                   []string // scopes that pass, and that fail
	}{
		{"GET", "/healthz", "health", "api", true, nil, nil},
		{"HEAD", "/docs/index.html", "docs", "api", true, nil, nil},
		{"GET", "/v1/orders", "orders-list", "api", false, []string{"orders:read"}, []string{"orders:write"}},
		{"GET", "/v1/orders/7", "orders-read", "api", false, []string{"orders:admin"}, nil},
		{"POST", "/v1/orders", "orders-create", "api", false, []string{"orders:write"}, []string{"orders:read"}},
		{"POST", "/v1/orders/import", "orders-import", "api", false, []string{"orders:write", "orders:import"}, []string{"orders:write"}},
		{"DELETE", "/v1/orders/7", "orders-cancel", "api", false, []string{"orders:write"}, nil},
		{"PATCH", "/admin/users/3", "admin", "admin", false, []string{"admin"}, []string{"orders:write"}},
		{"GET", "/admin", "admin", "admin", false, nil, nil},
		{"GET", "/v2/anything", "default", "api", false, []string{}, nil},
	}
	for _, c := range cases {
		r, err := p.Match(c.method, "api.example.com", c.path)
		if err != nil {
			t.Errorf("%s %s: %v", c.method, c.path, err)
			continue
		}
		if r.Name != c.route || r.Upstream.Name != c.upstream || r.Public != c.public {
			t.Errorf("%s %s: route %s to %s public %v", c.method, c.path, r.Name, r.Upstream.Name, r.Public)
		}
		if c.ok != nil {
			if m := r.Scopes.Missing(c.ok); m != "" {
				t.Errorf("%s %s: %v lacks %s", c.method, c.path, c.ok, m)
			}
		}
		if c.missing != nil && r.Scopes.Missing(c.missing) == "" {
			t.Errorf("%s %s: %v suffices", c.method, c.path, c.missing)
		}
	}
	create := p.Route("orders-create")
	if create.MaxAge != time.Minute || len(create.Algorithms) != 1 || create.Algorithms[0] != httpsig.AlgEd25519 ||
		len(create.Require) != 1 || create.Require[0].Name != "idempotency-key" {
		t.Errorf("orders-create %+v", create)
	}
	if p.Route("orders-import").MaxBody != 50<<20 {
		t.Error("orders-import max_body")
	}
}

func TestNoFile(t *testing.T) {
	p, err := Parse("", nil, Options{Flags: map[string]string{"upstream": "http://127.0.0.1:3000/base", "max-age": "1m", "strip-signature": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Routes) != 1 || p.Routes[0].Name != "default" || p.Routes[0].Upstream.URL.Path != "/base" {
		t.Fatalf("routes %+v", p.Routes)
	}
	if p.Settings.MaxAge != time.Minute || !p.Settings.StripSignature || p.Settings.Listen != DefaultListen {
		t.Fatalf("settings %+v", p.Settings)
	}
	r, err := p.Match("PATCH", "x", "/any/thing")
	if err != nil || r.Name != "default" || r.Public {
		t.Fatalf("match %v %v", r, err)
	}
	if _, err := Parse("", nil, Options{}); err == nil || !strings.Contains(err.Error(), "no upstream") {
		t.Fatalf("no upstream: %v", err)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	file := `
upstream: http://127.0.0.1:1
max_age: 60s
listen: ":9000"
max_body: 2MiB
`
	p, err := Parse("f.yaml", []byte(file), Options{Flags: map[string]string{"max-age": "2m0s", "upstream": "http://127.0.0.1:2"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Settings.MaxAge != 2*time.Minute || p.Settings.Listen != ":9000" || p.Settings.MaxBody != 2<<20 {
		t.Fatalf("settings %+v", p.Settings)
	}
	if p.Upstreams["default"].URL.Host != "127.0.0.1:2" {
		t.Fatalf("upstream %v", p.Upstreams["default"].URL)
	}
	if !p.FromFile("listen") || p.FromFile("tag") {
		t.Fatal("FromFile")
	}
	// --upstream replaces the URL of upstreams.default and keeps its pool.
	p, err = Parse("f.yaml", []byte("upstreams: {default: {url: 'http://a:1', max_conns: 5}}\n"), Options{Flags: map[string]string{"upstream": "http://b:2"}})
	if err != nil {
		t.Fatal(err)
	}
	if u := p.Upstreams["default"]; u.URL.Host != "b:2" || u.MaxConns != 5 {
		t.Fatalf("default upstream %+v", u)
	}
	_, err = Parse("f.yaml", []byte(file), Options{Flags: map[string]string{"max-age": "soon"}})
	if err == nil || !strings.Contains(err.Error(), "--max-age: want a duration") {
		t.Fatalf("bad flag: %v", err)
	}
}

// Every problem is reported at its place in the file, all at once.
func TestErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // "line:col: text" each
	}{
		{"unknown key", "upstream: http://a:1\nmax-age: 30s\n", []string{`2:1: unknown key "max-age" in the policy (did you mean "max_age"?)`}},
		{"typo", "upstream: http://a:1\nlistn: x\n", []string{`2:1: unknown key "listn" in the policy (did you mean "listen"?)`}},
		{"bad duration", "upstream: http://a:1\nmax_age: 300\n", []string{`2:10: max_age must be a string`}},
		{"bad duration text", "upstream: http://a:1\nmax_age: 5 minutes\n", []string{`2:10: max_age: want a duration`}},
		{"bad bool", "upstream: http://a:1\nstrip_signature: yes\n", []string{`2:18: strip_signature must be true or false`}},
		{"bad size", "upstream: http://a:1\nmax_body: 10MB\n", []string{`2:11: max_body: want a size`}},
		{"null", "upstream: http://a:1\ntag:\n", []string{`tag has no value`}},
		{"twice", "upstream: http://a:1\ntag: a\ntag: b\n", []string{`3:1:`}},
		{"version", "version: 2\nupstream: http://a:1\n", []string{`1:10: version 2 is not known`}},
		{"yaml syntax", "upstream: [http://a:1\n", []string{`1:`}},
		{"not a mapping", "- a\n- b\n", []string{`1:1: the policy must be a mapping`}},
		{"two documents", "upstream: http://a:1\n---\ntag: x\n", []string{`more than one YAML document`}},
		{"merge key", "upstream: http://a:1\nroutes:\n  - &r {match: /a}\n  - {<<: *r, match: /b}\n", []string{`4:6: merge keys (<<) are not supported`}},
		{"tls half", "upstream: http://a:1\ntls_cert: c.pem\n", []string{`2:1: tls_cert and tls_key go together`}},
		{"scheme", "upstream: http://a:1\nscheme: ftp\n", []string{`2:1: scheme must be http or https`}},
		{"upstream url", "upstreams:\n  api:\n    url: ftp://x\n", []string{`3:10: upstream api: "ftp://x" is not an http:// or https:// URL`}},
		{"upstream creds", "upstreams:\n  api: {url: 'http://u:p@x'}\n", []string{`credentials`}},
		{"upstream no url", "upstreams:\n  api: {max_conns: 3}\n", []string{`2:3: upstream api has no url`}},
		{"upstream unknown key", "upstreams:\n  api: {url: 'http://x', timeout: 3s}\n", []string{`2:26: unknown key "timeout" in upstream api`}},
		{"both defaults", "upstream: http://a:1\nupstreams: {default: {url: 'http://b'}}\n", []string{`1:1: upstream and upstreams.default`}},
		{"cidr", "upstream: http://a:1\ntrusted_proxies:\n  cidrs: [10.0.0.0/8, 10.0.0.300/32]\n", []string{`3:23: cidrs: "10.0.0.300/32" is not an IP network`}},
		{"no cidrs", "upstream: http://a:1\ntrusted_proxies: {prefix: /api}\n", []string{`needs cidrs`}},
		{"prefix", "upstream: http://a:1\ntrusted_proxies: {cidrs: 10.0.0.1, prefix: /a/../b}\n", []string{`prefix must be a path`}},
		{"header", "upstream: http://a:1\ntrusted_proxies: {cidrs: 10.0.0.1, header: x-real-ip}\n", []string{`header must be`}},
		{"route no match", "upstream: http://a:1\nroutes:\n  - {upstream: x}\n", []string{`3:5: a route needs match`}},
		{"route bad pattern", "upstream: http://a:1\nroutes:\n  - match: GET v1\n", []string{`3:12: match: `}},
		{"route bad wildcard", "upstream: http://a:1\nroutes:\n  - match: /a/{b\n", []string{`3:12: match: `}},
		{"route host port", "upstream: http://a:1\nroutes:\n  - match: a.test:8080/\n", []string{`has a port`}},
		{"route host case", "upstream: http://a:1\nroutes:\n  - match: A.test/\n", []string{`lower case`}},
		{"route unclean", "upstream: http://a:1\nroutes:\n  - match: /a/../b\n", []string{`no request can match`}},
		{"route upstream", "upstream: http://a:1\nroutes:\n  - {match: /, upstream: api}\n", []string{`3:26: unknown upstream "api" (known: default)`}},
		{"route no upstream", "upstreams: {a: {url: 'http://a'}}\nroutes:\n  - {match: /}\n", []string{`3:5: the route "/" names no upstream`}},
		{"route unknown key", "upstream: http://a:1\nroutes:\n  - {match: /, scope: admin}\n", []string{`3:16: unknown key "scope" in a route (did you mean "scopes"?)`}},
		{"public scopes", "upstream: http://a:1\nroutes:\n  - {match: /, public: true, scopes: admin, max_age: 1s}\n", []string{`3:30: a public route takes no signature, so scopes`, `3:45: a public route takes no signature, so max_age`}},
		{"scope commas", "upstream: http://a:1\nroutes:\n  - {match: /, scopes: 'a,b'}\n", []string{`not a scope`}},
		{"any_of empty", "upstream: http://a:1\nroutes:\n  - {match: /, scopes: {any_of: []}}\n", []string{`any_of is empty`}},
		{"algorithm", "upstream: http://a:1\nroutes:\n  - {match: /, algorithms: [hs256]}\n", []string{`3:29: algorithms: unknown algorithm "hs256"`}},
		{"component", "upstream: http://a:1\nroutes:\n  - {match: /, require: ['@nope']}\n", []string{`3:26: require:`}},
		{"rate", "upstream: http://a:1\nroutes:\n  - {match: /, rate: {limit: 10/week}}\n", []string{`limit: want a rate`}},
		{"rate burst", "upstream: http://a:1\nroutes:\n  - {match: /, rate: {limit: 1/d, burst: 20000}}\n", []string{`lasts longer than a limiter can count`}},
		{"rate by", "upstream: http://a:1\nroutes:\n  - {match: /, rate: {limit: 10/s, by: ip}}\n", []string{`by must be key, owner or route`}},
		{"empty routes", "upstream: http://a:1\nroutes: []\n", []string{`2:1: routes is empty`}},
		{"dup name", "upstream: http://a:1\nroutes:\n  - {name: x, match: /a}\n  - {name: x, match: /b}\n", []string{`4:12: route name "x" is taken by the route at test.yaml:3:5`}},
		{
			"conflict", "upstream: http://a:1\nroutes:\n  - match: GET /v1/orders/\n  - match: /v1/orders/{id}\n",
			[]string{`4:5: route "/v1/orders/{id}" conflicts with route "GET /v1/orders/" (at test.yaml:3:5): /v1/orders/{id} matches more methods than GET /v1/orders/, but has a more specific path pattern`},
		},
		{"same pattern", "upstream: http://a:1\nroutes:\n  - match: GET /a\n  - {name: b, match: GET /a}\n", []string{`4:5: route "b" conflicts with route "GET /a" (at test.yaml:3:5)`}},
		{"many", "upstream: http://a:1\nmax_age: x\nroutes:\n  - {match: /, upstream: nope}\n  - {match: /x, scopes: [' ']}\n", []string{`2:10:`, `4:26:`, `5:26:`}},
		{"flow pair", "upstream: http://a:1\nroutes:\n  - {match: /, scopes: [orders: read]}\n", []string{`3:31: each item of scopes must be a string`}},
		{"anchor alias", "upstream: http://a:1\nroutes:\n  - {match: /, scopes: *nope}\n", []string{`unknown alias`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tt.yaml), Options{})
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("err = %v, want Errors", err)
			}
			if len(es) != len(tt.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(es), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := es[i].Error(); !strings.Contains(got, w) {
					t.Errorf("error %d = %q, want it to contain %q", i, got, w)
				}
				if strings.Contains(w, ":") && w[0] >= '0' && w[0] <= '9' && !strings.HasPrefix(es[i].Error(), "test.yaml:"+strings.SplitN(w, " ", 2)[0]) {
					t.Errorf("error %d = %q, want it at %s", i, es[i].Error(), strings.SplitN(w, " ", 2)[0])
				}
			}
		})
	}
}

func TestAnchors(t *testing.T) {
	p := mustParse(t, `
upstreams:
  api: &api {url: "http://a:1", max_conns: 3}
routes:
  - match: "GET /a"
    upstream: api
    scopes: &rw [orders:read, orders:write]
  - {match: "GET /b", upstream: api, scopes: *rw}
`)
	if got := p.Route("GET /b").Scopes.AllOf; len(got) != 2 || got[1] != "orders:write" {
		t.Fatalf("scopes %v", got)
	}
}

// goccy/go-yaml reads a:b in [...] in {...} as a pair; YAML 1.2, and
// every operator writing scopes, as one scalar.
func TestFlowColon(t *testing.T) {
	p := mustParse(t, "upstream: http://a:1\nroutes:\n  - {match: /, scopes: {any_of: [orders:read, 'orders:write', x:y:z]}}\n")
	if got := p.Routes[0].Scopes.AnyOf; len(got) != 3 || got[0] != "orders:read" || got[1] != "orders:write" {
		t.Fatalf("scopes %q", got)
	}
}

func TestWarnings(t *testing.T) {
	p := mustParse(t, `
upstreams:
  a: {url: "http://a:1"}
  b: {url: "http://b:1"}
routes:
  - {match: /, upstream: a}
`)
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].Error(), `test.yaml:4:3: no route uses the upstream "b"`) {
		t.Fatalf("warnings %v", p.Warnings)
	}
}

func TestSettingKeysAreFlagNames(t *testing.T) {
	for _, k := range SettingKeys() {
		if strings.ContainsAny(k, "- ") || strings.ToLower(k) != k {
			t.Errorf("key %q", k)
		}
		s := lookupSetting(k)
		var zero Settings
		if v := valueOf(&zero, s); v == nil {
			t.Errorf("key %q has no value", k)
		}
	}
}

func TestKeepRestart(t *testing.T) {
	old := mustParse(t, "upstream: http://a:1\nlisten: ':1'\nmax_age: 10s\n")
	p := mustParse(t, "upstream: http://a:1\nlisten: ':2'\nmax_age: 20s\n")
	if changed := p.keepRestart(old); len(changed) != 1 || changed[0] != "listen" {
		t.Fatalf("changed %v", changed)
	}
	if p.Settings.Listen != ":1" || p.Settings.MaxAge != 20*time.Second {
		t.Fatalf("settings %+v", p.Settings)
	}
}
