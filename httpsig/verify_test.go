package httpsig

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/reqfixture"
)

var testNow = time.Unix(1700000000, 0)

func fixedNow() time.Time { return testNow }

type testKey struct {
	alg    Algorithm
	signer SigningKey
	verify VerifyingKey
}

func testKeys(t testing.TB) []testKey {
	t.Helper()
	hk, err := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys := []testKey{{AlgHMACSHA256, hk, hk}}
	for _, k := range []struct {
		alg  Algorithm
		priv any
	}{{AlgEd25519, edPriv}, {AlgECDSAP256SHA256, p256}, {AlgECDSAP384SHA384, p384}, {AlgRSAPSSSHA512, rsaKey}, {AlgRSAV1_5SHA256, rsaKey}} {
		s, err := NewSigningKey(k.alg, k.priv)
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewVerifyingKey(k.alg, k.priv.(crypto.Signer).Public())
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, testKey{k.alg, s, v})
	}
	return keys
}

// signedRequest returns the reference request signed by s, as a server
// receives it, and its body.
func signedRequest(t testing.TB, s *Signer) (*http.Request, []byte) {
	t.Helper()
	body := []byte(`{"item":"book","qty":2}`)
	r := httptest.NewRequest(http.MethodPost, reqfixture.URL, bytes.NewReader(body))
	r.RequestURI = r.URL.RequestURI()
	r.Header.Set("Content-Type", "application/json")
	if err := s.SignRequest(r, body); err != nil {
		t.Fatal(err)
	}
	return r, body
}

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, k := range testKeys(t) {
		t.Run(string(k.alg), func(t *testing.T) {
			s := &Signer{Key: k.signer, KeyID: "key-1", Now: fixedNow}
			r, body := signedRequest(t, s)
			in := r.Header.Get("Signature-Input")
			want := `sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");created=1700000000;keyid="key-1";alg="` + string(k.alg) + `";nonce="`
			if !strings.HasPrefix(in, want) {
				t.Fatalf("Signature-Input = %s\nwant prefix  %s", in, want)
			}
			v := &Verifier{Keys: KeyMap{"key-1": k.verify}, Now: fixedNow}
			res, err := v.VerifyRequest(r, body)
			if err != nil {
				t.Fatal(err)
			}
			if res.KeyID != "key-1" || res.Label != "sig1" || res.Signatures != 1 || res.Nonce == "" || !res.Created.Equal(testNow) {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

// TestTamper changes one covered part of a signed request at a time.
func TestTamper(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	s := &Signer{Key: hk, KeyID: "key-1", Now: fixedNow}
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow}
	tests := []struct {
		name   string
		change func(r *http.Request, body *[]byte)
		want   Reason
	}{
		{"method", func(r *http.Request, _ *[]byte) { r.Method = http.MethodPut }, ReasonBadSignature},
		{"method case", func(r *http.Request, _ *[]byte) { r.Method = "post" }, ReasonBadSignature},
		{"authority", func(r *http.Request, _ *[]byte) { r.Host = "evil.example.com" }, ReasonBadSignature},
		{"authority port", func(r *http.Request, _ *[]byte) { r.Host = "api.example.com:8443" }, ReasonBadSignature},
		{"path", func(r *http.Request, _ *[]byte) { r.RequestURI = "/v1/refunds?customer=42&expand=items" }, ReasonBadSignature},
		{"path encoding", func(r *http.Request, _ *[]byte) { r.RequestURI = "/v1/%6Frders?customer=42&expand=items" }, ReasonBadSignature},
		{"query", func(r *http.Request, _ *[]byte) { r.RequestURI = "/v1/orders?customer=43&expand=items" }, ReasonBadSignature},
		{"query dropped", func(r *http.Request, _ *[]byte) { r.RequestURI = "/v1/orders" }, ReasonBadSignature},
		{"content-type", func(r *http.Request, _ *[]byte) { r.Header.Set("Content-Type", "text/plain") }, ReasonBadSignature},
		{"content-type removed", func(r *http.Request, _ *[]byte) { r.Header.Del("Content-Type") }, ReasonMissingComponent},
		{"content-digest", func(r *http.Request, _ *[]byte) {
			r.Header.Set("Content-Digest", "sha-256=:"+sha256b64([]byte("other"))+":")
		}, ReasonBadSignature},
		{"body", func(_ *http.Request, b *[]byte) { *b = []byte(`{"item":"book","qty":9}`) }, ReasonDigestMismatch},
		{"body removed", func(_ *http.Request, b *[]byte) { *b = nil }, ReasonDigestMismatch},
		{"signature bit", func(r *http.Request, _ *[]byte) {
			sig := r.Header.Get("Signature")
			i := strings.Index(sig, ":") + 1
			c := byte('A')
			if sig[i] == 'A' {
				c = 'B'
			}
			r.Header.Set("Signature", sig[:i]+string(c)+sig[i+1:])
		}, ReasonBadSignature},
		{"created", func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), "created=1700000000", "created=1700000001", 1))
		}, ReasonBadSignature},
		{"component dropped", func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), ` "content-type"`, "", 1))
		}, ReasonMissingComponent},
		{"nonce dropped", func(r *http.Request, _ *[]byte) {
			in := r.Header.Get("Signature-Input")
			i := strings.Index(in, ";nonce=")
			r.Header.Set("Signature-Input", in[:i])
		}, ReasonMalformedSignature},
		{"alg changed", func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `alg="hmac-sha256"`, `alg="ed25519"`, 1))
		}, ReasonAlgorithmMismatch},
		{"keyid changed", func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `keyid="key-1"`, `keyid="key-2"`, 1))
		}, ReasonUnknownKey},
		{"signature removed", func(r *http.Request, _ *[]byte) { r.Header.Del("Signature") }, ReasonMalformedSignature},
		{"both removed", func(r *http.Request, _ *[]byte) {
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
		}, ReasonMissingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, body := signedRequest(t, s)
			if _, err := v.VerifyRequest(r, body); err != nil {
				t.Fatalf("untouched request: %v", err)
			}
			tt.change(r, &body)
			_, err := v.VerifyRequest(r, body)
			if got, ok := ReasonOf(err); !ok || got != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	sign := func(s Signer) (*http.Request, []byte) {
		s.Key, s.KeyID = hk, "key-1"
		if s.Now == nil {
			s.Now = fixedNow
		}
		return signedRequest(t, &s)
	}
	at := func(d time.Duration) func() time.Time { return func() time.Time { return testNow.Add(d) } }
	tests := []struct {
		name   string
		signer Signer
		policy Policy
		now    func() time.Time
		want   Reason // "" means accepted
	}{
		{"fresh", Signer{}, Policy{}, fixedNow, ""},
		{"at max age", Signer{}, Policy{}, at(300 * time.Second), ""},
		{"too old", Signer{}, Policy{}, at(301 * time.Second), ReasonExpired},
		{"custom max age", Signer{}, Policy{MaxAge: time.Minute}, at(61 * time.Second), ReasonExpired},
		{"no max age", Signer{}, Policy{MaxAge: -1}, at(24 * time.Hour), ""},
		{"within skew", Signer{}, Policy{}, at(-30 * time.Second), ""},
		{"future", Signer{}, Policy{}, at(-31 * time.Second), ReasonNotYetValid},
		{"expires passed", Signer{ExpiresAfter: 10 * time.Second}, Policy{}, at(10 * time.Second), ReasonExpired},
		{"expires ahead", Signer{ExpiresAfter: 10 * time.Second}, Policy{}, at(9 * time.Second), ""},
		{"nonce required", Signer{NoNonce: true}, Policy{}, fixedNow, ReasonMalformedSignature},
		{"nonce optional", Signer{NoNonce: true}, Policy{RequiredParams: []string{"created", "keyid"}}, fixedNow, ""},
		{"expires required", Signer{}, Policy{RequiredParams: []string{"expires"}}, fixedNow, ReasonMalformedSignature},
		{"no alg parameter", Signer{NoAlg: true}, Policy{}, fixedNow, ""},
		{"algorithm not accepted", Signer{}, Policy{Algorithms: []Algorithm{AlgEd25519}}, fixedNow, ReasonAlgorithmMismatch},
		{"tag matches", Signer{Tag: "app"}, Policy{Tag: "app"}, fixedNow, ""},
		{"tag differs", Signer{Tag: "other"}, Policy{Tag: "app"}, fixedNow, ReasonMissingSignature},
		{"tag missing", Signer{}, Policy{Tag: "app"}, fixedNow, ReasonMissingSignature},
		{"label present", Signer{Label: "mine"}, Policy{Labels: []string{"mine"}}, fixedNow, ""},
		{"label absent", Signer{}, Policy{Labels: []string{"mine"}}, fixedNow, ReasonMissingSignature},
		{"required component not covered", Signer{Components: []Component{{Name: Method}, {Name: Authority}, {Name: Path}}}, Policy{}, fixedNow, ReasonMissingComponent},
		{"explicit requirement met", Signer{Components: []Component{{Name: Method}, {Name: TargetURI}}}, Policy{Required: []Component{{Name: TargetURI}}, RequiredParams: []string{}}, fixedNow, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, body := sign(tt.signer)
			v := &Verifier{Policy: tt.policy, Keys: KeyMap{"key-1": hk}, Now: tt.now}
			_, err := v.VerifyRequest(r, body)
			got, _ := ReasonOf(err)
			if err != nil && got == "" {
				t.Fatalf("error without reason: %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestUnsignedContent: content added to a request signed without any must
// be refused, since nothing covers it.
func TestUnsignedContent(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	r := httptest.NewRequest(http.MethodPost, reqfixture.URL, nil)
	r.RequestURI = r.URL.RequestURI()
	if err := (&Signer{Key: hk, KeyID: "key-1", Now: fixedNow}).SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow}
	if _, err := v.VerifyRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	_, err := v.VerifyRequest(r, []byte("smuggled"))
	if got, _ := ReasonOf(err); got != ReasonMissingComponent {
		t.Fatalf("got %v, want missing-component", err)
	}
}

func TestKeyResolution(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	r, body := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
	down := errors.New("database is down")
	for _, tt := range []struct {
		err  error
		want Reason
	}{
		{ErrUnknownKey, ReasonUnknownKey},
		{ErrKeyRevoked, ReasonKeyRevoked},
		{ErrKeyExpired, ReasonKeyExpired},
		{down, ""},
	} {
		v := &Verifier{Keys: KeyResolverFunc(func(context.Context, string) (VerifyingKey, error) { return nil, tt.err }), Now: fixedNow}
		_, err := v.VerifyRequest(r, body)
		if got, _ := ReasonOf(err); got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("resolver error %v: got %v, want reason %q", tt.err, err, tt.want)
		}
	}
	// A key bound to another algorithm than the one claimed.
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ek, _ := NewVerifyingKey(AlgEd25519, edPriv.Public())
	v := &Verifier{Keys: KeyMap{"key-1": ek}, Now: fixedNow}
	if _, err := v.VerifyRequest(r, body); !isReason(err, ReasonAlgorithmMismatch) {
		t.Fatalf("got %v, want algorithm-mismatch", err)
	}
}

func isReason(err error, want Reason) bool {
	got, _ := ReasonOf(err)
	return got == want
}

// memNonces is a NonceStore for tests.
type memNonces struct {
	mu   sync.Mutex
	seen map[string]time.Time
	err  error
}

func (m *memNonces) Remember(_ context.Context, keyID, nonce string, _, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	k := keyID + "\x00" + nonce
	if _, ok := m.seen[k]; ok {
		return ErrReplayed
	}
	m.seen[k] = until
	return nil
}

func TestReplay(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	nonces := &memNonces{seen: map[string]time.Time{}}
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Nonces: nonces, Now: fixedNow}
	r, body := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
	if _, err := v.VerifyRequest(r, body); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyRequest(r, body); !isReason(err, ReasonReplayed) {
		t.Fatalf("replay: got %v", err)
	}
	for _, until := range nonces.seen {
		if !until.Equal(testNow.Add(DefaultMaxAge + nonceGrace)) {
			t.Fatalf("nonce kept until %v, want created+max age+grace", until)
		}
	}
	// A bad signature must not spend a nonce.
	r2, body2 := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
	if _, err := v.VerifyRequest(r2, []byte("tampered")); err == nil {
		t.Fatal("tampered body accepted")
	}
	if _, err := v.VerifyRequest(r2, body2); err != nil {
		t.Fatalf("genuine request after a forged one: %v", err)
	}
	// A store that cannot answer fails closed, without a reason code.
	nonces.err = errors.New("redis: connection refused")
	r3, body3 := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
	_, err := v.VerifyRequest(r3, body3)
	if err == nil || !errors.Is(err, nonces.err) {
		t.Fatalf("store down: got %v", err)
	}
	if _, ok := ReasonOf(err); ok {
		t.Fatalf("store down gave a reason code: %v", err)
	}
}

func TestMultipleSignatures(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	other, _ := NewHMACKey(bytes.Repeat([]byte("o"), 32))
	r, body := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
	// A second, bad signature under another label.
	if err := (&Signer{Key: other, KeyID: "key-1", Label: "sig2", Now: fixedNow}).SignRequest(r, body); err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow}
	if _, err := v.VerifyRequest(r, body); !isReason(err, ReasonBadSignature) {
		t.Fatalf("good + bad signature: got %v, want bad-signature", err)
	}
	v.Policy.Labels = []string{"sig1"}
	if _, err := v.VerifyRequest(r, body); err != nil {
		t.Fatalf("selecting the good one: %v", err)
	}
	// The same label twice is refused by the signer.
	if err := (&Signer{Key: hk, KeyID: "key-1", Now: fixedNow}).SignRequest(r, body); err == nil {
		t.Fatal("signing twice under sig1 succeeded")
	}
}

func TestMalformedHeaders(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow}
	good := `sig1=("@method");created=1700000000;keyid="key-1";nonce="n"`
	for _, tt := range []struct{ name, input, sig string }{
		{"not a dictionary", "garbage(", "sig1=:AAAA:"},
		{"label mismatch", good, "sig2=:AAAA:"},
		{"signature not bytes", good, `sig1="AAAA"`},
		{"signature not base64", good, "sig1=:AA*A:"},
		{"input not inner list", `sig1="x"`, "sig1=:AAAA:"},
		{"component not string", `sig1=(method);created=1`, "sig1=:AAAA:"},
		{"unknown derived", `sig1=("@nope");created=1`, "sig1=:AAAA:"},
		{"uppercase field", `sig1=("Content-Type");created=1`, "sig1=:AAAA:"},
		{"signature-params covered", `sig1=("@signature-params");created=1`, "sig1=:AAAA:"},
		{"unknown component param", `sig1=("date";foo);created=1`, "sig1=:AAAA:"},
		{"bs with sf", `sig1=("date";bs;sf);created=1`, "sig1=:AAAA:"},
		{"duplicate component", `sig1=("date" "date");created=1`, "sig1=:AAAA:"},
		{"duplicate component reordered params", `sig1=("x";sf;req "x";req;sf);created=1`, "sig1=:AAAA:"},
		{"created not integer", `sig1=("@method");created="1"`, "sig1=:AAAA:"},
		{"created negative", `sig1=("@method");created=-1`, "sig1=:AAAA:"},
		{"keyid not string", `sig1=("@method");keyid=k`, "sig1=:AAAA:"},
		{"duplicate label", good + ", " + good, "sig1=:AAAA:"},
		{"duplicate param", `sig1=("@method");created=1;created=2`, "sig1=:AAAA:"},
		{"query-param without name", `sig1=("@query-param");created=1`, "sig1=:AAAA:"},
		{"status in request", `sig1=("@method" "@authority" "@path" "@status");created=1700000000;keyid="key-1";nonce="n"`, "sig1=:AAAA:"},
		{"req in request", `sig1=("@method" "@authority" "@path" "@method";req);created=1700000000;keyid="key-1";nonce="n"`, "sig1=:AAAA:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "https://api.example.com/", nil)
			r.Header.Set("Signature-Input", tt.input)
			r.Header.Set("Signature", tt.sig)
			_, err := v.VerifyRequest(r, nil)
			if !isReason(err, ReasonMalformedSignature) {
				t.Fatalf("got %v, want malformed-signature", err)
			}
		})
	}
}

