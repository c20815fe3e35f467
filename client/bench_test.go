package client

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/signet-dev/signet/httpsig"
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

// refBody is a 1 KiB JSON body, as in the reference request of DESIGN.md.
func refBody() []byte {
	var b bytes.Buffer
	b.WriteString(`{"customer":42,"items":[`)
	for i := 0; b.Len() < 1024-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"sku":"SKU-00000","qty":1}`)
	}
	b.WriteString(`],"note":"`)
	b.WriteString(strings.Repeat("x", 1024-2-b.Len()))
	b.WriteString(`"}`)
	return b.Bytes()
}

// BenchmarkTransport measures what the Transport adds to a request: the
// copy of the request, the Content-Digest of the body (streamed from
// GetBody), the nonce, the signature base and the signature. The base
// RoundTripper answers at once, without network.
func BenchmarkTransport(b *testing.B) {
	body := refBody()
	for _, k := range testKeys(b) {
		for _, req := range []struct {
			name string
			make func() *http.Request
		}{
			{"POST-1KiB", func() *http.Request {
				r, _ := http.NewRequest("POST", "https://api.example.com/v1/orders?customer=42&expand=items", bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				return r
			}},
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
	body := refBody()
	k := testKeys(b)[0]
	tr := &Transport{Signer: &httpsig.Signer{Key: k.sign, KeyID: "sk_bench_1", Now: localClock}, Base: cannedBase{}}
	r, _ := http.NewRequest("POST", "https://api.example.com/v1/orders?customer=42&expand=items", nil)
	r.Header.Set("Content-Type", "application/json")
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
