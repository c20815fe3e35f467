// Package middleware authenticates requests to a net/http server with
// RFC 9421 HTTP Message Signatures.
//
// [Verify] returns a middleware in the func(http.Handler) http.Handler
// shape. It checks the signatures of a request with an [httpsig.Verifier]
// and rejects replayed nonces before it reads any of the body; only then
// does it read the body (a client waiting for 100 Continue gets it now),
// under a size limit and a budget of body bytes held at once, and check
// it against the Content-Digest field. The next handler gets the request
// with its body intact, each covered field as the one value that was
// verified, and the authenticated [Identity] in its context
// ([FromContext]). [RequireScopes] guards routes by scope.
//
// Refusals are RFC 9457 problem+json responses whose type ends in the
// reason code, with a Date field for clock correction: 401 (with an
// Accept-Signature field saying what to sign), 403 for insufficient-scope,
// 400 for a request a signature cannot cover unambiguously, 413 for a body
// over the limit, and 503 when the key store or the nonce store cannot
// answer or the body budget is spent (fail closed: nothing is let
// through). A refused request's body is not read: on HTTP/1 its
// connection is closed.
package middleware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/respsign"
)

// DefaultMaxBodyBytes is the body size limit of a zero Options.
const DefaultMaxBodyBytes = 10 << 20

// DefaultProblemBase prefixes reason codes to make problem type URIs.
const DefaultProblemBase = "https://signet.dev/problems/"

// DefaultBodyBudget is the body budget of a zero Options.
const DefaultBodyBudget = 64 << 20

// Reasons of refusals that are not about a signature.
const (
	// ReasonBodyTooLarge (413): the body is over Options.MaxBodyBytes.
	ReasonBodyTooLarge httpsig.Reason = "body-too-large"
	// ReasonBadBody (400): the body broke off or outran its length.
	ReasonBadBody httpsig.Reason = "unreadable-body"
	// ReasonUnavailable (503, with Retry-After): a key or nonce store
	// could not answer, or the body budget is spent.
	ReasonUnavailable httpsig.Reason = "unavailable"
	// ReasonInvalidTarget (400): the request target has a fragment, or a
	// gateway cannot pass it on as it was signed.
	ReasonInvalidTarget httpsig.Reason = "invalid-target"
	// ReasonInvalidHost (400): the Host field is not a plain host and
	// port (an IPv6 zone, percent-encoding, user information).
	ReasonInvalidHost httpsig.Reason = "invalid-host"
	// ReasonHopByHop (400): a signature covers a field that a proxy
	// removes, because the Connection field names it or it is hop-by-hop
	// by definition.
	ReasonHopByHop httpsig.Reason = "hop-by-hop-field"
	// ReasonInvalidField (400): a covered field has several lines that
	// cannot be passed on as the one value that was verified.
	ReasonInvalidField httpsig.Reason = "invalid-field"
	// ReasonTrailers (400): the request has trailer fields.
	ReasonTrailers httpsig.Reason = "trailers-not-accepted"
)

