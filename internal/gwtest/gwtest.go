// Package gwtest runs, for tests, a server on loopback arranged as the
// Signet gateway will be once it signs responses and accepts presigned
// URLs (issue 13): respsign.Signer.Wrap outside, then presigned requests
// to httpsig.Verifier.VerifyPresigned and the others to middleware.Verify,
// then respsign.Signer.Relay around the service; the response keys
// published at respsign.KeysPath. The clients' tests (Go, Node.js, Python,
// the CLI) run against it until the gateway does the same.
package gwtest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
	"github.com/signet-dev/signet/respsign"
)

// GatewaySeed is the seed of the test gateway's Ed25519 key.
var GatewaySeed = bytes.Repeat([]byte{0x5e}, ed25519.SeedSize)

// Config says what the test server knows and does.
type Config struct {
	// Keys resolves the keyids of client signatures. Required.
	Keys httpsig.KeyResolver
	// Handler is the service behind the server; nil answers 200 with the
	// verified keyid.
	Handler http.Handler
	// Skew is how far the server's clock is ahead of the real one.
	Skew time.Duration
	// Presign is the policy for presigned URLs.
	Presign httpsig.PresignPolicy
	// MemoryBytes is respsign.Options.MemoryBytes.
	MemoryBytes int64
	// Wrap, if set, wraps the whole server (a man in the middle).
	Wrap func(http.Handler) http.Handler
}

// Server is a running test server.
type Server struct {
	URL string
	// KeyID and Public are the gateway's response key: its keyid (its
	// RFC 7638 thumbprint) and public key.
	KeyID  string
	Public ed25519.PublicKey
	// JWKS is the published key set.
	JWKS []byte
	// Refusals receives the reason of every refusal, if not nil.
	Refusals chan httpsig.Reason
}

// Keys returns a resolver of the gateway's response key.
func (s *Server) Keys() httpsig.KeyMap {
	k, _ := httpsig.NewVerifyingKey(httpsig.AlgEd25519, s.Public)
	return httpsig.KeyMap{s.KeyID: k}
}

// Start starts a test server, stopped when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// New returns the server's handler, for a caller that serves it itself.
func New(cfg Config) (*Server, http.Handler, error) {
	if cfg.Keys == nil {
		return nil, nil, errors.New("gwtest: Config.Keys is nil")
	}
	priv := ed25519.NewKeyFromSeed(GatewaySeed)
	pub := priv.Public().(ed25519.PublicKey)
	kid, err := httpsig.JWKThumbprint(pub)
	if err != nil {
		return nil, nil, err
	}
	sk, err := httpsig.NewSigningKey(httpsig.AlgEd25519, priv)
	if err != nil {
		return nil, nil, err
	}
	now := func() time.Time { return time.Now().Add(cfg.Skew) }
	signer, err := respsign.New(respsign.Options{
		Signer:      &httpsig.ResponseSigner{Key: sk, KeyID: kid, Now: now},
		MemoryBytes: cfg.MemoryBytes,
	})
	if err != nil {
		return nil, nil, err
	}
	keys, err := respsign.KeysHandler([]httpsig.JWK{{KeyID: kid, Key: pub}})
	if err != nil {
		return nil, nil, err
	}
	jwks, _ := httpsig.MarshalJWKS([]httpsig.JWK{{KeyID: kid, Key: pub}})
	s := &Server{KeyID: kid, Public: pub, JWKS: jwks}

	service := cfg.Handler
	if service == nil {
		service = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, _ := middleware.FromContext(r.Context())
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"keyid": id.KeyID, "target": r.RequestURI})
		})
	}
	nonces := memory.New(memory.Options{Now: now})
	observe := func(_ *http.Request, o middleware.Outcome) {
		if o.Reason != "" && s.Refusals != nil {
			s.Refusals <- o.Reason
		}
	}
	verify := middleware.Verify(middleware.Options{Verifier: httpsig.Verifier{Keys: cfg.Keys, Nonces: nonces, Now: now}, Observe: observe})(signer.Relay(service))
	presigned := &httpsig.Verifier{Keys: cfg.Keys, Nonces: nonces, Now: now, Presign: cfg.Presign}
	mux := http.NewServeMux()
	mux.Handle(respsign.KeysPath, keys)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpsig.IsPresigned(r) {
			verify.ServeHTTP(w, r)
			return
		}
		clean, res, err := presigned.VerifyPresigned(r, nil)
		if err != nil {
			reason, ok := httpsig.ReasonOf(err)
			status := reason.Status()
			if !ok {
				reason, status = middleware.ReasonUnavailable, http.StatusServiceUnavailable
			}
			if s.Refusals != nil {
				s.Refusals <- reason
			}
			writeProblem(w, status, reason, err.Error())
			return
		}
		id := &middleware.Identity{KeyID: res.KeyID, Alg: res.Key.Algorithm(), Label: res.Label, Created: res.Created}
		signer.Relay(service).ServeHTTP(w, clean.WithContext(middleware.NewContext(clean.Context(), id)))
	}))
	var h http.Handler = signer.Wrap(mux)
	if cfg.Wrap != nil {
		h = cfg.Wrap(h)
	}
	return s, h, nil
}

func writeProblem(w http.ResponseWriter, status int, reason httpsig.Reason, detail string) {
	body, _ := json.Marshal(middleware.Problem{Type: middleware.DefaultProblemBase + string(reason), Title: string(reason), Status: status, Detail: detail})
	w.Header().Set("Content-Type", "application/problem+json")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Signature realm="signet"`)
	}
	w.WriteHeader(status)
	w.Write(body)
}
