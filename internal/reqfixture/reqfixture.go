// Package reqfixture holds the reference request of DESIGN.md, which the
// benchmarks and examples of several packages share:
//
//	POST https://api.example.com/v1/orders?customer=42&expand=items
//	Content-Type: application/json
//
// with a 1 KiB JSON body, signed in the default profile (@method
// @authority @path @query content-type content-digest; created keyid alg
// nonce). It uses only the standard library, so that the core package can
// import it in its tests.
package reqfixture

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
)

const (
	// URL is the target of the reference request.
	URL = "https://api.example.com/v1/orders?customer=42&expand=items"
	// ContentType is its Content-Type.
	ContentType = "application/json"
	// BodySize is the length of Body.
	BodySize = 1024
	// KeyID is the keyid the benchmarks sign it with.
	KeyID = "sk_bench_1"
	// Created is the created time, in Unix seconds, of the benchmarks'
	// signatures.
	Created = 1700000000
)

// Body returns the 1 KiB JSON body of an order, a new slice each call.
func Body() []byte {
	var b bytes.Buffer
	b.WriteString(`{"customer":42,"items":[`)
	for i := 0; b.Len() < BodySize-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"sku":"SKU-00000","qty":1}`)
	}
	b.WriteString(`],"note":"`)
	b.WriteString(strings.Repeat("x", BodySize-2-b.Len()))
	b.WriteString(`"}`)
	return b.Bytes()
}

// NewRequest returns the reference request with body as a client builds
// it, ready for a RoundTripper.
func NewRequest(body []byte) *http.Request {
	r, err := http.NewRequest(http.MethodPost, URL, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	r.Header.Set("Content-Type", ContentType)
	return r
}

// Received returns the reference request with body as a server receives
// it: with an origin-form RequestURI and a Host.
func Received(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, URL, bytes.NewReader(body))
	r.RequestURI = r.URL.RequestURI()
	r.Header.Set("Content-Type", ContentType)
	return r
}
