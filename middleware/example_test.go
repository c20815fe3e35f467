package middleware_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// clientKey is a key as a key store resolves it: it knows its owner and
// scopes (a middleware.OwnedKey).
type clientKey struct {
	httpsig.VerifyingKey
	owner  string
	scopes []string
}

func (k clientKey) Owner() string    { return k.owner }
func (k clientKey) Scopes() []string { return k.scopes }

// Verify and RequireScopes on a ServeMux: every route needs a signature,
// and each its own scope.
func Example() {
	secret := []byte(strings.Repeat("k", 32)) // from signet keys create
	key, _ := httpsig.NewHMACKey(secret)
	keys := httpsig.KeyResolverFunc(func(_ context.Context, id string) (httpsig.VerifyingKey, error) {
		if id != "sk_acme" {
			return nil, httpsig.ErrUnknownKey
		}
		return clientKey{key, "acme", []string{"orders:read"}}, nil
	})

	opts := middleware.Options{Verifier: httpsig.Verifier{Keys: keys, Nonces: memory.New(memory.Options{})}}
	verify := middleware.Verify(opts)
	order := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.FromContext(r.Context())
		fmt.Fprintf(w, "order %s for %s", r.PathValue("id"), id.Owner)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /v1/orders/{id}", verify(middleware.RequireScopes(opts, "orders:read")(order)))
	mux.Handle("DELETE /v1/orders/{id}", verify(middleware.RequireScopes(opts, "orders:write")(order)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	signer := &httpsig.Signer{Key: key, KeyID: "sk_acme"}
	for _, method := range []string{"GET", "DELETE"} {
		req, _ := http.NewRequest(method, srv.URL+"/v1/orders/7", nil)
		if err := signer.SignRequest(req, nil); err != nil {
			panic(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(method, resp.StatusCode, resp.Header.Get("Content-Type"))
		if resp.StatusCode == http.StatusOK {
			fmt.Println(string(body))
		}
	}
	// Output:
	// GET 200 text/plain; charset=utf-8
	// order 7 for acme
	// DELETE 403 application/problem+json
}
