package middleware_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// TestVerifiedBodyReaders checks what the next handler gets of a verified
// request: its identity, its values of the context it came with, and a
// Body and GetBody readers that each read the whole content on their own,
// at once from several goroutines (run with -race), whichever is read
// first; and the request passed on is a copy, the one received untouched.
func TestVerifiedBodyReaders(t *testing.T) {
	key, _ := httpsig.NewHMACKey(bytes.Repeat([]byte("s"), 32))
	signer := &httpsig.Signer{Key: key, KeyID: "sk_1"}
	opts := middleware.Options{Verifier: httpsig.Verifier{
		Keys:   httpsig.KeyMap{"sk_1": ownedKey{key, "acme", []string{"orders:read"}}},
		Nonces: memory.New(memory.Options{}),
	}}
	body := strings.Repeat("0123456789", 300)
	type ctxKey struct{}
	for _, bodyFirst := range []bool{true, false} {
		var received *http.Request
		h := middleware.Verify(opts)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r == received {
				t.Error("the next handler got the request received, not a copy")
			}
			if id, ok := middleware.FromContext(r.Context()); !ok || id.KeyID != "sk_1" || id.Owner != "acme" {
				t.Errorf("identity %+v, %v", id, ok)
			}
			if v := r.Context().Value(ctxKey{}); v != "outer" {
				t.Errorf("the value of the context received is %v", v)
			}
			if r.ContentLength != int64(len(body)) {
				t.Errorf("ContentLength %d", r.ContentLength)
			}
			read := func(rc io.ReadCloser) {
				defer rc.Close()
				b, err := io.ReadAll(rc)
				if err != nil || string(b) != body {
					t.Errorf("read %d bytes, %v", len(b), err)
				}
			}
			if bodyFirst {
				read(r.Body)
			}
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					rc, err := r.GetBody()
					if err != nil {
						t.Error(err)
						return
					}
					read(rc)
				})
			}
			wg.Wait()
			if !bodyFirst {
				read(r.Body)
			}
		}))
		r := httptest.NewRequest("POST", "https://api.example.com/v1/orders", strings.NewReader(body))
		r.Header.Set("Content-Type", "text/plain")
		if err := signer.SignRequest(r, []byte(body)); err != nil {
			t.Fatal(err)
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, "outer"))
		received = r
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if _, ok := middleware.FromContext(r.Context()); ok {
			t.Error("the request received has an identity")
		}
	}
}