func TestTooManySignatures(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	r := httptest.NewRequest(http.MethodGet, "https://api.example.com/", nil)
	var in, sig []string
	for i := range MaxSignatures + 1 {
		l := "s" + strings.Repeat("x", i)
		in = append(in, l+`=("@method");created=1700000000;keyid="key-1";nonce="n"`)
		sig = append(sig, l+"=:AAAA:")
	}
	r.Header.Set("Signature-Input", strings.Join(in, ", "))
	r.Header.Set("Signature", strings.Join(sig, ", "))
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow}
	if _, err := v.VerifyRequest(r, nil); !isReason(err, ReasonMalformedSignature) {
		t.Fatalf("got %v", err)
	}
}

func TestDebugBase(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	r, body := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow, Debug: true}
	res, err := v.VerifyRequest(r, body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Base, "\"@method\": POST\n\"@authority\": api.example.com\n\"@path\": /v1/orders\n\"@query\": ?customer=42&expand=items\n") {
		t.Fatalf("base %q", res.Base)
	}
	r.Method = http.MethodPut
	_, err = v.VerifyRequest(r, body)
	var ve *VerifyError
	if !errors.As(err, &ve) || !strings.HasPrefix(ve.Base, "\"@method\": PUT\n") {
		t.Fatalf("debug error %#v", err)
	}
	v.Debug = false
	if _, err = v.VerifyRequest(r, body); !errors.As(err, &ve) || ve.Base != "" {
		t.Fatal("base leaked without Debug")
	}
}

