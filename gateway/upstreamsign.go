package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
)

// What the gateway's signature on a forwarded request is called.
const (
	// UpstreamLabel is the label of the gateway's signature, beside the
	// client's signatures (which it keeps unless strip_signature is set).
	UpstreamLabel = "signet"
	// UpstreamTag is the tag parameter of the gateway's signature.
	UpstreamTag = "signet-gateway"
)

// errUpstreamSign means a request could not be signed for the upstream,
// and is therefore not forwarded.
var errUpstreamSign = errors.New("gateway: cannot sign the request for the upstream")

// checkSigning returns an error when upstream signing is asked for and
// the gateway has no keys.
func (g *Gateway) checkSigning(on bool) error {
	if on && g.Keyring() == nil {
		return errors.New("gateway: upstream_signing needs the gateway's own keys (gateway_keys, Config.Keyring)")
	}
	return nil
}

// signsUpstream reports whether the requests of rt are signed for the upstream.
func (g *Gateway) signsUpstream(rt *routed) bool {
	if rt == nil {
		return false
	}
	if rt.snap.legacy {
		return g.cfg.UpstreamSigning
	}
	return rt.snap.policy.Settings.UpstreamSigning
}

// bufferPublic reads the body of a request on a public route (one that
// no client signature covers) so that the gateway's signature can cover
// it: the client's Content-Digest, unchecked, is replaced by the
// gateway's. It answers and returns false when the body is over maxBody
// (r.Body is already a MaxBytesReader of it) or breaks off.
func (g *Gateway) bufferPublic(w http.ResponseWriter, r *http.Request, maxBody int64) bool {
	delete(r.Header, "Content-Digest")
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			g.refuseStatus(w, r, http.StatusRequestEntityTooLarge, middleware.ReasonBodyTooLarge, "Request body too large", "the request body is over the limit of this route")
		} else {
			g.refuse(w, r, middleware.ReasonBadBody, "Unreadable body", "the request body broke off")
		}
		return false
	}
	r.ContentLength = int64(len(body))
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if len(body) == 0 {
		r.Body, r.GetBody = http.NoBody, nil
		return true
	}
	d, err := httpsig.ContentDigest(httpsig.DigestSHA256, body)
	if err != nil {
		g.refuseStatus(w, r, http.StatusInternalServerError, middleware.ReasonUnavailable, "Internal error", "the gateway could not digest the body")
		return false
	}
	r.Header["Content-Digest"] = []string{d}
	return true
}

type signErrKey struct{}

// signUpstream signs pr.Out, which rewrite has finished, with the key of
// the gateway's ring that signs now, under the label UpstreamLabel: it
// covers @method, @authority, @path, @query (when there is a query),
// content-type and content-digest (when present; the gateway sets
// Content-Digest for content that has none, or whose field does not
// match it), the X-Signet-* identity fields it set, and X-Request-Id;
// with created, keyid, alg, a nonce and tag UpstreamTag. The client's
// signature fields stay beside it (unless strip_signature), except on a
// public route, where nobody verified them, and when one uses the label
// UpstreamLabel. When it cannot sign, the request is not forwarded
// (roundTrip returns errUpstreamSign).
func (g *Gateway) signUpstream(pr *httputil.ProxyRequest, rt *routed) {
	if !g.signsUpstream(rt) {
		return
	}
	if err := g.sign(pr.Out); err != nil {
		g.signFailures.add(err.Error(), "request_id", pr.In.Header.Get(HeaderRequestID), "error", err.Error())
		pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), signErrKey{}, err))
	}
}

// Components of the gateway's signature, in signing order.
var (
	upMethod        = httpsig.Component{Name: httpsig.Method}
	upAuthority     = httpsig.Component{Name: httpsig.Authority}
	upPath          = httpsig.Component{Name: httpsig.Path}
	upQuery         = httpsig.Component{Name: httpsig.Query}
	upContentType   = httpsig.Component{Name: "content-type"}
	upContentDigest = httpsig.Component{Name: "content-digest"}
	upKeyID         = httpsig.Component{Name: "x-signet-key-id"}
	upOwner         = httpsig.Component{Name: "x-signet-owner"}
	upScopes        = httpsig.Component{Name: "x-signet-scopes"}
	upMetadata      = httpsig.Component{Name: "x-signet-metadata"}
	upRequestID     = httpsig.Component{Name: "x-request-id"}
)