// Options configures [Verify]. Zero values are the documented defaults.
type Options struct {
	// Verifier checks the signatures: its Policy says what they must
	// cover and how fresh they must be (the zero value is Signet's default
	// profile), Keys resolves keyids (required), Nonces remembers nonces
	// (required unless the policy requires none: replay protection is not
	// optional by accident). Its Debug mode adds the signature base the
	// server built to refusals, which tells callers what the server would
	// accept: never in production. Its Now also dates refusals.
	Verifier httpsig.Verifier
	// MaxBodyBytes bounds the body read for the Content-Digest check;
	// zero means DefaultMaxBodyBytes. Larger bodies get 413.
	MaxBodyBytes int64
	// BodyBudget bounds the bytes of request bodies held in memory at
	// once by this middleware, counted from their declared length (or as
	// they arrive when the length is unknown) until the next handler
	// returns; a request that would exceed it gets 503 unavailable with
	// Retry-After. Zero means DefaultBodyBudget; a budget below
	// MaxBodyBytes is raised to it, so that every body under the limit
	// can pass alone.
	BodyBudget int64
	// Budget, if set, is a body budget shared with other middlewares (the
	// routes of a gateway, each verified with its own settings); it
	// replaces BodyBudget.
	Budget *Budget
	// ProblemBase prefixes reason codes in problem types; empty means
	// DefaultProblemBase.
	ProblemBase string
	// Realm names the protection space in WWW-Authenticate; empty means
	// "signet".
	Realm string
	// Observe, if set, is called once per request with its outcome, for
	// logs and metrics.
	Observe func(r *http.Request, o Outcome)
	// Authorize, if set, decides whether the verified caller may make the
	// request, before its body is read: it returns "" to let it through,
	// or the detail of a 403 insufficient-scope refusal.
	Authorize func(r *http.Request, id *Identity) string
	// ResponseSigner, if set, signs every response (docs/signed-responses.md):
	// the middleware's refusals as the server's own (tag signet-gateway),
	// the next handler's responses as relayed (tag signet-response), so
	// that a client never takes the application's 401 for a refusal of
	// the middleware. Verify then wraps the next handler in
	// ResponseSigner.Wrap and ResponseSigner.Relay; nil signs nothing.
	ResponseSigner *respsign.Signer
	// Presigned accepts presigned URLs (docs/presigned-urls.md): a request
	// whose query holds signet-input or signet-sig is verified with
	// Verifier.VerifyPresigned (its Presign policy says which methods and
	// lifetimes), from keys with the scope ScopePresign or
	// ScopePresignOnly, and passed on with those two parameters removed
	// from its target. A presigned request carrying content is refused:
	// the URL's signature cannot cover it. When Presigned is false, such a
	// request is refused (403), never passed on.
	Presigned bool
}

// Scopes of presigned URLs.
const (
	// ScopePresign lets a key's presigned URLs be accepted (besides its
	// signed requests).
	ScopePresign = "presign"
	// ScopePresignOnly restricts a key to presigned URLs: its requests
	// signed in header fields are refused (403 insufficient-scope). It is
	// the scope for the component that makes URLs for browsers.
	ScopePresignOnly = "presign-only"
)

// withDefaults returns o with its zero values replaced by the defaults.
func (o Options) withDefaults() Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.BodyBudget <= 0 {
		o.BodyBudget = DefaultBodyBudget
	}
	o.BodyBudget = max(o.BodyBudget, o.MaxBodyBytes)
	if o.ProblemBase == "" {
		o.ProblemBase = DefaultProblemBase
	}
	if o.Realm == "" {
		o.Realm = "signet"
	}
	return o
}

// Outcome is what became of one request.
type Outcome struct {
	// Status is the status the middleware answered with, or 0 when the
	// request was passed on.
	Status int
	// Reason is empty when the request was passed on.
	Reason httpsig.Reason
	// KeyID is the keyid of the signature, when one was read.
	KeyID string
	// Err is the error behind a refusal or a 503.
	Err error
	// Elapsed is the time spent reading the body and verifying.
	Elapsed time.Duration
}

// Identity is the authenticated caller of a request.
type Identity struct {
	KeyID   string
	Owner   string
	Scopes  []string
	Alg     httpsig.Algorithm
	Label   string
	Created time.Time
}

// HasScope reports whether the identity holds scope.
func (id *Identity) HasScope(scope string) bool {
	for _, s := range id.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

type contextKey struct{ name string }

var identityKey = &contextKey{"identity"}

// FromContext returns the identity Verify put in ctx.
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey).(*Identity)
	return id, ok
}

// NewContext returns ctx carrying id, for tests of handlers behind Verify.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey, id)
}

// verifiedContext is the context Verify passes a request on with: the
// request's, with the identity as the value of identityKey; with the
// request passed on (a shallow copy of the one received) and what its
// body is read from. One allocation for what would otherwise take six
// (the Identity, context.WithValue, Request.WithContext, and the
// bytes.Readers of the body and of the first GetBody).
type verifiedContext struct {
	context.Context
	id   Identity
	body verifiedBody
	req  http.Request
}

// Value returns the identity for identityKey, and the value of the
// context it extends for any other key.
func (c *verifiedContext) Value(key any) any {
	if key == identityKey {
		return &c.id
	}
	return c.Context.Value(key)
}