func TestQueryParam(t *testing.T) {
	for _, tt := range []struct{ query, name, want string }{
		{"a=1&b=2", "b", `"@query-param";name="b": 2`},
		{"a=1&a=2", "a", "\"@query-param\";name=\"a\": 1\n\"@query-param\";name=\"a\": 2"},
		{"q=a+b%20c", "q", `"@query-param";name="q": a%20b%20c`},
		{"q=%7E%2a", "q", `"@query-param";name="q": %7E*`},
		{"q=%zz", "q", `"@query-param";name="q": %25zz`},
		{"q=%E2%82", "q", `"@query-param";name="q": %EF%BF%BD`},
		{"q=%E2%82A", "q", `"@query-param";name="q": %EF%BF%BDA`},
		{"q=%FF%FE", "q", `"@query-param";name="q": %EF%BF%BD%EF%BF%BD`},
		{"q", "q", `"@query-param";name="q": `},
		{"caf%C3%A9=1", "caf%C3%A9", `"@query-param";name="caf%C3%A9": 1`},
		{"&&q=1&", "q", `"@query-param";name="q": 1`},
	} {
		r := httptest.NewRequest(http.MethodGet, "https://example.com/p?"+tt.query, nil)
		p := Params{Components: []Component{{Name: QueryParam, Param: tt.name}}}
		base, err := SignatureBase(&Message{Request: r}, &p)
		if err != nil {
			t.Errorf("%s: %v", tt.query, err)
			continue
		}
		got, _, _ := strings.Cut(string(base), "\n\"@signature-params\"")
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.query, got, tt.want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "https://example.com/p?a=1", nil)
	p := Params{Components: []Component{{Name: QueryParam, Param: "b"}}}
	if _, err := SignatureBase(&Message{Request: r}, &p); err == nil {
		t.Fatal("absent query parameter gave a base")
	}
}

