// Package gwtest runs, for tests, the real Signet gateway (gateway.New)
// on loopback, with a keyring of one Ed25519 key (GatewaySeed) that signs
// its responses and publishes at respsign.KeysPath, and presigned URLs
// accepted (GET and HEAD) from every key, in front of a service of the
// test's. The clients' tests (Go, Node.js, Python, the CLI) run against it.
package gwtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/signet-dev/signet/gateway"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/replay/memory"
)

// GatewaySeed is the seed of the test gateway's Ed25519 key.
var GatewaySeed = bytes.Repeat([]byte{0x5e}, ed25519.SeedSize)

// Config says what the test server knows and does.
type Config struct {
	// Keys resolves the keyids of client signatures. Required. Each key
	// gets the scope middleware.ScopePresign, and its keyid as owner.
	Keys httpsig.KeyResolver
	// Handler is the service behind the gateway; nil answers 200 with the
	// verified keyid (X-Signet-Key-Id) and the target it received.
	Handler http.Handler
	// Skew is how far the server's clock is ahead of the real one.
	Skew time.Duration
	// Presign is the policy for presigned URLs.
	Presign httpsig.PresignPolicy
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
	// Gateway is the gateway itself.
	Gateway *gateway.Gateway

	close func()
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
	t.Cleanup(s.close)
	s.URL = srv.URL
	return s
}

// New returns the server's handler, for a caller that serves it itself;
// the service behind runs until the process ends.
func New(cfg Config) (*Server, http.Handler, error) {
	if cfg.Keys == nil {
		return nil, nil, errors.New("gwtest: Config.Keys is nil")
	}
	priv := ed25519.NewKeyFromSeed(GatewaySeed)
	pub := priv.Public().(ed25519.PublicKey)
	kid := keyring.Thumbprint(pub)
	ring := &keyring.Ring{Keys: []keyring.Key{{ID: kid, Private: priv, NotBefore: time.Unix(0, 0)}}}
	jwks, _ := httpsig.MarshalJWKS([]httpsig.JWK{{KeyID: kid, Key: pub}})
	s := &Server{KeyID: kid, Public: pub, JWKS: jwks}

	service := cfg.Handler
	if service == nil {
		service = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"keyid": r.Header.Get(gateway.HeaderKeyID), "target": r.RequestURI})
		})
	}
	up := httptest.NewServer(service)
	s.close = up.Close
	upURL, _ := url.Parse(up.URL)
	now := func() time.Time { return time.Now().Add(cfg.Skew) }
	observe := func(_ *http.Request, o middleware.Outcome) {
		if o.Reason != "" && s.Refusals != nil {
			s.Refusals <- o.Reason
		}
	}
	g, err := gateway.New(gateway.Config{
		Upstream: upURL,
		Keyring:  ring,
		Verify: middleware.Options{
			Verifier: httpsig.Verifier{Keys: presigners{cfg.Keys}, Nonces: memory.New(memory.Options{Now: now}), Now: now, Presign: cfg.Presign},
			Observe:  observe,
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		up.Close()
		return nil, nil, err
	}
	s.Gateway = g
	h := g.Handler()
	if cfg.Wrap != nil {
		h = cfg.Wrap(h)
	}
	return s, h, nil
}

// presigners gives every key the scope presign.
type presigners struct{ keys httpsig.KeyResolver }

func (p presigners) ResolveKey(ctx context.Context, id string) (httpsig.VerifyingKey, error) {
	k, err := p.keys.ResolveKey(ctx, id)
	if err != nil {
		return nil, err
	}
	return ownedKey{k, id}, nil
}

type ownedKey struct {
	httpsig.VerifyingKey
	owner string
}

func (k ownedKey) Owner() string    { return k.owner }
func (k ownedKey) Scopes() []string { return []string{middleware.ScopePresign} }