// verifiedBody hands out readers of a verified body: an io.NopCloser of
// a *bytes.Reader, which net/http sends with the header in one write,
// knowing its content in memory.
type verifiedBody struct {
	data []byte
	// first is the reader of the request's Body; spare that of the first
	// GetBody (a proxy's copy of the request), taken once (spareTaken).
	first, spare bytes.Reader
	spareTaken   atomic.Bool
}

// open returns the Body of the request of data.
func (b *verifiedBody) open(data []byte) io.ReadCloser {
	if len(data) == 0 {
		return http.NoBody
	}
	b.data = data
	b.first.Reset(data)
	return io.NopCloser(&b.first)
}

// getBody is the request's GetBody: a new reader of the body each time.
func (b *verifiedBody) getBody() (io.ReadCloser, error) {
	if len(b.data) == 0 {
		return http.NoBody, nil
	}
	if b.spareTaken.CompareAndSwap(false, true) {
		b.spare.Reset(b.data)
		return io.NopCloser(&b.spare), nil
	}
	return bodyOf(b.data), nil
}

// An OwnedKey is a verifying key that knows whom it belongs to. When the
// key resolver returns one, the [Identity] carries its owner and scopes;
// the keys of keys.Service are OwnedKeys.
type OwnedKey interface {
	httpsig.VerifyingKey
	// Owner returns the id of the client or user the key belongs to.
	Owner() string
	// Scopes returns the key's scopes; the caller must not modify them.
	Scopes() []string
}

type verifier struct {
	opts   Options
	budget *budget
	next   http.Handler
}

// Verify returns a middleware that lets through only requests whose
// signatures verify. It panics if opts.Verifier.Keys is nil, or
// opts.Verifier.Nonces is nil while the policy requires nonces.
func Verify(opts Options) func(http.Handler) http.Handler {
	if opts.Verifier.Keys == nil {
		panic("middleware: Options.Verifier.Keys is nil")
	}
	if opts.Verifier.Nonces == nil && opts.Verifier.Policy.RequiresNonce() {
		panic("middleware: Options.Verifier.Nonces is nil but the policy requires nonces; use replay/memory or replay/redis")
	}
	opts = opts.withDefaults()
	b := &NewBudget(opts.BodyBudget).b
	if opts.Budget != nil {
		b = &opts.Budget.b
	}
	if opts.Verifier.Debug {
		slog.Warn("middleware: debug mode is on: refusals show clients the signature base the server expects; never use it in production")
	}
	return func(next http.Handler) http.Handler {
		if s := opts.ResponseSigner; s != nil {
			return s.Wrap(&verifier{opts: opts, budget: b, next: s.Relay(next)})
		}
		return &verifier{opts: opts, budget: b, next: next}
	}
}

