package gateway_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// clientKey is a key as keys.Service resolves it: it knows its owner and
// scopes (a middleware.OwnedKey).
type clientKey struct {
	httpsig.VerifyingKey
	owner  string
	scopes []string
}

func (k clientKey) Owner() string    { return k.owner }
func (k clientKey) Scopes() []string { return k.scopes }

// A gateway in front of an API that trusts the identity fields the gateway
// adds. In production the keys come from a keys.Service and the API listens
// where only the gateway can reach it.
func Example() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s for %s (%s)", r.Method, r.URL.Path, r.Header.Get(gateway.HeaderOwner), r.Header.Get(gateway.HeaderScopes))
	}))
	defer api.Close()
	upstream, _ := url.Parse(api.URL)

	key, _ := httpsig.NewHMACKey([]byte(strings.Repeat("k", 32)))
	g, err := gateway.New(gateway.Config{
		Upstream: upstream,
		Verify: middleware.Options{Verifier: httpsig.Verifier{
			Keys:   httpsig.KeyMap{"sk_acme": clientKey{key, "acme", []string{"orders:read"}}},
			Nonces: memory.New(memory.Options{}),
		}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	gw := httptest.NewServer(g.Handler())
	defer gw.Close()

	signer := &httpsig.Signer{Key: key, KeyID: "sk_acme"}
	req, _ := http.NewRequest("GET", gw.URL+"/v1/orders/7", nil)
	req.Header.Set("X-Signet-Owner", "root") // removed by the gateway
	if err := signer.SignRequest(req, nil); err != nil {
		panic(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 200 GET /v1/orders/7 for acme (orders:read)
}