func TestAuthority(t *testing.T) {
	for _, tt := range []struct{ url, host, scheme, want string }{
		{"https://Example.COM/", "", "", "example.com"},
		{"https://example.com:443/", "", "", "example.com"},
		{"http://example.com:80/", "", "", "example.com"},
		{"https://example.com:80/", "", "", "example.com:80"},
		{"http://example.com:8080/", "", "", "example.com:8080"},
		{"http://[::1]:80/", "", "", "[::1]"},
		{"http://example.com/", "other.example:443", "https", "other.example"},
	} {
		r, _ := http.NewRequest(http.MethodGet, tt.url, nil)
		if tt.host != "" {
			r.Host = tt.host
		}
		p := Params{Components: []Component{{Name: Authority}}}
		base, err := SignatureBase(&Message{Request: r, Scheme: tt.scheme}, &p)
		if err != nil {
			t.Fatal(err)
		}
		if got, _, _ := strings.Cut(string(base), "\n"); got != `"@authority": `+tt.want {
			t.Errorf("%s: %s", tt.url, got)
		}
	}
}

// TestClientServerAgree: what a client signs with an outgoing request, a
// server verifies when the same request arrives.
func TestClientServerAgree(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	var gotErr error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := readBody(t, r)
		v := &Verifier{Keys: KeyMap{"key-1": hk}, Scheme: "https", Policy: Policy{Required: []Component{{Name: Method}, {Name: TargetURI}}}}
		_, gotErr = v.VerifyRequest(r, body)
	}))
	defer srv.Close()
	for _, path := range []string{"/a%2Fb/c?x=%20y&z", "/caf%C3%A9/", "/", "/p?", "/~user/x!$&'()*+,;=:@"} {
		body := []byte("hello")
		r, err := http.NewRequest("PATCH", srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		s := &Signer{Key: hk, KeyID: "key-1", Scheme: "https", Components: []Component{{Name: Method}, {Name: TargetURI}, {Name: "content-digest"}}}
		if err := s.SignRequest(r, body); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if gotErr != nil {
			t.Errorf("%s: %v", path, gotErr)
		}
	}
}

// TestLineBreakInValue: a value with a line break could pose as another
// line of the signature base, so it has no base at all.
func TestLineBreakInValue(t *testing.T) {
	for _, v := range []string{"a\n\"@method\": GET", "a\rb", "a\nb"} {
		r := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
		r.Header["X-Evil"] = []string{v}
		p := Params{Components: []Component{{Name: Method}, {Name: "x-evil"}}}
		if base, err := SignatureBase(&Message{Request: r}, &p); err == nil || !strings.Contains(err.Error(), "line break") {
			t.Errorf("%q: base %q, error %v", v, base, err)
		}
	}
	// Obsolete line folding is not a line break: it becomes one space.
	r := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
	r.Header["X-Folded"] = []string{"a\r\n  b"}
	p := Params{Components: []Component{{Name: "x-folded"}}}
	base, err := SignatureBase(&Message{Request: r}, &p)
	if err != nil || !strings.HasPrefix(string(base), "\"x-folded\": a b\n") {
		t.Fatalf("folded: %q %v", base, err)
	}
}

