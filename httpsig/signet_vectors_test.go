package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The vectors of Signet's own profiles, in testdata/signet, are made here
// (go test ./httpsig -run TestSignetVectors -update) and checked to be
// current; the Node.js and Python clients read them, so that every
// implementation makes the same presigned URLs and judges the same
// responses alike.
var update = flag.Bool("update", false, "rewrite testdata/signet")

// presignVector is one URL to presign, and what every implementation
// must make of it: the URL, byte for byte, or a refusal.
type presignVector struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	KeyID   string `json:"key_id"`
	Key     string `json:"key"`
	Alg     string `json:"alg"`
	Method  string `json:"method,omitempty"`
	Expires int    `json:"expires"`
	Created int64  `json:"created"`
	Nonce   string `json:"nonce,omitempty"`
	// Want is the presigned URL; empty when it must be refused.
	Want string `json:"want,omitempty"`
}

// responseVector is a response a gateway signed, maybe altered, and the
// reason a client refuses it ("" when it accepts it).
type responseVector struct {
	Name     string    `json:"name"`
	Request  vectorMsg `json:"request"`
	Response vectorMsg `json:"response"`
	Keys     string    `json:"keys"` // the gateway's JWK set
	Want     Reason    `json:"want"`
	Tag      string    `json:"tag,omitempty"` // of the accepted signature
	Notes    string    `json:"notes,omitempty"`
}

type vectorMsg struct {
	Method  string      `json:"method,omitempty"`
	URL     string      `json:"url,omitempty"`
	Status  int         `json:"status,omitempty"`
	Headers [][2]string `json:"headers"`
	BodyB64 string      `json:"body_b64,omitempty"`
}

