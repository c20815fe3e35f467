package httpsig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/reqfixture"
)

// BenchmarkSignResponse signs a response as a Signet server does: the
// Content-Digest of its content, Date, and an Ed25519 signature over the
// status, the fields and the request's method, path, query and signature.
// "floor" is what it cannot avoid: SHA-256 of the content and an Ed25519
// signature of a base of the same size.
func BenchmarkSignResponse(b *testing.B) {
	req := reqfixture.NewRequest(reqfixture.Body())
	hk, _ := NewHMACKey(bytes.Repeat([]byte{7}, 32))
	if err := benchSigner(hk).SignRequest(req, reqfixture.Body()); err != nil {
		b.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	key, _ := NewSigningKey(AlgEd25519, priv)
	s := &ResponseSigner{Key: key, KeyID: "gw-1", Now: func() time.Time { return time.Unix(reqfixture.Created, 0) }}
	for _, size := range []struct {
		name string
		n    int
	}{{"small", 64}, {"1MiB", 1 << 20}} {
		body := bytes.Repeat([]byte("x"), size.n)
		resp := &http.Response{StatusCode: 200, Request: req, Header: http.Header{"Content-Type": {"application/json"}}}
		if err := s.SignResponse(resp, body); err != nil {
			b.Fatal(err)
		}
		sigs, _ := ParseSignatures(resp.Header)
		base, _ := SignatureBase(&Message{Request: req, Response: resp}, &sigs[0].Params)
		b.Run(size.name, func(b *testing.B) {
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			for b.Loop() {
				resp.Header = http.Header{"Content-Type": {"application/json"}}
				if err := s.SignResponse(resp, body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(size.name+"/floor", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				sum := sha256.Sum256(body)
				if ed25519.Sign(priv, base) == nil || sum[0] == 0 && sum[1] == 0 && sum[2] == 0 {
					b.Fatal("no signature")
				}
			}
		})
	}
}

// BenchmarkVerifyStream verifies a signed 1 MiB response as a client
// reads it: the header first, then the content through the checking
// reader.
func BenchmarkVerifyStream(b *testing.B) {
	f := newResponseFixture(b)
	body := bytes.Repeat([]byte("x"), 1<<20)
	resp := f.response(b, 200, nil, body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if _, err := f.verifier.VerifyStream(context.Background(), resp); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
	}
}
