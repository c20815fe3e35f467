package httpsig

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

var presignNow = time.Unix(1700000000, 0)

func presignKeys(t testing.TB) (SigningKey, VerifyingKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	s, err := NewSigningKey(AlgEd25519, priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifyingKey(AlgEd25519, priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// serverRequest is what a Go server reads when a client sends rawURL:
// an origin-form request line with the target as written.
func serverRequest(t testing.TB, method, rawURL string) *http.Request {
	t.Helper()
	u, err := splitURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.path
	if target == "" {
		target = "/"
	}
	if u.hasQuery {
		target += "?" + u.query
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: " + u.authority + "\r\n\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func presignPair(t testing.TB) (*Signer, *Verifier) {
	sk, vk := presignKeys(t)
	s := &Signer{Key: sk, KeyID: "pk_presign", Now: func() time.Time { return presignNow }}
	v := &Verifier{Keys: KeyMap{"pk_presign": vk}, Nonces: &memNonces{seen: map[string]time.Time{}}, Scheme: "https", Now: func() time.Time { return presignNow.Add(30 * time.Second) }}
	return s, v
}

// TestPresignRoundTrip presigns URLs with all kinds of queries and checks
// that the verifier accepts them and hands back the target as it was
// before presigning, byte for byte.
func TestPresignRoundTrip(t *testing.T) {
	s, v := presignPair(t)
	for _, tt := range []struct {
		url, target string
	}{
		{"https://api.example.com/v1/files/report.pdf", "/v1/files/report.pdf"},
		{"https://api.example.com", "/"},
		{"https://api.example.com/x?", "/x"},
		{"https://api.example.com/x?a=1&b=2", "/x?a=1&b=2"},
		{"https://api.example.com/x?a=1&b=2&", "/x?a=1&b=2&"},
		{"https://api.example.com/x?&", "/x?&"},
		{"https://api.example.com/x?a=1&a=2&a", "/x?a=1&a=2&a"},
		{"https://api.example.com/x?q=%E2%9C%93&s=a+b&t=%2B%26", "/x?q=%E2%9C%93&s=a+b&t=%2B%26"},
		{"https://api.example.com/x?sig=azure&signet=1&signet-sig2=x", "/x?sig=azure&signet=1&signet-sig2=x"},
		{"https://API.Example.com:443/a%2Fb/c;p=1/@me?x=y/z?w", "/a%2Fb/c;p=1/@me?x=y/z?w"},
		{"http://127.0.0.1:8080/ws?room=7#frag", "/ws?room=7"},
	} {
		t.Run(tt.url, func(t *testing.T) {
			signed, err := s.Presign(tt.url, PresignOptions{Expires: 15 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			before, _, _ := strings.Cut(tt.url, "#")
			if !strings.HasPrefix(signed, before) {
				t.Errorf("the URL %q does not start with the original %q", signed, before)
			}
			r := serverRequest(t, http.MethodGet, signed)
			if !IsPresigned(r) {
				t.Error("IsPresigned is false")
			}
			vv := *v
			if strings.HasPrefix(tt.url, "http:") {
				vv.Scheme = "http"
			}
			clean, res, err := vv.VerifyPresigned(r, nil)
			if err != nil {
				t.Fatalf("%s: %v", signed, err)
			}
			if clean.RequestURI != tt.target {
				t.Errorf("clean target %q, want %q", clean.RequestURI, tt.target)
			}
			if _, q, _ := strings.Cut(tt.target, "?"); clean.URL.RawQuery != q || clean.URL.ForceQuery {
				t.Errorf("clean URL query %q (force %v), want %q", clean.URL.RawQuery, clean.URL.ForceQuery, q)
			}
			if IsPresigned(clean) {
				t.Error("the clean request still looks presigned")
			}
			if res.KeyID != "pk_presign" || res.Tag != PresignTag || !res.Expires.Equal(presignNow.Add(15*time.Minute)) || res.Nonce != "" {
				t.Errorf("result %+v", res)
			}
			// The signature base of the clean request is what the signer signed.
			sigs, _ := ParseSignatures(http.Header{"Signature-Input": {mustQueryParam(t, signed, PresignInputParam)}, "Signature": {mustQueryParam(t, signed, PresignSignatureParam)}})
			base, err := SignatureBase(&Message{Request: clean, Scheme: vv.Scheme}, &sigs[0].Params)
			if err != nil {
				t.Fatal(err)
			}
			wantQuery := "?"
			if _, q, _ := strings.Cut(tt.target, "?"); q != "" {
				wantQuery += q
			}
			if !strings.Contains(string(base), "\"@query\": "+wantQuery+"\n") {
				t.Errorf("base:\n%s\nwant @query %s", base, wantQuery)
			}
		})
	}
}

func mustQueryParam(t testing.TB, rawURL, name string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get(name)
}

// TestPresignFormat pins the profile: an HMAC signature is deterministic,
// so the whole URL is.
func TestPresignFormat(t *testing.T) {
	key, err := NewHMACKey([]byte("a 256-bit secret, shared with the server"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Signer{Key: key, KeyID: "sk_test_1", Now: func() time.Time { return presignNow }}
	got, err := s.Presign("https://api.example.com/v1/files/7?download=1", PresignOptions{Expires: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const input = `sig1=("@method" "@authority" "@path" "@query");created=1700000000;keyid="sk_test_1";alg="hmac-sha256";expires=1700000900;tag="signet-presign"`
	want := "https://api.example.com/v1/files/7?download=1&signet-input=" + presignEscape(input) + "&signet-sig="
	if !strings.HasPrefix(got, want) {
		t.Fatalf("got  %s\nwant %s…", got, want)
	}
	if strings.ContainsAny(got[len(want):], "+/=:") {
		t.Errorf("the signature value %q is not fully escaped", got[len(want):])
	}
	// The signature is over this base.
	base := "\"@method\": GET\n\"@authority\": api.example.com\n\"@path\": /v1/files/7\n\"@query\": ?download=1\n\"@signature-params\": " + strings.TrimPrefix(input, "sig1=")
	sig, _ := key.Sign([]byte(base))
	want += presignEscape("sig1=:" + base64.StdEncoding.EncodeToString(sig) + ":")
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestPresignRefusals tampers with presigned URLs and checks each is
// refused for the right reason.
func TestPresignRefusals(t *testing.T) {
	s, v := presignPair(t)
	good, err := s.Presign("https://api.example.com/v1/files/7?download=1&v=2", PresignOptions{Expires: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	input := mustQueryParam(t, good, PresignInputParam)
	sigParam := "signet-sig=" + presignEscape(mustQueryParam(t, good, PresignSignatureParam))
	inputParam := "signet-input=" + presignEscape(input)
	base := "https://api.example.com/v1/files/7?"
	twoSigs, err := s.Presign("https://api.example.com/v1/files/7?download=1&v=2", PresignOptions{Expires: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	secondInput := strings.Replace(mustQueryParam(t, twoSigs, PresignInputParam), "sig1=", "sig2=", 1)
	secondSig := strings.Replace(mustQueryParam(t, twoSigs, PresignSignatureParam), "sig1=", "sig2=", 1)

	// A request signed for its header fields, moved into the query.
	headerSigned := serverRequest(t, http.MethodGet, base+"download=1&v=2")
	hs := &Signer{Key: s.Key, KeyID: "pk_presign", Now: s.Now, ExpiresAfter: time.Minute}
	if err := hs.SignRequest(headerSigned, nil); err != nil {
		t.Fatal(err)
	}
	moved := base + "download=1&v=2&signet-input=" + presignEscape(headerSigned.Header.Get("Signature-Input")) + "&signet-sig=" + presignEscape(headerSigned.Header.Get("Signature"))

	for _, tt := range []struct {
		name, method, url string
		header            http.Header
		body              []byte
		at                time.Duration // after created
		reason            Reason
	}{
		{name: "good", url: good},
		{name: "a parameter changed", url: strings.Replace(good, "v=2", "v=3", 1), reason: ReasonBadSignature},
		{name: "a parameter added", url: strings.Replace(good, "v=2", "v=2&admin=1", 1), reason: ReasonBadSignature},
		{name: "a parameter added after", url: good + "&admin=1", reason: ReasonBadSignature},
		{name: "a parameter removed", url: strings.Replace(good, "download=1&", "", 1), reason: ReasonBadSignature},
		{name: "parameters reordered", url: base + "v=2&download=1&" + inputParam + "&" + sigParam, reason: ReasonBadSignature},
		{name: "parameter re-encoded", url: strings.Replace(good, "download=1", "download=%31", 1), reason: ReasonBadSignature},
		{name: "path changed", url: strings.Replace(good, "/files/7", "/files/8", 1), reason: ReasonBadSignature},
		{name: "host changed", url: strings.Replace(good, "api.example.com", "evil.example.com", 1), reason: ReasonBadSignature},
		{name: "method changed", method: http.MethodHead, url: good, reason: ReasonBadSignature},
		{name: "expires changed", url: base + "download=1&v=2&signet-input=" + presignEscape(strings.Replace(input, "expires=1700000900", "expires=1700009000", 1)) + "&" + sigParam, reason: ReasonBadSignature},
		{name: "signature parameters swapped", url: base + "download=1&v=2&" + sigParam + "&" + inputParam},
		{name: "form-encoded values", url: base + "download=1&v=2&signet-input=" + url.QueryEscape(input) + "&signet-sig=" + url.QueryEscape(mustQueryParam(t, good, PresignSignatureParam))},
		{name: "expired", url: good, at: 15 * time.Minute, reason: ReasonExpired},
		{name: "last second", url: good, at: 15*time.Minute - time.Nanosecond},
		{name: "not yet valid", url: good, at: -31 * time.Second, reason: ReasonNotYetValid},
		{name: "repeated signet-sig", url: good + "&" + sigParam, reason: ReasonMalformedSignature},
		{name: "repeated signet-input", url: base + inputParam + "&download=1&v=2&" + inputParam + "&" + sigParam, reason: ReasonMalformedSignature},
		{name: "escaped name", url: strings.Replace(good, "signet-sig=", "signet%2Dsig=", 1), reason: ReasonMalformedSignature},
		{name: "escaped name beside the real one", url: good + "&signet%2dsig=x", reason: ReasonMalformedSignature},
		{name: "other case", url: good + "&Signet-Sig=x", reason: ReasonMalformedSignature},
		{name: "plus in the name", url: good + "&signet-sig+=x", reason: ReasonBadSignature},
		{name: "only signet-sig", url: base + "download=1&v=2&" + sigParam, reason: ReasonMalformedSignature},
		{name: "only signet-input", url: base + "download=1&v=2&" + inputParam, reason: ReasonMalformedSignature},
		{name: "neither", url: base + "download=1&v=2", reason: ReasonMissingSignature},
		{name: "no query", url: "https://api.example.com/v1/files/7", reason: ReasonMissingSignature},
		{name: "bad escape", url: good + "%G1", reason: ReasonMalformedSignature},
		{name: "truncated escape", url: good[:len(good)-2], reason: ReasonMalformedSignature},
		{name: "raw plus in the signature", url: base + "download=1&v=2&" + inputParam + "&signet-sig=" + strings.ReplaceAll(presignEscape(mustQueryParam(t, good, PresignSignatureParam)), "%2B", "+"), reason: ReasonMalformedSignature},
		{name: "header signature too", url: good, header: http.Header{"Signature-Input": {"sig1=()"}, "Signature": {"sig1=:AA==:"}}, reason: ReasonMalformedSignature},
		{name: "two signatures", url: base + "download=1&v=2&signet-input=" + presignEscape(input+", "+secondInput) + "&signet-sig=" + presignEscape(mustQueryParam(t, good, PresignSignatureParam)+", "+secondSig), reason: ReasonMalformedSignature},
		{name: "a header signature moved into the query", url: moved, reason: ReasonMissingSignature},
		{name: "POST", method: http.MethodPost, url: good, reason: ReasonInsufficientScope},
		{name: "a body", url: good, body: []byte("x"), reason: ReasonMissingComponent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vv := *v
			vv.Nonces = &memNonces{seen: map[string]time.Time{}}
			vv.Now = func() time.Time { return presignNow.Add(tt.at) }
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := serverRequest(t, method, tt.url)
			for k, vs := range tt.header {
				r.Header[k] = vs
			}
			if tt.body != nil {
				r.ContentLength = int64(len(tt.body))
			}
			_, _, err := vv.VerifyPresigned(r, tt.body)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("%s: %v", tt.url, err)
				}
				return
			}
			if got, _ := ReasonOf(err); got != tt.reason {
				t.Fatalf("%s:\nerror %v, want reason %s", tt.url, err, tt.reason)
			}
		})
	}
}

// TestPresignFragment refuses a target with a fragment, which a server
// must never forward.
func TestPresignFragment(t *testing.T) {
	s, v := presignPair(t)
	good, _ := s.Presign("https://api.example.com/x?a=1", PresignOptions{Expires: time.Minute})
	r := serverRequest(t, http.MethodGet, good)
	r.RequestURI += "#&admin=1"
	if _, _, err := v.VerifyPresigned(r, nil); err == nil {
		t.Fatal("a target with a fragment verified")
	}
}

// TestPresignSingleUse accepts a single-use URL once, and a reusable one
// as often as it is used.
func TestPresignSingleUse(t *testing.T) {
	s, v := presignPair(t)
	for _, tt := range []struct {
		singleUse bool
		second    Reason
	}{{false, ""}, {true, ReasonReplayed}} {
		signed, err := s.Presign("https://api.example.com/img/7.png", PresignOptions{Expires: time.Hour, SingleUse: tt.singleUse})
		if err != nil {
			t.Fatal(err)
		}
		if _, res, err := v.VerifyPresigned(serverRequest(t, http.MethodGet, signed), nil); err != nil {
			t.Fatal(err)
		} else if (res.Nonce != "") != tt.singleUse {
			t.Errorf("single use %v, nonce %q", tt.singleUse, res.Nonce)
		}
		_, _, err = v.VerifyPresigned(serverRequest(t, http.MethodGet, signed), nil)
		if got, _ := ReasonOf(err); got != tt.second || (tt.second == "" && err != nil) {
			t.Errorf("single use %v: second use: %v, want reason %q", tt.singleUse, err, tt.second)
		}
	}
}

// TestPresignPolicy checks the verifier's settings for presigned URLs.
func TestPresignPolicy(t *testing.T) {
	s, v := presignPair(t)
	day, _ := s.Presign("https://api.example.com/x", PresignOptions{Expires: 24*time.Hour + time.Second})
	reusable, _ := s.Presign("https://api.example.com/x", PresignOptions{Expires: time.Minute})
	post, _ := s.Presign("https://api.example.com/upload", PresignOptions{Method: http.MethodPut, Expires: time.Minute})
	for _, tt := range []struct {
		name   string
		policy PresignPolicy
		method string
		url    string
		reason Reason
	}{
		{name: "lifetime over the default", url: day, reason: ReasonMalformedSignature},
		{name: "lifetime under a longer maximum", policy: PresignPolicy{MaxLifetime: 48 * time.Hour}, url: day},
		{name: "lifetime over a shorter maximum", policy: PresignPolicy{MaxLifetime: 30 * time.Second}, url: reusable, reason: ReasonMalformedSignature},
		{name: "nonce required", policy: PresignPolicy{RequireNonce: true}, url: reusable, reason: ReasonMalformedSignature},
		{name: "PUT not allowed", method: http.MethodPut, url: post, reason: ReasonInsufficientScope},
		{name: "PUT allowed", policy: PresignPolicy{Methods: []string{http.MethodPut}}, method: http.MethodPut, url: post},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vv := *v
			vv.Presign = tt.policy
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			_, _, err := vv.VerifyPresigned(serverRequest(t, method, tt.url), nil)
			if got, _ := ReasonOf(err); got != tt.reason || (tt.reason == "" && err != nil) {
				t.Errorf("error %v, want reason %q", err, tt.reason)
			}
		})
	}
	vv := *v
	vv.Nonces = nil
	vv.Presign.RequireNonce = true
	if _, _, err := vv.VerifyPresigned(serverRequest(t, http.MethodGet, reusable), nil); err == nil {
		t.Error("RequireNonce without a nonce store verified")
	} else if _, ok := ReasonOf(err); ok {
		t.Errorf("RequireNonce without a nonce store is a refusal (%v), not a failure", err)
	}
}

// TestPresignSignerRefuses lists the URLs that cannot be presigned, since
// some client would send them otherwise than written.
func TestPresignSignerRefuses(t *testing.T) {
	s, _ := presignPair(t)
	for _, u := range []string{
		"/relative",
		"ftp://example.com/x",
		"https://user:pw@example.com/x",
		"https:///x",
		"https://example.com/a/../b",
		"https://a%2Eexample.com/x",
		"https://[fe80::1%25eth0]/x",
		"https://example.com/a/./b",
		"https://example.com/a/%2e%2E/b",
		"https://example.com/a/%2E",
		"https://example.com/a b",
		"https://example.com/a\"b",
		"https://example.com/a{b}",
		"https://example.com/é",
		"https://example.com/x?q=it's",
		"https://example.com/x?q=a b",
		"https://example.com/x?q=<b>",
		"https://example.com/x?q=%zz",
		"https://example.com/x?signet-sig=1",
		"https://example.com/x?a=1&SIGNET-INPUT=1",
		"https://example.com/x?signet%2dinput=1",
	} {
		if got, err := s.Presign(u, PresignOptions{Expires: time.Minute}); err == nil {
			t.Errorf("Presign(%q) = %q, want an error", u, got)
		}
	}
	for _, o := range []PresignOptions{{}, {Expires: -time.Second}, {Method: "GE T", Expires: time.Minute}} {
		if _, err := s.Presign("https://example.com/x", o); err == nil {
			t.Errorf("Presign with %+v: no error", o)
		}
	}
	// Expires is rounded up to whole seconds.
	_, v := presignPair(t)
	signed, err := s.Presign("https://example.com/x", PresignOptions{Expires: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	vv := *v
	vv.Scheme = "https"
	vv.Now = func() time.Time { return presignNow }
	_, res, err := vv.VerifyPresigned(serverRequest(t, http.MethodGet, signed), nil)
	if err != nil || !res.Expires.Equal(presignNow.Add(2*time.Second)) {
		t.Errorf("expires %v, %v; want created + 2 s", res.Expires, err)
	}
}

// FuzzPresign presigns URLs with arbitrary paths and queries: whatever
// Presign accepts must verify, and the verifier must hand back the target
// as it was; whatever a server reads, the verifier must not panic, and a
// target it accepts must be free of the parameters.
func FuzzPresign(f *testing.F) {
	for _, seed := range []string{"a=1&b=2", "", "&", "a=1&&b", "signet-sig=1", "signet%2Dsig=1", "x=%E2%9C%93+y", "q=?/", "SIGNET-input"} {
		f.Add("/v1/x", seed)
	}
	s, v := presignPair(f)
	f.Fuzz(func(t *testing.T, path, query string) {
		rawURL := "https://api.example.com" + path + "?" + query
		signed, err := s.Presign(rawURL, PresignOptions{Expires: time.Minute})
		if err != nil {
			// Still, whatever a server reads must be handled.
			r, rerr := http.ReadRequest(bufio.NewReader(strings.NewReader("GET /x?" + query + " HTTP/1.1\r\nHost: a\r\n\r\n")))
			if rerr == nil {
				if clean, _, err := v.VerifyPresigned(r, nil); err == nil && IsPresigned(clean) {
					t.Fatalf("verified and still presigned: %q", query)
				}
			}
			return
		}
		if !strings.HasPrefix(path, "/") && path != "" {
			return
		}
		r := serverRequest(t, http.MethodGet, signed)
		clean, _, err := v.VerifyPresigned(r, nil)
		if err != nil {
			t.Fatalf("%s: %v", signed, err)
		}
		parts, _ := splitURL(rawURL)
		want := parts.path
		if want == "" {
			want = "/"
		}
		if parts.query != "" {
			want += "?" + parts.query
		}
		if clean.RequestURI != want {
			t.Fatalf("clean target %q, want %q", clean.RequestURI, want)
		}
	})
}

// TestPresignedSignatureInHeader refuses a presigned signature moved into
// the header fields, where the shorter lifetime of request signatures
// would not bound it.
func TestPresignedSignatureInHeader(t *testing.T) {
	s, v := presignPair(t)
	signed, err := s.Presign("https://api.example.com/x?a=1", PresignOptions{Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := serverRequest(t, http.MethodGet, "https://api.example.com/x?a=1")
	r.Header.Set("Signature-Input", mustQueryParam(t, signed, PresignInputParam))
	r.Header.Set("Signature", mustQueryParam(t, signed, PresignSignatureParam))
	vv := *v
	vv.Policy = Policy{RequiredParams: []string{"created", "keyid"}, MaxAge: -1}
	_, err = vv.VerifyRequest(r, nil)
	if reason, _ := ReasonOf(err); reason != ReasonMalformedSignature {
		t.Fatalf("%v, want malformed-signature", err)
	}
}
