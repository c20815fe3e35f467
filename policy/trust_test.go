package policy

import (
	"net/http"
	"net/netip"
	"testing"
)

func proxies(header, prefix string, cidrs ...string) *TrustedProxies {
	t := &TrustedProxies{Header: header, Prefix: prefix}
	for _, c := range cidrs {
		p, ok := parseCIDR(c)
		if !ok {
			panic(c)
		}
		t.From = append(t.From, p)
	}
	return t
}

func TestOrigin(t *testing.T) {
	xf := proxies(HeaderXForwarded, "", "10.0.0.0/8", "2001:db8::/32", "::1")
	xfPrefix := proxies(HeaderXForwarded, "/api", "10.0.0.0/8")
	fw := proxies(HeaderForwarded, "/api", "10.0.0.0/8", "2001:db8::/32")
	type want struct {
		scheme, authority, prefix, client string
		forwarded                         bool
	}
	tests := []struct {
		name   string
		t      *TrustedProxies
		peer   string
		tls    bool
		scheme string // the scheme setting
		h      http.Header
		want   want
		bad    bool // a *ForwardedError
	}{
		// Untrusted peers: every forwarding field is ignored.
		{"untrusted peer", xf, "203.0.113.5:4000", false, "", http.Header{"X-Forwarded-Host": {"evil.test"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Prefix": {"/x"}, "X-Forwarded-For": {"10.0.0.1"}},
			want{"http", "api.example.com", "", "203.0.113.5", false}, false},
		{"untrusted peer tls", xf, "203.0.113.5:4000", true, "", http.Header{"X-Forwarded-Proto": {"http"}}, want{"https", "api.example.com", "", "203.0.113.5", false}, false},
		{"untrusted peer, scheme setting", xf, "203.0.113.5:4000", false, "https", nil, want{"https", "api.example.com", "", "203.0.113.5", false}, false},
		{"untrusted forwarded", fw, "203.0.113.5:4000", false, "", http.Header{"Forwarded": {"for=10.0.0.9;host=evil.test;proto=https"}}, want{"http", "api.example.com", "", "203.0.113.5", false}, false},
		{"malformed from untrusted is ignored", xf, "203.0.113.5:1", false, "", http.Header{"X-Forwarded-Host": {"a b"}, "X-Forwarded-Proto": {"gopher"}}, want{"http", "api.example.com", "", "203.0.113.5", false}, false},
		{"nil trusts none", nil, "10.0.0.1:1", false, "", http.Header{"X-Forwarded-Host": {"evil.test"}}, want{"http", "api.example.com", "", "10.0.0.1", false}, false},
		{"peer not an address", xf, "@", false, "", http.Header{"X-Forwarded-Host": {"evil.test"}}, want{"http", "api.example.com", "", "invalid IP", false}, false},
		{"peer in a neighbouring network", xf, "11.0.0.1:80", false, "", http.Header{"X-Forwarded-Host": {"evil.test"}}, want{"http", "api.example.com", "", "11.0.0.1", false}, false},

		// Trusted peers, X-Forwarded-*.
		{"trusted", xf, "10.1.2.3:5555", false, "", http.Header{"X-Forwarded-Host": {"api.example.com"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-For": {"198.51.100.7"}},
			want{"https", "api.example.com", "", "198.51.100.7", true}, false},
		{"trusted, other host", xf, "10.1.2.3:5555", false, "", http.Header{"X-Forwarded-Host": {"Public.Example.COM:8443"}}, want{"http", "Public.Example.COM:8443", "", "10.1.2.3", true}, false},
		{"trusted, no fields", xf, "10.1.2.3:5555", true, "", nil, want{"https", "api.example.com", "", "10.1.2.3", true}, false},
		{"trusted, proto case", xf, "10.1.2.3:5555", false, "", http.Header{"X-Forwarded-Proto": {"HTTPS"}}, want{"https", "api.example.com", "", "10.1.2.3", true}, false},
		{"trusted ipv6 peer", xf, "[2001:db8::7]:443", false, "", http.Header{"X-Forwarded-Host": {"[2001:db8::1]:8443"}}, want{"http", "[2001:db8::1]:8443", "", "2001:db8::7", true}, false},
		{"trusted ipv6 loopback", xf, "[::1]:1", false, "", http.Header{"X-Forwarded-Proto": {"https"}}, want{"https", "api.example.com", "", "::1", true}, false},
		{"ipv4-mapped peer", xf, "[::ffff:10.0.0.1]:1", false, "", http.Header{"X-Forwarded-Proto": {"https"}}, want{"https", "api.example.com", "", "10.0.0.1", true}, false},
		{"ipv6 zone peer", xf, "[2001:db8::1%eth0]:1", false, "", http.Header{"X-Forwarded-Proto": {"https"}}, want{"https", "api.example.com", "", "2001:db8::1%eth0", true}, false},
		// Lists and repeated lines: the last value is the nearest proxy's.
		{"appended host", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {"evil.test, api.example.com"}}, want{"http", "api.example.com", "", "10.1.2.3", true}, false},
		{"repeated host lines", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {"evil.test", "api.example.com"}}, want{"http", "api.example.com", "", "10.1.2.3", true}, false},
		{"appended proto", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Proto": {"http,https"}}, want{"https", "api.example.com", "", "10.1.2.3", true}, false},
		{"repeated proto lines", xf, "10.1.2.3:1", true, "", http.Header{"X-Forwarded-Proto": {"https", "http"}}, want{"http", "api.example.com", "", "10.1.2.3", true}, false},
		// '_' spellings are never read (the gateway strips them).
		{"underscore spellings", xf, "10.1.2.3:1", false, "", http.Header{"X_forwarded_host": {"evil.test"}, "X_Forwarded_Proto": {"https"}, "X_forwarded_prefix": {"/evil"}},
			want{"http", "api.example.com", "", "10.1.2.3", true}, false},
		// Client addresses: the nearest one that is not a proxy.
		{"client through two proxies", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-For": {"192.0.2.1, 198.51.100.7, 10.9.9.9"}}, want{"http", "api.example.com", "", "198.51.100.7", true}, false},
		{"client spoofed on the left", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-For": {"10.0.0.1", "198.51.100.7"}}, want{"http", "api.example.com", "", "198.51.100.7", true}, false},
		{"client unreadable", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-For": {"198.51.100.7, garbage"}}, want{"http", "api.example.com", "", "invalid IP", true}, false},
		{"all proxies", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-For": {"10.0.0.5, 10.0.0.6"}}, want{"http", "api.example.com", "", "10.0.0.5", true}, false},
		// Malformed values from a trusted proxy are refused.
		{"host with path", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {"api.example.com/evil"}}, want{}, true},
		{"host with userinfo", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {"u@api.example.com"}}, want{}, true},
		{"host empty", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {""}}, want{}, true},
		{"host empty last item", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {"api.example.com,"}}, want{}, true},
		{"host bad port", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {"api.example.com:99999"}}, want{}, true},
		{"host empty port", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {"api.example.com:"}}, want{}, true},
		{"host zone", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {"[fe80::1%25eth0]"}}, want{}, true},
		{"host ipv6 unbracketed", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Host": {"2001:db8::1"}}, want{}, true},
		{"proto other", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Proto": {"wss"}}, want{}, true},
		{"prefix undeclared", xf, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Prefix": {"/api"}}, want{}, true},

		// A declared prefix.
		{"prefix declared, absent header", xfPrefix, "10.1.2.3:1", false, "", nil, want{"http", "api.example.com", "/api", "10.1.2.3", true}, false},
		{"prefix declared, agreeing header", xfPrefix, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Prefix": {"/api/"}}, want{"http", "api.example.com", "/api", "10.1.2.3", true}, false},
		{"prefix other", xfPrefix, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Prefix": {"/admin"}}, want{}, true},
		{"prefix case", xfPrefix, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Prefix": {"/API"}}, want{}, true},
		{"prefix list", xfPrefix, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Prefix": {"/evil, /api"}}, want{}, true},
		{"prefix lines", xfPrefix, "10.1.2.3:1", false, "", http.Header{"X-Forwarded-Prefix": {"/evil", "/api"}}, want{}, true},
		{"prefix from an untrusted peer", xfPrefix, "192.0.2.1:1", false, "", http.Header{"X-Forwarded-Prefix": {"/api"}}, want{"http", "api.example.com", "", "192.0.2.1", false}, false},

		// RFC 7239 Forwarded.
		{"forwarded", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`for=198.51.100.7;host=api.example.com;proto=https`}}, want{"https", "api.example.com", "/api", "198.51.100.7", true}, false},
		{"forwarded case and space", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`For=198.51.100.7 ;HOST="API.example.com:8443"; Proto=HTTPS`}}, want{"https", "API.example.com:8443", "/api", "198.51.100.7", true}, false},
		{"forwarded ipv6 for", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`for="[2001:db8:cafe::17]:4711";proto=https`}}, want{"https", "api.example.com", "/api", "2001:db8:cafe::17", true}, false},
		{"forwarded hops walked", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`for=198.51.100.7;host=api.example.com;proto=https, for=10.0.0.3;host=internal.lb;proto=http`}}, want{"https", "api.example.com", "/api", "198.51.100.7", true}, false},
		{"forwarded hops in lines", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`for=198.51.100.7;host=api.example.com;proto=https`, `for=10.0.0.3;host=internal.lb;proto=http`}}, want{"https", "api.example.com", "/api", "198.51.100.7", true}, false},
		{"forwarded spoofed on the left", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`for=10.0.0.66;host=evil.test;proto=http, for=198.51.100.7;host=api.example.com;proto=https`}}, want{"https", "api.example.com", "/api", "198.51.100.7", true}, false},
		{"forwarded unknown for", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`for=10.0.0.9;host=evil.test, for=unknown;host=api.example.com;proto=https`}}, want{"https", "api.example.com", "/api", "invalid IP", true}, false},
		{"forwarded obfuscated for", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`for=_hidden;host=api.example.com`}}, want{"http", "api.example.com", "/api", "invalid IP", true}, false},
		{"forwarded no host", fw, "10.0.0.2:1", true, "", http.Header{"Forwarded": {`for=198.51.100.7`}}, want{"https", "api.example.com", "/api", "198.51.100.7", true}, false},
		{"forwarded no for", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`proto=https`}}, want{"https", "api.example.com", "/api", "invalid IP", true}, false},
		{"forwarded ignores x-forwarded", fw, "10.0.0.2:1", false, "", http.Header{"X-Forwarded-Host": {"evil.test"}, "X-Forwarded-Proto": {"https"}}, want{"http", "api.example.com", "/api", "10.0.0.2", true}, false},
		{"x-forwarded ignores forwarded", xf, "10.0.0.2:1", false, "", http.Header{"Forwarded": {"host=evil.test;proto=https"}}, want{"http", "api.example.com", "", "10.0.0.2", true}, false},
		{"forwarded duplicate param", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`host=a.test;host=evil.test`}}, want{}, true},
		{"forwarded unterminated quote", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`host="a.test`}}, want{}, true},
		{"forwarded empty element", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`host=a.test,,for=1.2.3.4`}}, want{}, true},
		{"forwarded no value", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`host=`}}, want{}, true},
		{"forwarded garbage", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`evil.test`}}, want{}, true},
		{"forwarded bad host", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`host="a.test/x"`}}, want{}, true},
		{"forwarded bad proto", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`proto=ftp`}}, want{}, true},
		{"forwarded escaped quote", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {`host="a\".test"`}}, want{}, true},
		{"forwarded control char", fw, "10.0.0.2:1", false, "", http.Header{"Forwarded": {"host=\"a\x01\""}}, want{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.t.Origin(tt.peer, tt.tls, "api.example.com", tt.h, tt.scheme)
			if tt.bad {
				if _, ok := err.(*ForwardedError); !ok {
					t.Fatalf("got %+v, %v; want a ForwardedError", o, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{o.Scheme, o.Authority, o.Prefix, o.Client.String(), o.Forwarded}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseCIDR(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":          "10.0.0.0/8",
		"10.1.2.3/8":          "10.0.0.0/8",
		"10.1.2.3":            "10.1.2.3/32",
		"::1":                 "::1/128",
		"2001:db8::/32":       "2001:db8::/32",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"::ffff:10.1.2.3":     "10.1.2.3/32",
		"fe80::1%eth0":        "",
		"10.0.0.0/33":         "",
		"example.com":         "",
		"::ffff:10.0.0.0/90":  "",
		"10.0.0.0/8 ":         "",
		"0.0.0.0/0":           "0.0.0.0/0",
	} {
		p, ok := parseCIDR(in)
		if (want == "") == ok || (ok && p.String() != want) {
			t.Errorf("parseCIDR(%q) = %v %v, want %q", in, p, ok, want)
		}
	}
	tp := proxies(HeaderXForwarded, "", "::ffff:10.0.0.0/104")
	if !tp.Trusts(netip.MustParseAddr("10.2.3.4")) || !tp.Trusts(netip.MustParseAddr("::ffff:10.2.3.4")) || tp.Trusts(netip.MustParseAddr("11.0.0.1")) {
		t.Error("a mapped network")
	}
}

func FuzzForwarded(f *testing.F) {
	for _, s := range []string{`for=1.2.3.4;host=a.test;proto=https`, `for="[::1]:80", for=unknown`, `host="a\"b"`, `a=b;c=d,e=f`} {
		f.Add(s)
	}
	tp := proxies(HeaderForwarded, "", "10.0.0.0/8", "1.2.3.4")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := tp.Origin("10.0.0.1:1", false, "h.test", http.Header{"Forwarded": {s}}, "")
		if err != nil {
			return
		}
		if !validAuthority(o.Authority) && o.Authority != "h.test" {
			t.Fatalf("authority %q from %q", o.Authority, s)
		}
		if o.Scheme != "http" && o.Scheme != "https" {
			t.Fatalf("scheme %q", o.Scheme)
		}
	})
}
