package respsign_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
	"github.com/signet-dev/signet/respsign"
)

// A server signs every response: its own refusals as its own answers, the
// application's answers as relayed; and it publishes its key.
func ExampleSigner() {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, err := httpsig.NewSigningKey(httpsig.AlgEd25519, priv)
	if err != nil {
		log.Fatal(err)
	}
	kid, _ := httpsig.JWKThumbprint(pub)
	signer, err := respsign.New(respsign.Options{Signer: &httpsig.ResponseSigner{Key: key, KeyID: kid}})
	if err != nil {
		log.Fatal(err)
	}
	clientKeys := httpsig.KeyMap{} // the keys of the clients, as a key store would resolve them
	verify := middleware.Verify(middleware.Options{Verifier: httpsig.Verifier{Keys: clientKeys, Nonces: memory.New(memory.Options{})}})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })

	keys, err := respsign.KeysHandler([]httpsig.JWK{{KeyID: kid, Key: pub}})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(respsign.KeysPath, keys)
	mux.Handle("/", verify(signer.Relay(app)))
	srv := httptest.NewServer(signer.Wrap(mux))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/v1/orders/7") // unsigned: refused
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	sigs, _ := httpsig.ParseSignatures(resp.Header)
	fmt.Println(resp.StatusCode, sigs[0].Label, sigs[0].Params.Tag)
	// Output: 401 signet signet-gateway
}