// TestComponentListReuse: the verifier reuses the components of a list it
// read before; messages with different lists, alone or together, must all
// still verify, and a tampered one must still fail.
func TestComponentListReuse(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow, Policy: Policy{Required: []Component{}}}
	short := []Component{{Name: Method}, {Name: Path}}
	long := []Component{{Name: Method}, {Name: Authority}, {Name: Path}, {Name: "content-type"}}
	for i := range 50 {
		r := httptest.NewRequest(http.MethodPost, "https://example.com/p?i=1", nil)
		r.Header.Set("Content-Type", "text/plain")
		lists := [][]Component{short, long}
		if i%3 == 0 {
			lists = [][]Component{long, short}
		}
		for j, comps := range lists[:1+i%2] {
			s := &Signer{Key: hk, KeyID: "key-1", Now: fixedNow, Components: comps, Label: "s" + string(rune('a'+j))}
			if err := s.SignRequest(r, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := v.VerifyRequest(r, nil); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		r.Method = http.MethodPut
		if _, err := v.VerifyRequest(r, nil); !isReason(err, ReasonBadSignature) {
			t.Fatalf("tampered message %d: %v", i, err)
		}
	}
}

func TestEmptySignatureInput(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	r := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
	r.Header.Set("Signature-Input", " ")
	r.Header.Set("Signature", "a")
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow}
	if _, err := v.VerifyRequest(r, nil); !isReason(err, ReasonMissingSignature) {
		t.Fatalf("got %v", err)
	}
}

