package respsign_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/signet-dev/signet/respsign"
)

// discard is a ResponseWriter that keeps nothing, so that the benchmark
// measures the signer, not a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkWrap serves a response through Signer.Wrap, as a gateway
// does: the content held and hashed, Date set, the header signed
// (Ed25519), the content written; "plain" is the same handler unwrapped.
func BenchmarkWrap(b *testing.B) {
	signer, _ := gatewaySigner(b)
	s, err := respsign.New(respsign.Options{Signer: signer})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/orders/7?expand=items", nil)
	if err := clientSigner(b).SignRequest(req, nil); err != nil {
		b.Fatal(err)
	}
	for _, size := range []struct {
		name string
		n    int
	}{{"small", 64}, {"1MiB", 1 << 20}} {
		body := bytes.Repeat([]byte("x"), size.n)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		})
		for _, tt := range []struct {
			name string
			h    http.Handler
		}{{"plain", h}, {"signed", s.Wrap(h)}} {
			b.Run(size.name+"/"+tt.name, func(b *testing.B) {
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				w := &discard{h: http.Header{}}
				for b.Loop() {
					clear(w.h)
					tt.h.ServeHTTP(w, req)
				}
			})
		}
	}
}