func (mw *verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if ref := checkRequest(r); ref != nil {
		mw.refuse(w, r, ref, start)
		return
	}
	if httpsig.IsPresigned(r) {
		mw.servePresigned(w, r, start)
		return
	}
	res, err := mw.verifyHeader(r)
	if err != nil {
		mw.refuse(w, r, verifyRefusal(err), start)
		return
	}
	if name := coveredHopByHop(r.Header, res.Covered); name != "" {
		mw.refuse(w, r, &refusal{
			status: http.StatusBadRequest, reason: ReasonHopByHop, keyID: res.KeyID, unread: true,
			detail: "the signature covers " + strconv.Quote(name) + ", which the Connection field (or HTTP itself) makes hop-by-hop: a proxy would remove it",
		}, start)
		return
	}
	if name := combineCovered(r.Header, res.Covered); name != "" {
		mw.refuse(w, r, &refusal{
			status: http.StatusBadRequest, reason: ReasonInvalidField, keyID: res.KeyID, unread: true,
			detail: "the covered field " + strconv.Quote(name) + " has several lines, the last one empty: the value they make cannot be passed on as one line",
		}, start)
		return
	}
	vc := &verifiedContext{id: Identity{KeyID: res.KeyID, Alg: res.Key.Algorithm(), Label: res.Label, Created: res.Created}}
	id := &vc.id
	if o, ok := res.Key.(OwnedKey); ok {
		id.Owner, id.Scopes = o.Owner(), o.Scopes()
	}
	if id.HasScope(ScopePresignOnly) {
		mw.refuse(w, r, &refusal{
			status: http.StatusForbidden, reason: httpsig.ReasonInsufficientScope, keyID: res.KeyID, label: res.Label, unread: true,
			detail: "the key has the scope " + strconv.Quote(ScopePresignOnly) + ": it signs presigned URLs only",
		}, start)
		return
	}
	if mw.opts.Authorize != nil {
		if detail := mw.opts.Authorize(r, id); detail != "" {
			mw.refuse(w, r, &refusal{
				status: http.StatusForbidden, reason: httpsig.ReasonInsufficientScope, keyID: res.KeyID, label: res.Label, unread: true,
				detail: detail, err: errors.New("middleware: " + detail),
			}, start)
			return
		}
	}
	body, held, ref := mw.readBody(r)
	defer mw.budget.give(held)
	if ref != nil {
		ref.keyID = res.KeyID
		mw.refuse(w, r, ref, start)
		return
	}
	if len(r.Trailer) > 0 {
		mw.refuse(w, r, &refusal{status: http.StatusBadRequest, reason: ReasonTrailers, keyID: res.KeyID, detail: trailersDetail, err: errTrailers}, start)
		return
	}
	if res.ContentDigest != "" {
		if err := httpsig.CheckContentDigest(res.ContentDigest, body); err != nil {
			ref := verifyRefusal(err)
			ref.label, ref.keyID, ref.unread = res.Label, res.KeyID, false
			mw.refuse(w, r, ref, start)
			return
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body.Close()
	}
	vc.Context = r.Context()
	// WithContext's copy stays on the stack: the one passed on is vc's.
	vc.req = *r.WithContext(vc)
	r = &vc.req
	r.Body = vc.body.open(body)
	r.ContentLength = int64(len(body))
	r.GetBody = vc.body.getBody
	if mw.opts.Observe != nil {
		mw.opts.Observe(r, Outcome{KeyID: res.KeyID, Elapsed: time.Since(start)})
	}
	mw.next.ServeHTTP(w, r)
}

// servePresigned verifies a presigned request and passes it on with the
// target that was verified: the two parameters removed, the rest of the
// target byte for byte.
func (mw *verifier) servePresigned(w http.ResponseWriter, r *http.Request, start time.Time) {
	if !mw.opts.Presigned {
		mw.refuse(w, r, &refusal{status: http.StatusForbidden, reason: httpsig.ReasonInsufficientScope, unread: true, detail: "presigned URLs are not accepted here"}, start)
		return
	}
	if r.ContentLength != 0 {
		// A chunked body (length -1) included: nothing in the URL covers it.
		mw.refuse(w, r, &refusal{status: http.StatusUnauthorized, reason: httpsig.ReasonMissingComponent, unread: true, detail: "a presigned request cannot carry content: the URL's signature does not cover it"}, start)
		return
	}
	v := mw.opts.Verifier
	signed := r
	if o, ok := r.Context().Value(originKey).(*Origin); ok {
		c := *r
		c.Host, c.RequestURI = o.Authority, o.PathPrefix+r.RequestURI
		v.Scheme, signed = o.Scheme, &c
	}
	clean, res, err := v.VerifyPresigned(signed, nil)
	if err != nil {
		mw.refuse(w, r, verifyRefusal(err), start)
		return
	}
	vc := &verifiedContext{id: Identity{KeyID: res.KeyID, Alg: res.Key.Algorithm(), Label: res.Label, Created: res.Created}}
	id := &vc.id
	if o, ok := res.Key.(OwnedKey); ok {
		id.Owner, id.Scopes = o.Owner(), o.Scopes()
	}
	if !id.HasScope(ScopePresign) && !id.HasScope(ScopePresignOnly) {
		mw.refuse(w, r, &refusal{
			status: http.StatusForbidden, reason: httpsig.ReasonInsufficientScope, keyID: res.KeyID, label: res.Label, unread: true,
			detail: "presigned URLs need a key with the scope " + strconv.Quote(ScopePresign),
		}, start)
		return
	}
	if mw.opts.Authorize != nil {
		if detail := mw.opts.Authorize(r, id); detail != "" {
			mw.refuse(w, r, &refusal{
				status: http.StatusForbidden, reason: httpsig.ReasonInsufficientScope, keyID: res.KeyID, label: res.Label, unread: true,
				detail: detail, err: errors.New("middleware: " + detail),
			}, start)
			return
		}
	}
	vc.Context = r.Context()
	vc.req = *r.WithContext(vc)
	out := &vc.req
	stripTarget(out, clean.URL.RawQuery)
	if mw.opts.Observe != nil {
		mw.opts.Observe(out, Outcome{KeyID: res.KeyID, Elapsed: time.Since(start)})
	}
	mw.next.ServeHTTP(w, out)
}

// stripTarget gives r (a copy of its own) the query stripped in place of
// its own, in its URL and its RequestURI; no '?' remains when stripped
// is empty.
func stripTarget(r *http.Request, stripped string) {
	u := *r.URL
	u.RawQuery, u.ForceQuery = stripped, false
	r.URL = &u
	if r.RequestURI != "" {
		path, _, _ := strings.Cut(r.RequestURI, "?")
		r.RequestURI = path
		if stripped != "" {
			r.RequestURI += "?" + stripped
		}
	}
}

// verifyHeader verifies the signatures of r as made over its origin, when
// WithOrigin gave one.
func (mw *verifier) verifyHeader(r *http.Request) (httpsig.Result, error) {
	o, ok := r.Context().Value(originKey).(*Origin)
	if !ok {
		return mw.opts.Verifier.VerifyRequestHeader(r)
	}
	v := mw.opts.Verifier
	v.Scheme = o.Scheme
	signed := *r
	signed.Host = o.Authority
	signed.RequestURI = o.PathPrefix + r.RequestURI
	return v.VerifyRequestHeader(&signed)
}

// Origin is what a client behind a proxy addressed, where the proxy
// changed it on the way: the scheme, the authority and a path prefix the
// proxy stripped. The client's signature covers these, not what the
// server received.
type Origin struct {
	Scheme     string // "http" or "https"
	Authority  string // host[:port]
	PathPrefix string // "" or "/api": put back before the path
}

var originKey = &contextKey{"origin"}

// WithOrigin returns r carrying its origin, which Verify then checks the
// signature's @scheme, @authority, @path, @target-uri and
// @request-target against. Only a caller that knows it (from a trusted
// proxy's fields, say) may set it.
func WithOrigin(r *http.Request, o Origin) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), originKey, &o))
}