func TestAuthorityNormalisation(t *testing.T) {
	for _, tt := range []struct{ host, scheme, want string }{
		{"example.com:0080", "http", "example.com"},
		{"example.com:0443", "https", "example.com"},
		{"example.com:", "https", "example.com"},
		{"127.0.0.1:08080", "http", "127.0.0.1:8080"},
		{"[fe80::1%25eth0]:8080", "http", "[fe80::1]:8080"},
		{"[::1]", "https", "[::1]"},
		{"EXAMPLE.com:443", "https", "example.com"},
	} {
		r := httptest.NewRequest(http.MethodGet, tt.scheme+"://example.com/", nil)
		r.Host = tt.host
		p := Params{Components: []Component{{Name: Authority}}}
		base, err := SignatureBase(&Message{Request: r, Scheme: tt.scheme}, &p)
		if err != nil {
			t.Fatalf("%s: %v", tt.host, err)
		}
		if got, _, _ := strings.Cut(string(base), "\n"); got != `"@authority": `+tt.want {
			t.Errorf("%s: %s", tt.host, got)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
	r.Host = "bücher.example"
	p := Params{Components: []Component{{Name: Authority}}}
	if _, err := SignatureBase(&Message{Request: r}, &p); err == nil || !strings.Contains(err.Error(), "punycode") {
		t.Fatalf("non-ASCII host: %v", err)
	}
}

func TestEmptyParameters(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	v := &Verifier{Keys: KeyMap{"k": hk}, Now: fixedNow, Policy: Policy{Required: []Component{}, RequiredParams: []string{}}}
	for in, want := range map[string]Reason{
		`sig1=("@method");created=1700000000;keyid="k";alg=""`: ReasonAlgorithmMismatch,
		`sig1=("@method");created=1700000000;keyid=""`:         ReasonUnknownKey,
	} {
		r := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
		r.Header.Set("Signature-Input", in)
		r.Header.Set("Signature", "sig1=:AAAA:")
		if _, err := v.VerifyRequest(r, nil); !isReason(err, want) {
			t.Errorf("%s: %v, want %s", in, err, want)
		}
	}
	// A received empty tag stays in the base, as the verifier builds it.
	h := http.Header{"Signature-Input": {`sig1=("@method");created=1;tag=""`}, "Signature": {"sig1=::"}}
	sigs, err := ParseSignatures(h)
	if err != nil {
		t.Fatal(err)
	}
	if got := sigs[0].Params.String(); got != `("@method");created=1;tag=""` {
		t.Fatalf("re-serialised %s", got)
	}
}

func TestNonceUnique(t *testing.T) {
	seen := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5000 {
				n := NewNonce()
				mu.Lock()
				if seen[n] || len(n) != 22 {
					t.Errorf("nonce %q repeated or malformed", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// clockNonces is a NonceStore that keeps its contract on a manual clock:
// a pair is held through its until, and forgotten after it.
type clockNonces struct {
	now   func() time.Time
	mu    sync.Mutex
	until map[string]time.Time
}

func (c *clockNonces) Remember(_ context.Context, keyID, nonce string, _, until time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := keyID + "\x00" + nonce
	if u, ok := c.until[k]; ok && !c.now().After(u) {
		return ErrReplayed
	}
	c.until[k] = until
	return nil
}

// TestReplayAtWindowEdge replays a request around the last instant its
// signature is fresh: the first copy is accepted, no later copy is.
func TestReplayAtWindowEdge(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	created := testNow
	for _, tt := range []struct {
		name   string
		signer Signer
		policy Policy
		last   time.Time // the last instant the signature is fresh
	}{
		{"max age", Signer{}, Policy{}, created.Add(DefaultMaxAge)},
		{"sub-second max age", Signer{}, Policy{MaxAge: 1500 * time.Millisecond}, created.Add(1500 * time.Millisecond)},
		{"expires", Signer{ExpiresAfter: 10 * time.Second}, Policy{}, created.Add(10*time.Second - time.Nanosecond)},
		{"expires after max age", Signer{ExpiresAfter: time.Hour}, Policy{}, created.Add(DefaultMaxAge)},
		{"expires, no max age", Signer{ExpiresAfter: 10 * time.Second}, Policy{MaxAge: -1}, created.Add(10*time.Second - time.Nanosecond)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var now time.Time
			clock := func() time.Time { return now }
			s := tt.signer
			s.Key, s.KeyID, s.Now = hk, "key-1", func() time.Time { return created }
			r, body := signedRequest(t, &s)
			for _, first := range []time.Duration{-30 * time.Second, 0, -time.Nanosecond, -400 * time.Millisecond} {
				store := &clockNonces{now: clock, until: map[string]time.Time{}}
				v := &Verifier{Policy: tt.policy, Keys: KeyMap{"key-1": hk}, Nonces: store, Now: clock}
				now = tt.last.Add(first)
				if _, err := v.VerifyRequest(r, body); err != nil {
					t.Fatalf("first copy at last%+v: %v", first, err)
				}
				for _, later := range []time.Duration{0, time.Nanosecond, 100 * time.Millisecond, 500 * time.Millisecond, 900 * time.Millisecond, time.Second, 1100 * time.Millisecond, 2 * time.Second, time.Hour} {
					now = tt.last.Add(first).Add(later)
					if first+later < 0 && later == 0 {
						continue
					}
					_, err := v.VerifyRequest(r, body)
					if !isReason(err, ReasonReplayed) && !isReason(err, ReasonExpired) {
						t.Errorf("copy at last%+v after the first at last%+v: got %v, want replayed or expired", first+later, first, err)
					}
				}
			}
			// Fresh exactly through the last instant, not after it.
			for at, want := range map[time.Duration]Reason{0: "", time.Nanosecond: ReasonExpired, 100 * time.Millisecond: ReasonExpired} {
				now = tt.last.Add(at)
				v := &Verifier{Policy: tt.policy, Keys: KeyMap{"key-1": hk}, Now: clock}
				if _, err := v.VerifyRequest(r, body); !isReason(err, want) {
					t.Errorf("at last%+v without a store: got %v, want %q", at, err, want)
				}
			}
		})
	}
}

// TestUnboundedNonce: a signature that stays fresh for ever has a nonce no
// store can remember long enough, so it is refused where nonces are kept.
func TestUnboundedNonce(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	r, body := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
	policy := Policy{MaxAge: -1}
	v := &Verifier{Policy: policy, Keys: KeyMap{"key-1": hk}, Now: fixedNow}
	if _, err := v.VerifyRequest(r, body); err != nil {
		t.Fatalf("without a nonce store: %v", err)
	}
	v.Nonces = &memNonces{seen: map[string]time.Time{}}
	if _, err := v.VerifyRequest(r, body); !isReason(err, ReasonMalformedSignature) {
		t.Fatalf("with a nonce store: got %v, want malformed-signature", err)
	}
	r, body = signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow, ExpiresAfter: time.Minute})
	if _, err := v.VerifyRequest(r, body); err != nil {
		t.Fatalf("bounded by expires: %v", err)
	}
}

// TestExpiresWhileChecked: a signature that goes stale while its key is
// being resolved is refused, not remembered past its store time.
func TestExpiresWhileChecked(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	r, body := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
	now := testNow.Add(DefaultMaxAge)
	clock := func() time.Time { return now }
	store := &clockNonces{now: clock, until: map[string]time.Time{}}
	slow := KeyResolverFunc(func(context.Context, string) (VerifyingKey, error) {
		now = now.Add(time.Millisecond)
		return hk, nil
	})
	v := &Verifier{Keys: slow, Nonces: store, Now: clock}
	if _, err := v.VerifyRequest(r, body); !isReason(err, ReasonExpired) {
		t.Fatalf("got %v, want expired", err)
	}
	if len(store.until) != 0 {
		t.Fatal("the nonce of a refused request was remembered")
	}
}

// TestVerifyErrorNamesSignature: a refusal names the signature concerned,
// so that a server can log it without parsing the fields again.
func TestVerifyErrorNamesSignature(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow}
	for _, tt := range []struct {
		name      string
		change    func(r *http.Request, body *[]byte)
		keyID     string
		wantLabel string
	}{
		{"digest", func(_ *http.Request, b *[]byte) { *b = []byte("other") }, "key-1", "sig1"},
		{"unknown key", func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `keyid="key-1"`, `keyid="key-2"`, 1))
		}, "key-2", "sig1"},
		{"no signature member", func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature", strings.Replace(r.Header.Get("Signature"), "sig1=", "sig2=", 1))
		}, "key-1", "sig1"},
		{"stale", func(r *http.Request, _ *[]byte) {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), "created=1700000000", "created=1600000000", 1))
		}, "key-1", "sig1"},
		{"two signatures, second bad", func(r *http.Request, body *[]byte) {
			other, _ := NewHMACKey(bytes.Repeat([]byte("o"), 32))
			if err := (&Signer{Key: other, KeyID: "key-1", Label: "sig2", Now: fixedNow}).SignRequest(r, *body); err != nil {
				t.Fatal(err)
			}
		}, "key-1", "sig2"},
		{"no fields", func(r *http.Request, _ *[]byte) { r.Header.Del("Signature-Input") }, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, body := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
			tt.change(r, &body)
			_, err := v.VerifyRequest(r, body)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a refusal", err)
			}
			if ve.KeyID != tt.keyID || ve.Label != tt.wantLabel {
				t.Fatalf("refusal %v names keyid %q, label %q; want %q, %q", err, ve.KeyID, ve.Label, tt.keyID, tt.wantLabel)
			}
		})
	}
	// A dependency's failure is not a refusal; its message names the key.
	down := errors.New("database is down")
	v.Keys = KeyResolverFunc(func(context.Context, string) (VerifyingKey, error) { return nil, down })
	r, body := signedRequest(t, &Signer{Key: hk, KeyID: "key-1", Now: fixedNow})
	if _, err := v.VerifyRequest(r, body); !errors.Is(err, down) || !strings.Contains(err.Error(), `keyid "key-1"`) {
		t.Fatalf("resolver down: %v", err)
	}
}