func headerPairs(h http.Header) [][2]string {
	out := [][2]string{}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range h[k] {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

func makePresignVectors(t *testing.T) []presignVector {
	const secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	edPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	var out []presignVector
	add := func(name, url, alg, method string, expires int, nonce string) {
		key := secret
		if alg == string(AlgEd25519) {
			key = edPEM
		}
		v := presignVector{Name: name, URL: url, KeyID: "sk_test", Key: key, Alg: alg, Method: method, Expires: expires, Created: 1700000000, Nonce: nonce}
		k, err := LoadSigningKey(Algorithm(alg), []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		s := &Signer{Key: k, KeyID: v.KeyID, Now: func() time.Time { return time.Unix(v.Created, 0) }}
		v.Want, _ = s.Presign(url, PresignOptions{Method: method, Expires: time.Duration(expires) * time.Second, SingleUse: nonce != "", Nonce: nonce})
		out = append(out, v)
	}
	hmac, ed := string(AlgHMACSHA256), string(AlgEd25519)
	add("a query", "https://api.example.com/v1/files/7?download=1", hmac, "", 900, "")
	add("single use", "https://api.example.com/v1/files/7?download=1", hmac, "", 900, "n-1")
	add("ed25519, no query", "https://api.example.com/v1/img/7.png", ed, "", 60, "")
	add("an empty query", "https://api.example.com/x?", ed, "", 60, "")
	add("no path", "https://api.example.com?a=1", hmac, "", 60, "")
	add("a trailing &", "https://api.example.com/x?a=1&", hmac, "", 60, "")
	add("repeated parameters and escapes", "https://api.example.com/x?a=1&a=2&q=%E2%9C%93&s=a+b&t=%2B%26", ed, "", 60, "")
	add("parameters of the API beside", "https://api.example.com/x?sig=azure&signet=1&signet-sig2=x", hmac, "", 60, "")
	add("a port, upper case, sub-delimiters", "https://API.Example.com:8443/a%2Fb/c;p=1/@me?x=y/z?w", ed, "", 60, "")
	add("a fragment", "http://127.0.0.1:8080/ws?room=7#top", hmac, "", 60, "n-2")
	add("another method", "https://api.example.com/upload/7", ed, "PUT", 300, "")
	add("expires rounded up", "https://api.example.com/x", hmac, "", 1, "")
	for _, bad := range []string{
		"/relative", "ftp://example.com/x", "https://user:pw@example.com/x", "https://example.com/a/../b",
		"https://example.com/a/%2E%2e/b", "https://example.com/a b", "https://example.com/a{b}",
		"https://example.com/x?q=it's", "https://example.com/x?q=%zz", "https://example.com/x?signet-sig=1",
		"https://example.com/x?a=1&SIGNET-INPUT=1", "https://example.com/x?signet%2dinput=1", "https://a%2Eexample.com/x",
	} {
		add("refused: "+bad, bad, hmac, "", 60, "")
	}
	return out
}

func makeResponseVectors(t *testing.T) []responseVector {
	gwPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5e}, ed25519.SeedSize))
	kid, _ := JWKThumbprint(gwPriv.Public())
	jwks, _ := MarshalJWKS([]JWK{{KeyID: kid, Key: gwPriv.Public()}})
	sk, _ := NewSigningKey(AlgEd25519, gwPriv)
	clientKey, _ := NewHMACKey(bytes.Repeat([]byte("c"), 32))
	at := time.Unix(1700000000, 0)
	newRequest := func(method, url, nonce string) *http.Request {
		r, _ := http.NewRequest(method, url, nil)
		s := &Signer{Key: clientKey, KeyID: "sk_client", Now: func() time.Time { return at }, NoNonce: nonce == ""}
		if nonce != "" {
			p := s.params()
			p.Nonce = nonce
			p.Components = DefaultComponents(r, false)
			if err := SignMessage(&Message{Request: r}, DefaultLabel, &p, clientKey); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	sign := func(tag string, r *http.Request, status int, h http.Header, body []byte) *http.Response {
		resp := &http.Response{StatusCode: status, Header: h, Request: r}
		s := &ResponseSigner{Key: sk, KeyID: kid, Tag: tag, Now: func() time.Time { return at.Add(time.Second) }}
		if err := s.SignResponse(resp, body); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var out []responseVector
	add := func(name string, r *http.Request, resp *http.Response, body []byte, want Reason, tag, notes string) {
		out = append(out, responseVector{
			Name:     name,
			Request:  vectorMsg{Method: r.Method, URL: r.URL.String(), Headers: headerPairs(r.Header)},
			Response: vectorMsg{Status: resp.StatusCode, Headers: headerPairs(resp.Header), BodyB64: base64.StdEncoding.EncodeToString(body)},
			Keys:     string(jwks), Want: want, Tag: tag, Notes: notes,
		})
	}
	json200 := []byte(`{"id":"order-7"}`)
	ct := func() http.Header { return http.Header{"Content-Type": {"application/json"}} }
	get := newRequest("GET", "https://api.example.com/v1/orders/7?expand=items", "n-1")
	ok := sign(ResponseTag, get, 200, ct(), json200)
	add("relayed 200", get, ok, json200, "", ResponseTag, "")
	problem := []byte(`{"type":"https://signet.dev/problems/expired","title":"expired","status":401}`)
	refusal := sign(GatewayTag, get, 401, http.Header{"Content-Type": {"application/problem+json"}, "Www-Authenticate": {`Signature realm="signet"`}}, problem)
	add("the gateway's own refusal", get, refusal, problem, "", GatewayTag, "")
	unsigned := newRequest("GET", "https://api.example.com/healthz", "")
	add("a refusal of an unsigned request, no query", unsigned, sign(GatewayTag, unsigned, 401, http.Header{}, nil), nil, "", GatewayTag, "")
	add("no content", get, sign(ResponseTag, get, 204, http.Header{}, nil), nil, "", ResponseTag, "")

	clone := func(resp *http.Response) *http.Response {
		c := *resp
		c.Header = resp.Header.Clone()
		return &c
	}
	add("the body altered", get, clone(ok), []byte(`{"id":"order-8"}`), ReasonDigestMismatch, "", "")
	st := clone(ok)
	st.StatusCode = 404
	add("the status altered", get, st, json200, ReasonBadSignature, "", "")
	d := clone(ok)
	d.Header.Set("Date", "Tue, 14 Nov 2023 23:13:21 GMT")
	add("the Date altered", get, d, json200, ReasonBadSignature, "", "a man in the middle moving the clock")
	c := clone(ok)
	c.Header.Set("Content-Type", "text/html")
	add("Content-Type altered", get, c, json200, ReasonBadSignature, "", "")
	add("an answer to another request", newRequest("GET", "https://api.example.com/v1/orders/7?expand=items", "n-2"), ok, json200, ReasonBadSignature, "", "the same request with another nonce: its signature differs")
	add("an answer to another path", newRequest("GET", "https://api.example.com/v1/orders/8?expand=items", "n-1"), ok, json200, ReasonBadSignature, "", "")
	u := clone(ok)
	u.Header.Del("Signature")
	u.Header.Del("Signature-Input")
	add("unsigned", get, u, json200, ReasonMissingSignature, "", "")
	other := clone(ok)
	other.Header.Set("Signature-Input", strings.Replace(ok.Header.Get("Signature-Input"), ResponseTag, "upstream", 1))
	add("another tag only", get, other, json200, ReasonMissingSignature, "", "")
	add("content its signature does not cover", get, sign(ResponseTag, get, 200, http.Header{}, nil), []byte("injected"), ReasonMissingComponent, "", "")
	return out
}

func TestSignetVectors(t *testing.T) {
	for name, data := range map[string]any{
		"presign.json":   makePresignVectors(t),
		"responses.json": makeResponseVectors(t),
	} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(data); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		path := "../testdata/signet/" + name
		if *update {
			if err := os.MkdirAll("../testdata/signet", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		old, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(old, b) {
			t.Errorf("%s is not current (%v): go test ./httpsig -run TestSignetVectors -update", path, err)
		}
	}
}

// TestSignetResponseVectors checks the response vectors with this
// package, as the other implementations check them.
func TestSignetResponseVectors(t *testing.T) {
	data, err := os.ReadFile("../testdata/signet/responses.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []responseVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			set, err := ParseJWKS([]byte(v.Keys))
			if err != nil {
				t.Fatal(err)
			}
			keys := KeyMap{}
			for kid, k := range set {
				keys[kid] = k.VerifyingKey
			}
			req, _ := http.NewRequest(v.Request.Method, v.Request.URL, nil)
			for _, h := range v.Request.Headers {
				req.Header.Add(h[0], h[1])
			}
			resp := &http.Response{StatusCode: v.Response.Status, Header: http.Header{}, Request: req}
			for _, h := range v.Response.Headers {
				resp.Header.Add(h[0], h[1])
			}
			body, _ := base64.StdEncoding.DecodeString(v.Response.BodyB64)
			res, err := (&ResponseVerifier{Keys: keys}).Verify(t.Context(), resp, body)
			if got, _ := ReasonOf(err); got != v.Want || (v.Want == "" && (err != nil || res.Tag != v.Tag)) {
				t.Errorf("%v (tag %q), want %q (tag %q)", err, res.Tag, v.Want, v.Tag)
			}
		})
	}
}
