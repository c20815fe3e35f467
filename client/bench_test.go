package client

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/reqfixture"
)

// cannedBase answers every request with the same response, without
// network, so that a benchmark measures the Transport alone.
type cannedBase struct{}

func (cannedBase) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// BenchmarkTransport measures what the Transport adds to a request: the
// copy of the request, the Content-Digest of the body (streamed from
// GetBody), the nonce, the signature base and the signature. The base
// RoundTripper answers at once, without network.
func BenchmarkTransport(b *testing.B) {
	body := reqfixture.Body()
	for _, k := range testKeys(b) {
		for _, req := range []struct {
			name string
			make func() *http.Request
		}{
			{"POST-1KiB", func() *http.Request { return reqfixture.NewRequest(body) }},
			{"GET", func() *http.Request {
				r, _ := http.NewRequest("GET", "https://api.example.com/v1/orders/7", nil)
				return r
			}},
		} {
			b.Run(k.name+"/"+req.name, func(b *testing.B) {
				tr := &Transport{Signer: &httpsig.Signer{Key: k.sign, KeyID: "sk_bench_1", Now: localClock}, Base: cannedBase{}}
				r := req.make()
				b.ReportAllocs()
				for b.Loop() {
					resp, err := tr.RoundTrip(r)
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
				}
			})
		}
	}
}

// BenchmarkTransportBuffered is BenchmarkTransport's POST for a body
// without GetBody, which is read into memory once.
func BenchmarkTransportBuffered(b *testing.B) {
	body := reqfixture.Body()
	k := testKeys(b)[0]
	tr := &Transport{Signer: &httpsig.Signer{Key: k.sign, KeyID: "sk_bench_1", Now: localClock}, Base: cannedBase{}}
	r := reqfixture.NewRequest(nil)
	r.GetBody = nil
	rd := bytes.NewReader(body)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		r.Body, r.ContentLength = io.NopCloser(rd), int64(len(body))
		resp, err := tr.RoundTrip(r)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