// TestHostileFields: fields crafted to be costly are refused as
// malformed, and a message with as many signatures as allowed is read.
func TestHostileFields(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte("k"), 32))
	v := &Verifier{Keys: KeyMap{"key-1": hk}, Now: fixedNow}
	for _, kind := range []string{"labels", "components", "params"} {
		r := httptest.NewRequest(http.MethodGet, "https://api.example.com/", nil)
		in, sig := hostileFields(kind)
		r.Header.Set("Signature-Input", in)
		r.Header.Set("Signature", sig)
		_, err := v.VerifyRequest(r, nil)
		if !isReason(err, ReasonMalformedSignature) || !strings.Contains(err.Error(), "holds more than this server reads") {
			t.Errorf("%s: got %v", kind, err)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "https://api.example.com/", nil)
	for i := range MaxSignatures {
		s := &Signer{Key: hk, KeyID: "key-1", Now: fixedNow, Label: "s" + strconv.Itoa(i)}
		if err := s.SignRequest(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	res, err := v.VerifyRequest(r, nil)
	if err != nil || res.Signatures != MaxSignatures {
		t.Fatalf("%d signatures: %v, %+v", MaxSignatures, err, res)
	}
}

// TestStructuredFieldReadOnce: components reading one structured field
// share its parse, and a trailer of the same name is a field of its own.
func TestStructuredFieldReadOnce(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
	r.Header.Set("Example-Dict", " a=1,    b=2;x=1;y=2, c=(a   b   c)  ")
	r.Trailer = http.Header{"Example-Dict": {"a=9"}}
	m := &Message{Request: r, Structured: map[string]FieldType{"example-dict": FieldDictionary}}
	comps, err := ParseComponents(`"example-dict";key="a" "example-dict";sf "example-dict";key="b" "example-dict";key="a";tr "example-dict";key="c" "example-dict"`)
	if err != nil {
		t.Fatal(err)
	}
	base, err := SignatureBase(m, &Params{Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	want := `"example-dict";key="a": 1
"example-dict";sf: a=1, b=2;x=1;y=2, c=(a b c)
"example-dict";key="b": 2;x=1;y=2
"example-dict";key="a";tr: 9
"example-dict";key="c": (a b c)
"example-dict": a=1,    b=2;x=1;y=2, c=(a   b   c)
`
	if got, _, _ := strings.Cut(string(base), `"@signature-params"`); got != want {
		t.Fatalf("base:\n%s\nwant:\n%s", got, want)
	}
}

func TestRequiresNonce(t *testing.T) {
	for _, tt := range []struct {
		params []string
		want   bool
	}{
		{nil, true},
		{[]string{}, false},
		{[]string{"created", "keyid"}, false},
		{[]string{"nonce"}, true},
	} {
		p := Policy{RequiredParams: tt.params}
		if got := p.RequiresNonce(); got != tt.want {
			t.Errorf("RequiredParams %q: RequiresNonce() = %v", tt.params, got)
		}
	}
	// The defaults are a copy: changing it changes no policy.
	DefaultRequiredParams()[2] = "tag"
	if !(&Policy{}).RequiresNonce() {
		t.Fatal("a caller changed the default profile")
	}
	Algorithms()[0] = "none"
	if _, err := ParseAlgorithm("hmac-sha256"); err != nil {
		t.Fatal("a caller changed the algorithms")
	}
}

// TestSignatureBaseLeavesMessage: a Message reused after its request
// changed gives the base of the request as it is now.
func TestSignatureBaseLeavesMessage(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "https://example.com/a?x=1", nil)
	m := &Message{Request: r}
	p := &Params{Components: []Component{{Name: Path}, {Name: Query}}}
	first, err := SignatureBase(m, p)
	if err != nil {
		t.Fatal(err)
	}
	if m.hasTarget {
		t.Fatal("SignatureBase changed its Message")
	}
	r.RequestURI = "/b?y=2"
	second, err := SignatureBase(m, p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(first), "\"@path\": /a\n\"@query\": ?x=1\n") || !strings.HasPrefix(string(second), "\"@path\": /b\n\"@query\": ?y=2\n") {
		t.Fatalf("bases %q then %q", first, second)
	}
}

// TestSignRequestContentDigest: SignRequest sets Content-Digest for the
// body with either algorithm, the signature covers it, and a signing that
// fails still leaves the field set, as it did when the field was set first.
func TestSignRequestContentDigest(t *testing.T) {
	body := reqfixture.Body()
	hk, _ := NewHMACKey(bytes.Repeat([]byte{7}, 32))
	for _, alg := range []DigestAlgorithm{"", DigestSHA256, DigestSHA512} {
		want, err := ContentDigest(alg, body)
		if err != nil {
			t.Fatal(err)
		}
		s := benchSigner(hk)
		s.Digest = alg
		r := reqfixture.Received(body)
		r.Header.Set("Content-Digest", "sha-256=:AAAA:")
		if err := s.SignRequest(r, body); err != nil {
			t.Fatal(err)
		}
		if got := r.Header["Content-Digest"]; len(got) != 1 || got[0] != want {
			t.Errorf("%q: Content-Digest %q, want %q", alg, got, want)
		}
		v := &Verifier{Keys: KeyMap{reqfixture.KeyID: hk}, Now: func() time.Time { return time.Unix(reqfixture.Created, 0) }}
		if _, err := v.VerifyRequest(r, body); err != nil {
			t.Errorf("%q: %v", alg, err)
		}
		if _, err := v.VerifyRequest(r, append([]byte("x"), body...)); err == nil {
			t.Errorf("%q: other content verifies", alg)
		}

		s.Label = "Not A Label"
		r = reqfixture.Received(body)
		if err := s.SignRequest(r, body); err == nil {
			t.Fatalf("%q: signing with label %q succeeds", alg, s.Label)
		}
		if got := r.Header["Content-Digest"]; len(got) != 1 || got[0] != want {
			t.Errorf("%q: after a failed signing, Content-Digest %q, want %q", alg, got, want)
		}
	}
}

// TestSignRequestNonces: every signature SignRequest makes carries a new
// nonce, 22 characters of base64url (128 bits), also when signers run
// concurrently and share the signing scratch pool; NoNonce leaves it out.
func TestSignRequestNonces(t *testing.T) {
	hk, _ := NewHMACKey(bytes.Repeat([]byte{7}, 32))
	v := &Verifier{Keys: KeyMap{reqfixture.KeyID: hk}, Now: func() time.Time { return time.Unix(reqfixture.Created, 0) }}
	const workers, each = 4, 200
	nonces := make(chan string, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := benchSigner(hk)
			for range each {
				r := reqfixture.Received(nil)
				if err := s.SignRequest(r, nil); err != nil {
					t.Error(err)
					return
				}
				res, err := v.VerifyRequest(r, nil)
				if err != nil {
					t.Error(err)
					return
				}
				nonces <- res.Nonce
			}
		}()
	}
	wg.Wait()
	close(nonces)
	seen := map[string]bool{}
	for n := range nonces {
		if len(n) != nonceLen || strings.Trim(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("nonce %q is not 22 characters of base64url", n)
		}
		if seen[n] {
			t.Fatalf("nonce %q made twice", n)
		}
		seen[n] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d nonces, want %d", len(seen), workers*each)
	}
	s := benchSigner(hk)
	s.NoNonce = true
	r := reqfixture.Received(nil)
	if err := s.SignRequest(r, nil); err != nil {
		t.Fatal(err)
	}
	if in := r.Header.Get("Signature-Input"); strings.Contains(in, "nonce=") {
		t.Errorf("NoNonce: Signature-Input %q has a nonce", in)
	}
}

// TestSignParamsHead: the parameters a signing scratch serialises, reusing
// the head of the last signature's, are what Params.appendTo writes, as
// the list, created, keyid, alg and nonce change one at a time, and when
// expires, a tag or a nonce string leave the head out.
func TestSignParamsHead(t *testing.T) {
	created := time.Unix(1700000000, 0)
	later := created.Add(time.Second)
	var sc signScratch
	for i, tt := range []struct {
		list int
		p    Params
	}{
		{7, Params{Created: created, KeyID: "k1", Alg: AlgHMACSHA256, nonceText: []byte("n1")}},
		{7, Params{Created: created, KeyID: "k1", Alg: AlgHMACSHA256, nonceText: []byte("n2")}},
		{7, Params{Created: later, KeyID: "k1", Alg: AlgHMACSHA256, nonceText: []byte("n3")}},
		{7, Params{Created: later, KeyID: "k2", Alg: AlgHMACSHA256, nonceText: []byte("n4")}},
		{7, Params{Created: later, KeyID: "k2", nonceText: []byte("n5")}},
		{7, Params{Created: later, KeyID: "k2", Alg: AlgEd25519, nonceText: []byte("n6")}},
		{7, Params{KeyID: "k2", Alg: AlgEd25519, nonceText: []byte("n7")}},
		{7, Params{Created: later, KeyID: "k2", Alg: AlgEd25519, nonceText: []byte("n8")}},
		{3, Params{Created: later, KeyID: "k2", Alg: AlgEd25519, nonceText: []byte("n9")}},
		{3, Params{Created: later, KeyID: "k2", Alg: AlgEd25519, nonceText: []byte("n10"), Expires: later.Add(time.Minute)}},
		{3, Params{Created: later, KeyID: "k2", Alg: AlgEd25519, nonceText: []byte("n11"), Tag: "t"}},
		{3, Params{Created: later, KeyID: "k2", Alg: AlgEd25519, Nonce: "n12"}},
		{3, Params{Created: later, KeyID: "k2", Alg: AlgEd25519}},
		{5, Params{Created: created, KeyID: "\x01", Alg: AlgEd25519, nonceText: []byte("n13")}},
		{3, Params{Created: later, KeyID: "k2", Alg: AlgEd25519, nonceText: []byte("n14")}},
	} {
		p := tt.p
		p.Components, p.listText = defaultLists[tt.list].comps, defaultLists[tt.list].text
		want, wantErr := p.appendTo([]byte("x"))
		got, err := sc.appendParams([]byte("x"), &p)
		if (err == nil) != (wantErr == nil) || (err == nil && string(got) != string(want)) {
			t.Errorf("%d: appendParams gives %q, %v; appendTo %q, %v", i, got, err, want, wantErr)
		}
	}
}
