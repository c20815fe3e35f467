package httpsig_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay/memory"
)

// A client signs a request in the default profile: Content-Digest for the
// body, then a signature covering the method, authority, path, query,
// Content-Type and Content-Digest, with a fresh nonce.
func ExampleSigner_SignRequest() {
	key, err := httpsig.NewHMACKey([]byte("a 256-bit secret, shared with the server"))
	if err != nil {
		log.Fatal(err)
	}
	signer := &httpsig.Signer{
		Key:   key,
		KeyID: "sk_test_1",
		Now:   func() time.Time { return time.Unix(1700000000, 0) }, // for a stable output
	}

	body := []byte(`{"sku":"A-1","qty":2}`)
	req, err := http.NewRequest(http.MethodPost, "https://api.example.com/v1/orders?customer=42", bytes.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := signer.SignRequest(req, body); err != nil {
		log.Fatal(err)
	}

	fmt.Println("Content-Digest:", req.Header.Get("Content-Digest"))
	// The nonce is random: leave it out of the output.
	input, _, _ := strings.Cut(req.Header.Get("Signature-Input"), ";nonce=")
	fmt.Println("Signature-Input:", input)
	// Output:
	// Content-Digest: sha-256=:08ld4tZtuaBCYDY318ddzbgQxPSl5VMNRQ/9NEsCJjY=:
	// Signature-Input: sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");created=1700000000;keyid="sk_test_1";alg="hmac-sha256"
}

// A server verifies requests against a fixed set of keys and remembers
// their nonces, so that a replayed request is refused.
func ExampleVerifier_VerifyRequest() {
	key, err := httpsig.NewHMACKey([]byte("a 256-bit secret, shared with the server"))
	if err != nil {
		log.Fatal(err)
	}
	verifier := &httpsig.Verifier{
		Keys:   httpsig.KeyMap{"sk_test_1": key},
		Nonces: memory.New(memory.Options{}), // replay/redis when servers share the work
	}

	// What a client sends.
	body := []byte(`{"sku":"A-1","qty":2}`)
	req := httptest.NewRequest(http.MethodPost, "https://api.example.com/v1/orders?customer=42", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := (&httpsig.Signer{Key: key, KeyID: "sk_test_1"}).SignRequest(req, body); err != nil {
		log.Fatal(err)
	}

	// The server reads the body (under a limit, in a real server) and
	// verifies the request; the same request again is a replay.
	for range 2 {
		res, err := verifier.VerifyRequest(req, body)
		if reason, ok := httpsig.ReasonOf(err); ok {
			fmt.Println("refused:", reason)
			continue
		}
		if err != nil {
			log.Fatal(err) // the nonce store could not answer: answer 503
		}
		fmt.Printf("verified: keyid %s, signature %s\n", res.KeyID, res.Label)
	}
	// Output:
	// verified: keyid sk_test_1, signature sig1
	// refused: replayed
}

// A KeyResolverFunc looks keys up wherever they live; it reports a keyid it
// does not know with ErrUnknownKey, and a lookup that failed with any other
// error, which fails the verification closed.
func ExampleKeyResolverFunc() {
	key, err := httpsig.NewHMACKey([]byte("a 256-bit secret, shared with the server"))
	if err != nil {
		log.Fatal(err)
	}
	keys := httpsig.KeyResolverFunc(func(ctx context.Context, keyID string) (httpsig.VerifyingKey, error) {
		if keyID != "sk_test_1" {
			return nil, httpsig.ErrUnknownKey
		}
		return key, nil
	})
	verifier := &httpsig.Verifier{
		Keys:   keys,
		Policy: httpsig.Policy{RequiredParams: []string{"created", "keyid"}}, // no nonce store here
	}

	for _, keyID := range []string{"sk_test_1", "sk_other"} {
		req := httptest.NewRequest(http.MethodGet, "https://api.example.com/v1/orders/7", nil)
		if err := (&httpsig.Signer{Key: key, KeyID: keyID}).SignRequest(req, nil); err != nil {
			log.Fatal(err)
		}
		_, err := verifier.VerifyRequest(req, nil)
		var ve *httpsig.VerifyError
		switch {
		case errors.As(err, &ve):
			fmt.Printf("%s: refused: %s (%s)\n", keyID, ve.Reason, ve.Detail)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Printf("%s: verified\n", keyID)
		}
	}
	// Output:
	// sk_test_1: verified
	// sk_other: refused: unknown-key (no key has this keyid)
}

// A key holder presigns a URL for a browser, which cannot sign; the server
// verifies it and forwards the target without the two parameters.
func ExampleSigner_Presign() {
	key, err := httpsig.NewHMACKey([]byte("a 256-bit secret, shared with the server"))
	if err != nil {
		log.Fatal(err)
	}
	created := time.Unix(1700000000, 0)
	signer := &httpsig.Signer{Key: key, KeyID: "sk_test_1", Now: func() time.Time { return created }}
	u, err := signer.Presign("https://api.example.com/v1/files/7?download=1", httpsig.PresignOptions{Expires: 15 * time.Minute})
	if err != nil {
		log.Fatal(err)
	}

	// The server receives it.
	r := httptest.NewRequest(http.MethodGet, strings.TrimPrefix(u, "https://api.example.com"), nil)
	r.Host = "api.example.com"
	v := &httpsig.Verifier{
		Keys:   httpsig.KeyMap{"sk_test_1": key},
		Scheme: "https",
		Now:    func() time.Time { return created.Add(time.Minute) },
	}
	fmt.Println(httpsig.IsPresigned(r))
	clean, res, err := v.VerifyPresigned(r, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(clean.RequestURI, res.KeyID, res.Expires.Sub(res.Created))
	// Output:
	// true
	// /v1/files/7?download=1 sk_test_1 15m0s
}
