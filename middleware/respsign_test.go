package middleware_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
	"github.com/signet-dev/signet/respsign"
)

// TestResponseSignerAndPresigned mounts Verify with a response signer
// and presigned URLs accepted, and checks that the application's answers
// are signed as relayed, the middleware's refusals as its own, and that
// presigned requests reach the application with the clean target, from
// keys with the scope only.
func TestResponseSignerAndPresigned(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	sk, _ := httpsig.NewSigningKey(httpsig.AlgEd25519, priv)
	vk, _ := httpsig.NewVerifyingKey(httpsig.AlgEd25519, priv.Public())
	rs, err := respsign.New(respsign.Options{Signer: &httpsig.ResponseSigner{Key: sk, KeyID: "server"}})
	if err != nil {
		t.Fatal(err)
	}
	hk, _ := httpsig.NewHMACKey(bytes.Repeat([]byte("p"), 32))
	keys := httpsig.KeyResolverFunc(func(_ context.Context, id string) (httpsig.VerifyingKey, error) {
		switch id {
		case "sk_presign":
			return ownedKey{hk, "acme", []string{middleware.ScopePresign}}, nil
		case "sk_plain":
			return ownedKey{hk, "acme", []string{"files:read"}}, nil
		}
		return nil, httpsig.ErrUnknownKey
	})
	seen := make(chan string, 1)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.RequestURI + " " + r.URL.RawQuery
		io.WriteString(w, "the file")
	})
	mount := func(presigned bool) *httptest.Server {
		opts := middleware.Options{
			Verifier:       httpsig.Verifier{Keys: keys, Nonces: memory.New(memory.Options{})},
			ResponseSigner: rs, Presigned: presigned,
		}
		srv := httptest.NewServer(middleware.Verify(opts)(app))
		t.Cleanup(srv.Close)
		return srv
	}
	on, off := mount(true), mount(false)
	rv := &httpsig.ResponseVerifier{Keys: httpsig.KeyMap{"server": vk}}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res, err := rv.Verify(context.Background(), resp, body)
		if err != nil {
			t.Fatalf("%s: %d %s: %v", u, resp.StatusCode, body, err)
		}
		return resp.StatusCode, res.Tag
	}
	presign := func(srv *httptest.Server, keyID, target string) string {
		u, err := (&httpsig.Signer{Key: hk, KeyID: keyID}).Presign(srv.URL+target, httpsig.PresignOptions{Expires: time.Minute, SingleUse: true})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	u := presign(on, "sk_presign", "/files/7?size=large&v=2")
	if status, tag := get(u); status != 200 || tag != httpsig.ResponseTag {
		t.Fatalf("presigned: %d %s", status, tag)
	}
	if got := <-seen; got != "/files/7?size=large&v=2 size=large&v=2" {
		t.Fatalf("the application saw %q", got)
	}
	for _, tt := range []struct {
		name, url string
		status    int
	}{
		{"used again", u, 401},
		{"key without the scope", presign(on, "sk_plain", "/files/7"), 403},
		{"presigned not accepted", presign(off, "sk_presign", "/files/7"), 403},
		{"unsigned", on.URL + "/files/7", 401},
	} {
		if status, tag := get(tt.url); status != tt.status || tag != httpsig.GatewayTag {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, tag, tt.status, httpsig.GatewayTag)
		}
	}
	select {
	case got := <-seen:
		t.Fatalf("a refused request reached the application: %s", got)
	default:
	}
}
