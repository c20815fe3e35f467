package httpsig

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

// responseFixture is a signed request, and a server that signs its
// responses.
type responseFixture struct {
	req      *http.Request
	signer   *ResponseSigner
	verifier *ResponseVerifier
}

func newResponseFixture(t testing.TB) *responseFixture {
	t.Helper()
	clientKey, _ := NewHMACKey(bytes.Repeat([]byte("c"), 32))
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.com/v1/orders?customer=42", nil)
	req.Header.Set("Content-Type", "application/json")
	body := []byte(`{"sku":"A-1"}`)
	cs := &Signer{Key: clientKey, KeyID: "sk_client", Now: func() time.Time { return presignNow }}
	if err := cs.SignRequest(req, body); err != nil {
		t.Fatal(err)
	}
	sk, vk := presignKeys(t)
	return &responseFixture{
		req:      req,
		signer:   &ResponseSigner{Key: sk, KeyID: "gw-1", Now: func() time.Time { return presignNow.Add(2 * time.Second) }},
		verifier: &ResponseVerifier{Keys: KeyMap{"gw-1": vk}},
	}
}

func (f *responseFixture) response(t testing.TB, status int, h http.Header, body []byte) *http.Response {
	t.Helper()
	if h == nil {
		h = http.Header{}
	}
	resp := &http.Response{StatusCode: status, Header: h, Request: f.req, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
	if err := f.signer.SignResponse(resp, body); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestResponseProfile pins what a response signature covers.
func TestResponseProfile(t *testing.T) {
	f := newResponseFixture(t)
	body := []byte(`{"id":"order-7"}`)
	resp := f.response(t, http.StatusCreated, http.Header{"Content-Type": {"application/json"}, "Date": {"Thu, 01 Jan 1970 00:00:00 GMT"}}, body)
	if got := resp.Header.Get("Date"); got != "Tue, 14 Nov 2023 22:13:22 GMT" {
		t.Errorf("Date %q: not the signer's clock", got)
	}
	sigs, err := ParseSignatures(resp.Header)
	if err != nil {
		t.Fatal(err)
	}
	const want = `("@status" "content-type" "content-digest" "date" "@method";req "@path";req "@query";req "signature";req);created=1700000002;keyid="gw-1";alg="ed25519";tag="signet-response"`
	if len(sigs) != 1 || sigs[0].Label != ResponseLabel || sigs[0].Params.String() != want {
		t.Fatalf("signature %s=%s\nwant     signet=%s", sigs[0].Label, sigs[0].Params.String(), want)
	}
	base, err := SignatureBase(&Message{Request: f.req, Response: resp}, &sigs[0].Params)
	if err != nil {
		t.Fatal(err)
	}
	wantBase := "\"@status\": 201\n" +
		"\"content-type\": application/json\n" +
		"\"content-digest\": sha-256=:" + sha256B64(body) + ":\n" +
		"\"date\": Tue, 14 Nov 2023 22:13:22 GMT\n" +
		"\"@method\";req: POST\n" +
		"\"@path\";req: /v1/orders\n" +
		"\"@query\";req: ?customer=42\n" +
		"\"signature\";req: " + f.req.Header.Get("Signature") + "\n" +
		"\"@signature-params\": " + want
	if string(base) != wantBase {
		t.Errorf("base:\n%s\nwant:\n%s", base, wantBase)
	}
	// An unsigned request without a query, and a response without
	// content or Content-Type.
	plain, _ := http.NewRequest(http.MethodGet, "https://api.example.com/healthz", nil)
	cs := ResponseComponents(plain, http.Header{}, false)
	if got := (&Params{Components: cs}).String(); got != `("@status" "date" "@method";req "@path";req)` {
		t.Errorf("components %s", got)
	}
}

func sha256B64(b []byte) string {
	d, _ := ContentDigest(DigestSHA256, b)
	return strings.TrimSuffix(strings.TrimPrefix(d, "sha-256=:"), ":")
}

// TestResponseVerify checks signed responses, buffered and streamed, and
// their tampered variants.
func TestResponseVerify(t *testing.T) {
	body := []byte(`{"id":"order-7"}`)
	other, _ := http.NewRequest(http.MethodPost, "https://api.example.com/v1/orders?customer=42", nil)
	other.Header.Set("Signature-Input", `sig1=("@method");created=1700000000;keyid="sk_client";nonce="another"`)
	other.Header.Set("Signature", `sig1=:AAAA:`)
	for _, tt := range []struct {
		name   string
		change func(f *responseFixture, resp *http.Response) []byte // returns the body to deliver
		reason Reason
	}{
		{name: "as signed"},
		{name: "status", change: func(_ *responseFixture, r *http.Response) []byte { r.StatusCode = 200; return body }, reason: ReasonBadSignature},
		{name: "body", change: func(_ *responseFixture, r *http.Response) []byte { return []byte(`{"id":"order-8"}`) }, reason: ReasonDigestMismatch},
		{name: "body truncated to nothing", change: func(_ *responseFixture, r *http.Response) []byte { return nil }, reason: ReasonDigestMismatch},
		{name: "Date", change: func(_ *responseFixture, r *http.Response) []byte {
			r.Header.Set("Date", "Tue, 14 Nov 2023 22:23:22 GMT")
			return body
		}, reason: ReasonBadSignature},
		{name: "Date removed", change: func(_ *responseFixture, r *http.Response) []byte { r.Header.Del("Date"); return body }, reason: ReasonMissingComponent},
		{name: "Content-Type", change: func(_ *responseFixture, r *http.Response) []byte {
			r.Header.Set("Content-Type", "text/html")
			return body
		}, reason: ReasonBadSignature},
		{name: "answer to another request", change: func(_ *responseFixture, r *http.Response) []byte { r.Request = other; return body }, reason: ReasonBadSignature},
		{name: "answer to another path", change: func(f *responseFixture, r *http.Response) []byte {
			req := f.req.Clone(context.Background())
			req.URL.Path = "/v1/admin"
			r.Request = req
			return body
		}, reason: ReasonBadSignature},
		{name: "unsigned", change: func(_ *responseFixture, r *http.Response) []byte {
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
			return body
		}, reason: ReasonMissingSignature},
		{name: "another tag only", change: func(_ *responseFixture, r *http.Response) []byte {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), ResponseTag, "upstream", 1))
			return body
		}, reason: ReasonMissingSignature},
		{name: "unknown key", change: func(f *responseFixture, r *http.Response) []byte {
			f.verifier = &ResponseVerifier{Keys: KeyMap{}}
			return body
		}, reason: ReasonUnknownKey},
		{name: "server clock far behind", change: func(f *responseFixture, r *http.Response) []byte {
			f.signer.Now = func() time.Time { return presignNow.Add(-48 * time.Hour) }
			*r = *f.response(t, r.StatusCode, http.Header{"Content-Type": {"application/json"}}, body)
			return body
		}},
		{name: "server clock far ahead", change: func(f *responseFixture, r *http.Response) []byte {
			f.signer.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
			*r = *f.response(t, r.StatusCode, http.Header{"Content-Type": {"application/json"}}, body)
			return body
		}},
	} {
		for _, streamed := range []bool{false, true} {
			name := tt.name
			if streamed {
				name += "/streamed"
			}
			t.Run(name, func(t *testing.T) {
				f := newResponseFixture(t)
				resp := f.response(t, http.StatusCreated, http.Header{"Content-Type": {"application/json"}}, body)
				deliver := body
				if tt.change != nil {
					deliver = tt.change(f, resp)
				}
				resp.Body = io.NopCloser(bytes.NewReader(deliver))
				var err error
				var got []byte
				if streamed {
					if _, err = f.verifier.VerifyStream(context.Background(), resp); err == nil {
						got, err = io.ReadAll(resp.Body)
					}
				} else {
					_, err = f.verifier.Verify(context.Background(), resp, deliver)
				}
				if tt.reason == "" {
					if err != nil {
						t.Fatal(err)
					}
					if streamed && !bytes.Equal(got, body) {
						t.Errorf("body %q", got)
					}
					return
				}
				if r, _ := ReasonOf(err); r != tt.reason {
					t.Fatalf("error %v, want reason %s", err, tt.reason)
				}
			})
		}
	}
}

