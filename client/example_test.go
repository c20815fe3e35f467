package client_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/signet-dev/signet/client"
	"github.com/signet-dev/signet/httpsig"
)

// A client signs its requests with the key `signet keygen --out client`
// wrote; the server checks them with the public key.
func ExampleNewTransport() {
	dir, _ := os.MkdirTemp("", "signet-example")
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "client.key")
	pub := writeKeyPair(keyFile)

	// The server side, for the example: what `signet serve` or the
	// middleware package do.
	verifier := &httpsig.Verifier{Keys: httpsig.KeyMap{"sk_test_1": pub}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := verifier.VerifyRequest(r, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %s, you sent %s", res.KeyID, body)
	}))
	defer srv.Close()

	t, err := client.NewTransport("sk_test_1", keyFile, nil)
	if err != nil {
		log.Fatal(err)
	}
	c := &http.Client{Transport: t}
	resp, err := c.Post(srv.URL+"/v1/orders?customer=42", "application/json", strings.NewReader(`{"sku":"A-1"}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status)
	fmt.Println(string(body))
	// Output:
	// 200 OK
	// hello sk_test_1, you sent {"sku":"A-1"}
}

// A Transport made by hand covers the components it is told to, tags its
// signatures, and checks the gateway's signature on every response, with
// the keys the gateway publishes (fetched once, over https).
func ExampleTransport() {
	key, err := client.LoadKey("client.key", httpsig.AlgEd25519)
	if err != nil {
		log.Fatal(err)
	}
	components, err := httpsig.ParseComponents(`@method @authority @path @query content-type content-digest "x-request-id"`)
	if err != nil {
		log.Fatal(err)
	}
	c := &http.Client{Transport: &client.Transport{
		Signer: &httpsig.Signer{
			Key:        key,
			KeyID:      "sk_live_4f2a",
			Components: components,
			Tag:        "orders-app",
		},
		GatewayKeys:            &client.JWKS{URL: "https://api.example.com/.well-known/signet-keys"},
		RequireSignedResponses: true,
	}}
	resp, err := c.Get("https://api.example.com/v1/orders/7")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	// The content is checked as it is read: an error instead of io.EOF
	// means it is not what the gateway signed.
	if _, err := io.ReadAll(resp.Body); err != nil {
		log.Fatal(err)
	}
}

// A presigned URL lets a browser fetch what it cannot sign: an <img>, a
// download link, a WebSocket.
func ExamplePresign() {
	u, err := client.Presign("sk_live_4f2a", "client.key", "https://api.example.com/v1/files/report.pdf", httpsig.PresignOptions{
		Expires:   15 * time.Minute,
		SingleUse: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("<a href=%q>report</a>\n", u)
}

// writeKeyPair writes an Ed25519 private key as `signet keygen` does and
// returns the public key.
func writeKeyPair(path string) httpsig.VerifyingKey {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		log.Fatal(err)
	}
	k, _ := httpsig.NewVerifyingKey(httpsig.AlgEd25519, pub)
	return k
}