func (g *Gateway) sign(out *http.Request) error {
	ring := g.Keyring()
	if ring == nil {
		return errors.New("gateway: no keyring")
	}
	key, ok := ring.Signer(time.Now())
	if !ok {
		return errors.New("gateway: no key of the keyring signs now (all expired or not yet valid)")
	}
	sk, err := key.Signer()
	if err != nil {
		return err
	}
	h := out.Header
	comps := make([]httpsig.Component, 0, 10)
	comps = append(comps, upMethod, upAuthority, upPath)
	if out.URL.ForceQuery || out.URL.RawQuery != "" {
		comps = append(comps, upQuery)
	}
	if len(h["Content-Type"]) > 0 {
		comps = append(comps, upContentType)
	}
	if out.Body != nil && out.Body != http.NoBody && out.ContentLength != 0 {
		if err := ensureDigest(out); err != nil {
			return err
		}
		comps = append(comps, upContentDigest)
	} else if len(h["Content-Digest"]) > 0 {
		comps = append(comps, upContentDigest) // of no content, as the client sent it
	}
	if len(h[HeaderKeyID]) > 0 {
		comps = append(comps, upKeyID, upOwner, upScopes)
	}
	if len(h[HeaderMetadata]) > 0 {
		comps = append(comps, upMetadata)
	}
	if id := h.Get(HeaderRequestID); id != "" {
		h[HeaderRequestID] = []string{id} // the one withRequestID checked
	}
	comps = append(comps, upRequestID)
	if len(h[HeaderKeyID]) == 0 || labelTaken(h) {
		// A public route's signature fields, never verified, are not
		// passed on (a malformed one would spoil the gateway's); nor are
		// a client's signatures, verified already, under the gateway's
		// label.
		delete(h, "Signature")
		delete(h, "Signature-Input")
	}
	s := httpsig.Signer{Key: sk, KeyID: key.ID, Label: UpstreamLabel, Components: comps, Tag: UpstreamTag}
	return s.SignRequest(out, nil)
}

// ensureDigest makes the Content-Digest field of out match its content,
// which is in memory: verified routes hold it for the digest check,
// public ones for bufferPublic. A client's field that matches stays (its
// signature may cover it); one that does not, or none, is replaced by a
// sha-256 digest.
func ensureDigest(out *http.Request) error {
	if out.GetBody == nil {
		return errors.New("gateway: the body of a signed request is not in memory")
	}
	rc, err := out.GetBody()
	if err != nil {
		return err
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return err
	}
	if lines := out.Header["Content-Digest"]; len(lines) == 1 && httpsig.CheckContentDigest(lines[0], body) == nil {
		return nil
	}
	d, err := httpsig.ContentDigest(httpsig.DigestSHA256, body)
	if err != nil {
		return err
	}
	out.Header["Content-Digest"] = []string{d}
	return nil
}

// labelTaken reports whether a signature of h has the label UpstreamLabel.
func labelTaken(h http.Header) bool {
	in := h["Signature-Input"]
	if len(in) == 0 || !strings.Contains(strings.Join(in, ","), UpstreamLabel) {
		return false
	}
	sigs, err := httpsig.ParseSignatures(h)
	if err != nil {
		return true // not ours to mend: the client's fields go
	}
	for _, s := range sigs {
		if s.Label == UpstreamLabel {
			return true
		}
	}
	return false
}

// signErrOf returns the error that kept req from being signed, if any.
func signErrOf(req *http.Request) error {
	err, _ := req.Context().Value(signErrKey{}).(error)
	if err != nil {
		return errors.Join(errUpstreamSign, err)
	}
	return nil
}

// signFailed answers a request that was not forwarded because it could
// not be signed: 503, the gateway's fault, logged by signUpstream.
func (g *Gateway) signFailed(w http.ResponseWriter, err error) bool {
	if !errors.Is(err, errUpstreamSign) {
		return false
	}
	w.Header().Set("Retry-After", "1")
	g.writeProblem(w, http.StatusServiceUnavailable, string(middleware.ReasonUnavailable), "Service unavailable", "the gateway cannot sign requests for the upstream right now")
	return true
}