// OriginOf returns the origin WithOrigin gave r.
func OriginOf(r *http.Request) (Origin, bool) {
	o, ok := r.Context().Value(originKey).(*Origin)
	if !ok {
		return Origin{}, false
	}
	return *o, true
}

// Budget is a number of request body bytes that may be held in memory at
// once, shared by the middlewares given it. It is safe for concurrent use.
type Budget struct{ b budget }

// NewBudget returns a budget of n bytes.
func NewBudget(n int64) *Budget {
	b := new(Budget)
	b.b.left.Store(n)
	return b
}

func bodyOf(b []byte) io.ReadCloser {
	if len(b) == 0 {
		return http.NoBody
	}
	return io.NopCloser(bytes.NewReader(b))
}

// A refusal is an answer other than passing the request on.
type refusal struct {
	status int
	reason httpsig.Reason
	// detail is for the client; err, if set, is for Observe.
	detail string
	err    error
	label  string // of the signature concerned
	keyID  string
	base   string // the signature base, in debug mode
	// unread is set when the body was not read to its end: the connection
	// is then closed rather than drained.
	unread bool
}

// verifyRefusal turns an error of the verifier into a refusal: a
// *httpsig.VerifyError is the client's fault, anything else means a store
// could not answer (and names the keyid concerned).
func verifyRefusal(err error) *refusal {
	var ve *httpsig.VerifyError
	if errors.As(err, &ve) {
		return &refusal{status: ve.Reason.Status(), reason: ve.Reason, detail: ve.Detail, err: err, label: ve.Label, keyID: ve.KeyID, base: ve.Base, unread: true}
	}
	return &refusal{
		status: http.StatusServiceUnavailable, reason: ReasonUnavailable, err: err, unread: true,
		// The cause (a database or Redis error) is for the logs only.
		detail: "the server cannot check signatures right now; retry later",
	}
}

