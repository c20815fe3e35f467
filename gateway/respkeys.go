package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/respsign"
)

// KeysPath is where the gateway publishes the public keys of its ring
// (respsign.KeysPath), on both listeners.
const KeysPath = respsign.KeysPath

// ReasonNoResponseKey (503): the gateway has a keyring but no key of it
// signs at this time (all expired, or none started), so it cannot answer
// as it promised: it fails closed.
const ReasonNoResponseKey httpsig.Reason = "no-response-key"

// responseKeys is a keyring in force, with a response signer per key.
type responseKeys struct {
	ring    *keyring.Ring
	signers map[string]*respsign.Signer // by key id
}

type signerKey struct{}

// SetKeyring puts r in force: the gateway signs its responses with the
// key of r that signs at each moment (keyring.Ring.Signer) and publishes
// r's public keys at KeysPath. Responses under way finish with the key
// they started with. A nil r stops signing and publishing.
func (g *Gateway) SetKeyring(r *keyring.Ring) error {
	if r == nil {
		g.respKeys.Store(nil)
		return nil
	}
	rk := &responseKeys{ring: r, signers: make(map[string]*respsign.Signer, len(r.Keys))}
	for i := range r.Keys {
		k := &r.Keys[i]
		sk, err := k.Signer()
		if err != nil {
			return fmt.Errorf("gateway: key %s of the keyring: %w", k.ID, err)
		}
		s, err := respsign.New(respsign.Options{
			Signer:  &httpsig.ResponseSigner{Key: sk, KeyID: k.ID, Now: g.now},
			OnError: g.responseSignError,
		})
		if err != nil {
			return err
		}
		rk.signers[k.ID] = s
	}
	if _, ok := r.Signer(g.now()); !ok {
		return errors.New("gateway: no key of the keyring signs now (all expired, or none started yet)")
	}
	g.respKeys.Store(rk)
	return nil
}

// Keyring returns the keyring in force, or nil.
func (g *Gateway) Keyring() *keyring.Ring {
	if rk := g.respKeys.Load(); rk != nil {
		return rk.ring
	}
	return nil
}

func (g *Gateway) responseSignError(r *http.Request, err error) {
	g.metrics.responseSignErrors.Inc()
	g.log.Error("response not signed", "request_id", r.Header.Get(HeaderRequestID), "method", r.Method, "path", r.URL.Path, "error", err.Error())
}

// signing returns next with its responses signed by the key in force, as
// the gateway's own unless relayed marks them the upstream's; with no
// keyring, next itself.
func (g *Gateway) signing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rk := g.respKeys.Load()
		if rk == nil {
			next.ServeHTTP(w, r)
			return
		}
		k, ok := rk.ring.Signer(g.now())
		if !ok {
			g.writeProblem(w, http.StatusServiceUnavailable, string(ReasonNoResponseKey), "No response key", "the gateway has no signing key in force; retry later")
			g.observe(r, middleware.Outcome{Status: http.StatusServiceUnavailable, Reason: ReasonNoResponseKey, Err: errors.New("gateway: no key of the keyring signs now")})
			return
		}
		s := rk.signers[k.ID]
		s.Wrap(next).ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), signerKey{}, s)))
	})
}

// relayed serves the proxy with its responses marked as the upstream's.
func (g *Gateway) relayed(w http.ResponseWriter, r *http.Request) {
	if s, ok := r.Context().Value(signerKey{}).(*respsign.Signer); ok {
		s.Relay(g.proxy).ServeHTTP(w, r)
		return
	}
	g.proxy.ServeHTTP(w, r)
}

// modifyResponse signs a 101 that the proxy writes on the hijacked
// connection.
func modifyResponse(resp *http.Response) error {
	if resp.Request == nil {
		return nil
	}
	if s, ok := resp.Request.Context().Value(signerKey{}).(*respsign.Signer); ok {
		return s.ModifyResponse(resp)
	}
	return nil
}

// serveKeys serves the published keys of the ring in force as a JWK set.
func (g *Gateway) serveKeys(w http.ResponseWriter, r *http.Request) {
	rk := g.respKeys.Load()
	if rk == nil {
		g.writeProblem(w, http.StatusNotFound, string(ReasonNoRoute), "No keys", "this gateway signs nothing and publishes no keys")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		g.writeProblem(w, http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed", "the key set is read with GET")
		return
	}
	body, err := rk.ring.JWKS(g.now())
	if err != nil {
		g.writeProblem(w, http.StatusInternalServerError, "internal", "Internal error", "the key set could not be written")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// isKeysRequest reports whether r asks for the published keys: its target
// is KeysPath exactly, with no query.
func isKeysRequest(r *http.Request) bool {
	return r.RequestURI == KeysPath || r.RequestURI == "" && r.URL.Path == KeysPath && r.URL.RawQuery == ""
}