// TestResponseUncoveredContent refuses content that no signature covers,
// as soon as it arrives.
func TestResponseUncoveredContent(t *testing.T) {
	f := newResponseFixture(t)
	resp := f.response(t, http.StatusNoContent, nil, nil) // signed without content
	resp.Body = io.NopCloser(strings.NewReader("injected"))
	if _, err := f.verifier.Verify(context.Background(), resp, []byte("injected")); err == nil {
		t.Error("Verify accepted uncovered content")
	} else if r, _ := ReasonOf(err); r != ReasonMissingComponent {
		t.Errorf("Verify: %v", err)
	}
	if _, err := f.verifier.VerifyStream(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	if r, _ := ReasonOf(err); n != 0 || r != ReasonMissingComponent {
		t.Errorf("Read: %d bytes, %v; want none and missing-component", n, err)
	}
	if n, err2 := resp.Body.Read(buf); n != 0 || err2 != err {
		t.Errorf("a second Read: %d, %v; the error is not sticky", n, err2)
	}
	// Without content it verifies.
	resp = f.response(t, http.StatusNoContent, nil, nil)
	resp.Body = http.NoBody
	if _, err := f.verifier.VerifyStream(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 0 {
		t.Errorf("%q, %v", b, err)
	}
}

// TestResponseStreamLastChunk: a reader that returns its last bytes with
// io.EOF still gets the digest checked.
func TestResponseStreamLastChunk(t *testing.T) {
	f := newResponseFixture(t)
	resp := f.response(t, http.StatusOK, nil, []byte("hello"))
	resp.Body = io.NopCloser(&eofWithData{data: []byte("hellO")})
	if _, err := f.verifier.VerifyStream(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	n, err := resp.Body.Read(make([]byte, 16))
	if r, _ := ReasonOf(err); n != 5 || r != ReasonDigestMismatch {
		t.Errorf("Read: %d, %v; want 5 and digest-mismatch", n, err)
	}
}

type eofWithData struct{ data []byte }

func (e *eofWithData) Read(p []byte) (int, error) {
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, io.EOF
}

// TestResponseSwitchingProtocols leaves the body of a 101, a connection,
// alone.
func TestResponseSwitchingProtocols(t *testing.T) {
	f := newResponseFixture(t)
	resp := f.response(t, http.StatusSwitchingProtocols, http.Header{"Upgrade": {"websocket"}}, nil)
	conn := &rwc{}
	resp.Body = conn
	if _, err := f.verifier.VerifyStream(context.Background(), resp); err != nil {
		t.Fatal(err)
	}
	if resp.Body != io.ReadCloser(conn) {
		t.Error("the body of a 101 was replaced")
	}
}

type rwc struct{ bytes.Buffer }

func (*rwc) Close() error { return nil }

// TestResponseSignerDropsSignatures keeps an upstream's own signatures and
// removes anything speaking for the signer's label or tag.
func TestResponseSignerDropsSignatures(t *testing.T) {
	f := newResponseFixture(t)
	h := http.Header{
		"Signature-Input": {`up1=("@status");created=1;keyid="upstream", signet=("@status");keyid="forged", x=("@status");tag="signet-response", y=("@status");tag="signet-gateway"`},
		"Signature":       {`up1=:AAAA:, signet=:BBBB:, x=:CCCC:, y=:DDDD:`},
	}
	if err := f.signer.SignHeader(h, 200, f.req, ""); err != nil {
		t.Fatal(err)
	}
	sigs, err := ParseSignatures(h)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, s := range sigs {
		labels = append(labels, s.Label)
	}
	if strings.Join(labels, ",") != "up1,signet" || sigs[0].Params.KeyID != "upstream" || sigs[1].Params.KeyID != "gw-1" {
		t.Errorf("signatures %v", labels)
	}
	resp := &http.Response{StatusCode: 200, Header: h, Request: f.req}
	if _, err := f.verifier.Verify(context.Background(), resp, nil); err != nil {
		t.Error(err)
	}
	// Fields that do not parse go.
	h = http.Header{"Signature-Input": {`up1=("@status"`}, "Signature": {`up1=:AAAA:`}}
	if err := f.signer.SignHeader(h, 200, f.req, ""); err != nil {
		t.Fatal(err)
	}
	if sigs, err := ParseSignatures(h); err != nil || len(sigs) != 1 || sigs[0].Label != ResponseLabel {
		t.Errorf("%v, %v", sigs, err)
	}
}

// TestJWKS round-trips key sets and checks RFC 7638 thumbprints.
func TestJWKS(t *testing.T) {
	// RFC 8037 A.3.
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if tp, _ := JWKThumbprint(ed25519.PublicKey(x)); tp != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("Ed25519 thumbprint %s", tp)
	}
	// RFC 7638 3.1.
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	rsaKey := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	if tp, _ := JWKThumbprint(rsaKey); tp != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("RSA thumbprint %s", tp)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	data, err := MarshalJWKS([]JWK{
		{KeyID: "gw-1", Key: ed25519.PublicKey(x)},
		{KeyID: "gw-ec", Key: &ec.PublicKey},
		{KeyID: "gw-rsa", Key: rsaKey, Alg: AlgRSAPSSSHA512},
	})
	if err != nil {
		t.Fatal(err)
	}
	set, err := ParseJWKS(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	for kid, alg := range map[string]Algorithm{"gw-1": AlgEd25519, "gw-ec": AlgECDSAP256SHA256, "gw-rsa": AlgRSAPSSSHA512} {
		k, ok := set[kid]
		want, _ := JWKThumbprint(map[string]any{"gw-1": ed25519.PublicKey(x), "gw-ec": &ec.PublicKey, "gw-rsa": rsaKey}[kid])
		if !ok || k.Algorithm() != alg || k.Thumbprint != want {
			t.Errorf("%s: %v %v %s", kid, ok, k.VerifyingKey, k.Thumbprint)
		}
	}
	if _, err := MarshalJWKS([]JWK{{KeyID: "a", Key: rsaKey}}); err == nil {
		t.Error("an RSA key without its algorithm was written")
	}
	if _, err := MarshalJWKS([]JWK{{KeyID: "a", Key: ed25519.PublicKey(x)}, {KeyID: "a", Key: ed25519.PublicKey(x)}}); err == nil {
		t.Error("a kid used twice was written")
	}
	for _, bad := range []string{
		`{}`, `[]`, `{"keys":{}}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
		`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`,
		`{"keys":[{"kty":"OKP","kid":"a","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}`,
		`{"keys":[{"kty":"OKP","kid":"a","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},{"kty":"OKP","kid":"a","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
		`{"keys":[{"kty":"OKP","kid":"a","crv":"Ed25519","x":"short"}]}`,
	} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("ParseJWKS(%s) accepted it", bad)
		}
	}
	skipped, err := ParseJWKS([]byte(`{"keys":[{"kty":"XYZ","kid":"q"},{"kty":"OKP","kid":"e","use":"enc","crv":"X25519","x":"AA"},{"kty":"OKP","kid":"a","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	if err != nil || len(skipped) != 1 {
		t.Errorf("%v, %v", skipped, err)
	}
}

// TestResponseVerifierNeedsRequest fails, rather than verifies less,
// without the request.
func TestResponseVerifierNeedsRequest(t *testing.T) {
	f := newResponseFixture(t)
	resp := f.response(t, 200, nil, nil)
	resp.Request = nil
	if _, err := f.verifier.Verify(context.Background(), resp, nil); err == nil || errors.Is(err, ErrUnknownKey) {
		t.Errorf("%v", err)
	}
}

// TestResponseTags tells the server's own answers from the answers it
// relays, and checks every signature of either kind.
func TestResponseTags(t *testing.T) {
	f := newResponseFixture(t)
	own := *f.signer
	own.Tag = GatewayTag
	resp := &http.Response{StatusCode: 401, Header: http.Header{}, Request: f.req}
	if err := own.SignResponse(resp, []byte(`{"type":"x"}`)); err != nil {
		t.Fatal(err)
	}
	res, err := f.verifier.Verify(context.Background(), resp, []byte(`{"type":"x"}`))
	if err != nil || res.Tag != GatewayTag {
		t.Fatalf("%+v %v", res, err)
	}
	relayed := f.response(t, 401, nil, []byte(`{"type":"x"}`))
	if res, err := f.verifier.Verify(context.Background(), relayed, []byte(`{"type":"x"}`)); err != nil || res.Tag != ResponseTag {
		t.Fatalf("%+v %v", res, err)
	}
	// A forged gateway signature beside a good relayed one spoils it.
	relayed.Header["Signature-Input"][0] += `, forged=("@status" "date" "@method";req "@path";req "@query";req "signature";req);created=1;keyid="gw-1";tag="signet-gateway"`
	relayed.Header["Signature"][0] += `, forged=:` + base64.StdEncoding.EncodeToString(make([]byte, 64)) + `:`
	if _, err := f.verifier.Verify(context.Background(), relayed, []byte(`{"type":"x"}`)); err == nil {
		t.Error("a forged gateway signature rode on a good one")
	}
	// Only the tags asked for.
	v := *f.verifier
	v.Tags = []string{GatewayTag}
	if _, err := v.Verify(context.Background(), f.response(t, 200, nil, nil), nil); err == nil {
		t.Error("a relayed response passed a verifier of gateway answers only")
	}
}

// TestResponseUnsignedSaysResponse: the refusal of an unsigned response
// speaks of the response, not of a request (signet request printed
// "the request has no Signature-Input…" for the gateway's unsigned answer).
func TestResponseUnsignedSaysResponse(t *testing.T) {
	f := newResponseFixture(t)
	for _, stream := range []bool{false, true} {
		resp := f.response(t, 200, nil, nil)
		resp.Header.Del("Signature")
		resp.Header.Del("Signature-Input")
		var err error
		if stream {
			_, err = f.verifier.VerifyStream(context.Background(), resp)
		} else {
			_, err = f.verifier.Verify(context.Background(), resp, nil)
		}
		var ve *VerifyError
		if !errors.As(err, &ve) || ve.Reason != ReasonMissingSignature || ve.Detail != "the response has no Signature-Input and Signature fields" {
			t.Errorf("stream %v: %v", stream, err)
		}
	}
}