var errTrailers = errors.New("middleware: the request has trailer fields")

const trailersDetail = "the request has trailer fields, which this server does not accept: a signature cannot cover them before they arrive"

// checkRequest refuses, before anything is parsed, a request whose parts a
// signature cannot cover the way the handler (or a server behind a proxy)
// would read them.
func checkRequest(r *http.Request) *refusal {
	if strings.IndexByte(r.RequestURI, '#') >= 0 || r.URL.Fragment != "" {
		// The signature covers the target up to the '#'; servers that
		// route on the whole target (Node's URL parser) would act on more.
		return &refusal{status: http.StatusBadRequest, reason: ReasonInvalidTarget, unread: true, detail: "the request target has a fragment (#), which a request target never carries (RFC 9112 §3.2)"}
	}
	if !ValidHost(r.Host) {
		return &refusal{status: http.StatusBadRequest, reason: ReasonInvalidHost, unread: true, detail: "the Host field must be a host name or IP address and an optional port, without a zone or percent-encoding"}
	}
	if len(r.Trailer) > 0 {
		return &refusal{status: http.StatusBadRequest, reason: ReasonTrailers, unread: true, detail: trailersDetail, err: errTrailers}
	}
	return nil
}

// ValidHost reports whether host is an authority that a signature's
// @authority covers unambiguously: a registered name of letters, digits,
// '-', '.', '_' and '~', an IPv4 address, or an IPv6 address in brackets
// without a zone, then an optional ':' and decimal port. An empty host is
// valid here; the verifier refuses it if @authority is required.
func ValidHost(host string) bool {
	name, port := host, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return false
		}
		name, port = host[1:end], host[end+1:]
		if name == "" {
			return false
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; !(isHex(c) || c == ':' || c == '.') {
				return false // a zone ("%25eth0") among others
			}
		}
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		}
	} else {
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			name, port = host[:i], host[i+1:]
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; !(isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
				return false
			}
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// hopByHop are the fields a proxy removes whether or not the Connection
// field names them (RFC 9110 §7.6.1, and the older ones proxies still
// drop).
var hopByHop = []string{"connection", "proxy-connection", "keep-alive", "te", "transfer-encoding", "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}

// coveredHopByHop returns the name of a covered field that a proxy would
// remove on the way, or "".
func coveredHopByHop(h http.Header, covered []httpsig.Component) string {
	conn := h["Connection"]
	for i := range covered {
		name := covered[i].Name
		if strings.HasPrefix(name, "@") {
			continue
		}
		if slices.Contains(hopByHop, name) {
			return name
		}
		for _, line := range conn {
			for tok := range strings.SplitSeq(line, ",") {
				if strings.EqualFold(strings.Trim(tok, " \t"), name) {
					return name
				}
			}
		}
	}
	return ""
}

// combineCovered replaces the several lines of a covered field with the
// one value the signature covered (RFC 9421 §2.1), so that the handler, and
// a server behind a proxy, read what was verified and not just its first
// line. A field covered with bs anywhere keeps its lines: that signature
// covered them one by one. It returns the name of a field whose value
// cannot be passed on as one line, because its last line is empty and a
// parser would trim the ", " before it; "" when all is well.
func combineCovered(h http.Header, covered []httpsig.Component) string {
	repeated := false
	for _, v := range h {
		if len(v) > 1 {
			repeated = true
			break
		}
	}
	if !repeated {
		return ""
	}
	for i := range covered {
		c := &covered[i]
		if strings.HasPrefix(c.Name, "@") || c.Tr || slices.ContainsFunc(covered, func(o httpsig.Component) bool { return o.Name == c.Name && o.BS }) {
			continue
		}
		key := textproto.CanonicalMIMEHeaderKey(c.Name)
		v := h[key]
		if len(v) < 2 {
			continue
		}
		if v[len(v)-1] == "" {
			return c.Name
		}
		h[key] = []string{strings.Join(v, ", ")}
	}
	return ""
}

// budget is the number of body bytes that may still be held in memory.
type budget struct{ left atomic.Int64 }

func (b *budget) take(n int64) bool {
	for {
		left := b.left.Load()
		if left < n {
			return false
		}
		if b.left.CompareAndSwap(left, left-n) {
			return true
		}
	}
}

func (b *budget) give(n int64) {
	if n > 0 {
		b.left.Add(n)
	}
}

// Buffer sizes of readBody: the first buffer of a body of known length
// (larger bodies grow as they arrive), and of one of unknown length.
const (
	firstBuffer        = 64 << 10
	firstUnknownBuffer = 8 << 10
)

var (
	errTooLarge  = errors.New("middleware: request body over the size limit")
	errNoBudget  = errors.New("middleware: the request bodies in memory have reached the body budget")
	errBadLength = errors.New("middleware: the request body is longer than its Content-Length")
)

// readBody reads the body of a verified request as it arrives, counting
// the memory it holds against the body budget; held is what the caller
// gives back once the request is done. A body declared over the limit is
// refused without reading any of it.
func (mw *verifier) readBody(r *http.Request) (body []byte, held int64, ref *refusal) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0, nil
	}
	limit := mw.opts.MaxBodyBytes
	tooLarge := func() *refusal {
		return &refusal{status: http.StatusRequestEntityTooLarge, reason: ReasonBodyTooLarge, detail: "the request body is larger than the " + strconv.FormatInt(limit, 10) + " bytes accepted", err: errTooLarge, unread: true}
	}
	noBudget := func() *refusal {
		return &refusal{status: http.StatusServiceUnavailable, reason: ReasonUnavailable, detail: "the server has too many request bodies in memory; retry later", err: errNoBudget, unread: true}
	}
	// The buffer never grows past ceiling: the declared length, or one
	// byte over the limit, which tells a body of unknown length too large.
	ceiling, size := limit+1, int64(firstUnknownBuffer)
	if cl := r.ContentLength; cl >= 0 {
		if cl > limit {
			return nil, 0, tooLarge()
		}
		if !mw.budget.take(cl) {
			return nil, 0, noBudget()
		}
		ceiling, size, held = cl, min(cl, firstBuffer), cl
	} else {
		size = min(size, ceiling)
		if !mw.budget.take(size) {
			return nil, 0, noBudget()
		}
		held = size
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if int64(cap(buf)) == ceiling {
				if r.ContentLength < 0 {
					return nil, held, tooLarge()
				}
				// All the declared bytes are in: read on to the end, which
				// also tells the server the body was consumed.
				var probe [1]byte
				n, err := r.Body.Read(probe[:])
				if n > 0 {
					return nil, held, &refusal{status: http.StatusBadRequest, reason: ReasonBadBody, detail: "the request body is longer than its Content-Length", err: errBadLength, unread: true}
				}
				if err == io.EOF {
					return buf, held, nil
				}
				if err != nil {
					return nil, held, bodyError(err)
				}
				continue
			}
			next := min(2*int64(cap(buf)), ceiling)
			if r.ContentLength < 0 {
				if !mw.budget.take(next - held) {
					return nil, held, noBudget()
				}
				held = next
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if r.ContentLength > 0 && int64(len(buf)) < r.ContentLength {
				return nil, held, bodyError(io.ErrUnexpectedEOF)
			}
			return buf, held, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, held, tooLarge()
			}
			return nil, held, bodyError(err)
		}
	}
}

func bodyError(err error) *refusal {
	return &refusal{status: http.StatusBadRequest, reason: ReasonBadBody, detail: "the request body could not be read: " + err.Error(), err: fmt.Errorf("middleware: reading the request body: %w", err), unread: true}
}

// Problem is the RFC 9457 body of a refusal.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Signature is the label of the signature concerned.
	Signature string `json:"signature,omitempty"`
	// SignatureBase is the base the server built, in debug mode only.
	SignatureBase string `json:"signature_base,omitempty"`
}

var titles = map[httpsig.Reason]string{
	httpsig.ReasonMissingSignature:   "Missing signature",
	httpsig.ReasonMalformedSignature: "Malformed signature",
	httpsig.ReasonUnknownKey:         "Unknown key",
	httpsig.ReasonKeyRevoked:         "Key revoked",
	httpsig.ReasonKeyExpired:         "Key expired",
	httpsig.ReasonAlgorithmMismatch:  "Algorithm mismatch",
	httpsig.ReasonMissingComponent:   "Missing component",
	httpsig.ReasonExpired:            "Signature expired",
	httpsig.ReasonNotYetValid:        "Signature not yet valid",
	httpsig.ReasonReplayed:           "Replayed request",
	httpsig.ReasonDigestMismatch:     "Digest mismatch",
	httpsig.ReasonBadSignature:       "Bad signature",
	httpsig.ReasonInsufficientScope:  "Insufficient scope",
	ReasonBodyTooLarge:               "Request body too large",
	ReasonBadBody:                    "Unreadable request body",
	ReasonUnavailable:                "Authentication unavailable",
	ReasonInvalidTarget:              "Invalid request target",
	ReasonInvalidHost:                "Invalid Host",
	ReasonHopByHop:                   "Covered field is hop-by-hop",
	ReasonInvalidField:               "Covered field cannot be passed on",
	ReasonTrailers:                   "Trailers not accepted",
}

// refuse answers a refused request and reports its outcome.
func (mw *verifier) refuse(w http.ResponseWriter, r *http.Request, ref *refusal, start time.Time) {
	p := Problem{Type: mw.opts.ProblemBase + string(ref.reason), Title: titles[ref.reason], Status: ref.status, Detail: ref.detail, Signature: ref.label, SignatureBase: ref.base}
	h := w.Header()
	switch ref.status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Signature realm="`+mw.opts.Realm+`"`)
		if v := mw.opts.Verifier.Policy.AcceptSignatureFor(r, r.ContentLength != 0); v != "" {
			h.Set("Accept-Signature", v)
		}
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "1")
	}
	if ref.unread && r.ContentLength != 0 && r.ProtoMajor == 1 {
		// Close rather than let the server drain a body nobody will use.
		// (HTTP/2 resets the stream instead.)
		h.Set("Connection", "close")
	}
	writeProblem(w, mw.opts.now(), &p)
	if mw.opts.Observe != nil {
		mw.opts.Observe(r, Outcome{Status: ref.status, Reason: ref.reason, KeyID: ref.keyID, Err: ref.errOrDetail(), Elapsed: time.Since(start)})
	}
}

// errOrDetail returns the error behind the refusal, making one of its
// detail if there is none.
func (ref *refusal) errOrDetail() error {
	if ref.err != nil {
		return ref.err
	}
	return errors.New("middleware: " + ref.detail)
}

func (o *Options) now() time.Time {
	if o.Verifier.Now != nil {
		return o.Verifier.Now()
	}
	return time.Now()
}

// WriteProblem writes p as an application/problem+json response, with a
// Date field and no caching.
func WriteProblem(w http.ResponseWriter, p *Problem) { writeProblem(w, time.Now(), p) }

func writeProblem(w http.ResponseWriter, now time.Time, p *Problem) {
	body, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("Date", now.UTC().Format(http.TimeFormat))
	w.WriteHeader(p.Status)
	w.Write(body)
}

// RequireScopes returns a middleware, to be placed after Verify, that
// answers 403 insufficient-scope, with a problem type under
// opts.ProblemBase, unless the identity holds every scope.
func RequireScopes(opts Options, scopes ...string) func(http.Handler) http.Handler {
	opts = opts.withDefaults()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := FromContext(r.Context())
			for _, s := range scopes {
				if ok && id.HasScope(s) {
					continue
				}
				writeProblem(w, opts.now(), &Problem{
					Type:   opts.ProblemBase + string(httpsig.ReasonInsufficientScope),
					Title:  titles[httpsig.ReasonInsufficientScope],
					Status: http.StatusForbidden,
					Detail: "this needs the scope " + strconv.Quote(s),
				})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
