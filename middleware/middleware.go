// Package middleware authenticates requests to a net/http server with
// RFC 9421 HTTP Message Signatures.
//
// [Verify] returns a middleware in the func(http.Handler) http.Handler
// shape. It reads the request body with a size limit, checks the
// signatures and the Content-Digest with an [httpsig.Verifier], rejects
// replayed nonces, and hands the next handler the request with its body
// intact and the authenticated [Identity] in its context ([FromContext]).
// [RequireScopes] guards routes by scope.
//
// Refusals are RFC 9457 problem+json responses whose type ends in the
// reason code, with an Accept-Signature field saying what to sign and a
// Date field for clock correction: 401, 403 for insufficient-scope, 413 for
// a body over the limit, and 503 when the key store or the nonce store
// cannot answer (fail closed: nothing is let through).
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
	"strconv"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// DefaultMaxBodyBytes is the body size limit of a zero Options.
const DefaultMaxBodyBytes = 10 << 20

// DefaultProblemBase prefixes reason codes to make problem type URIs.
const DefaultProblemBase = "https://signet.dev/problems/"

// Reasons of refusals that are not about a signature.
const (
	ReasonBodyTooLarge httpsig.Reason = "body-too-large"
	ReasonBadBody      httpsig.Reason = "unreadable-body"
	ReasonUnavailable  httpsig.Reason = "unavailable"
)

// Options configures [Verify]. Zero values are the documented defaults.
type Options struct {
	// Policy says what signatures must cover and how fresh they must be;
	// the zero value is Signet's default profile.
	Policy httpsig.Policy
	// Keys resolves keyids. Required. If the key it returns also has
	// methods Owner() string and Scopes() []string, the Identity carries
	// them.
	Keys httpsig.KeyResolver
	// Nonces remembers nonces to refuse replays. Required unless the
	// policy does not require a nonce: replay protection is not optional
	// by accident.
	Nonces httpsig.NonceStore
	// MaxBodyBytes bounds the body read for the Content-Digest check;
	// zero means DefaultMaxBodyBytes. Larger bodies get 413.
	MaxBodyBytes int64
	// Scheme, if set, is the scheme clients used ("https" behind a
	// TLS-terminating proxy); otherwise it comes from the connection.
	Scheme string
	// ProblemBase prefixes reason codes in problem types; empty means
	// DefaultProblemBase.
	ProblemBase string
	// Realm names the protection space in WWW-Authenticate; empty means
	// "signet".
	Realm string
	// Debug adds the signature base the server built to refusals, so a
	// client developer can compare it with their own. It tells callers
	// what the server would accept; never turn it on in production.
	Debug bool
	// Observe, if set, is called once per request with its outcome, for
	// logs and metrics.
	Observe func(r *http.Request, o Outcome)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
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

	problemBase string // for RequireScopes' refusals
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

// owned is implemented by keys that know who they belong to.
type owned interface {
	Owner() string
	Scopes() []string
}

type verifier struct {
	opts Options
	v    httpsig.Verifier
	next http.Handler
}

// Verify returns a middleware that lets through only requests whose
// signatures verify. It panics if opts.Keys is nil, or opts.Nonces is nil
// while the policy requires nonces.
func Verify(opts Options) func(http.Handler) http.Handler {
	if opts.Keys == nil {
		panic("middleware: Options.Keys is nil")
	}
	if opts.Nonces == nil && opts.Policy.RequiresNonce() {
		panic("middleware: Options.Nonces is nil but the policy requires nonces; use replay/memory or replay/redis")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.ProblemBase == "" {
		opts.ProblemBase = DefaultProblemBase
	}
	if opts.Realm == "" {
		opts.Realm = "signet"
	}
	if opts.Debug {
		slog.Warn("middleware: debug mode is on: refusals show clients the signature base the server expects; never use it in production")
	}
	return func(next http.Handler) http.Handler {
		return &verifier{
			opts: opts,
			next: next,
			v: httpsig.Verifier{
				Policy: opts.Policy, Keys: opts.Keys, Nonces: opts.Nonces,
				Scheme: opts.Scheme, Debug: opts.Debug, Now: opts.Now,
			},
		}
	}
}

func (mw *verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, status, reason, err := mw.readBody(r)
	if err != nil {
		mw.refuse(w, r, status, reason, "", err, start, "")
		return
	}
	res, err := mw.v.VerifyRequest(r, body)
	if err != nil {
		var ve *httpsig.VerifyError
		if errors.As(err, &ve) {
			mw.refuse(w, r, ve.Reason.Status(), ve.Reason, ve.KeyID, err, start, ve.Base)
			return
		}
		// err names the keyid concerned.
		mw.refuse(w, r, http.StatusServiceUnavailable, ReasonUnavailable, "", err, start, "")
		return
	}
	id := &Identity{KeyID: res.KeyID, Alg: res.Key.Algorithm(), Label: res.Label, Created: res.Created, problemBase: mw.opts.ProblemBase}
	if o, ok := res.Key.(owned); ok {
		id.Owner, id.Scopes = o.Owner(), o.Scopes()
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body.Close()
	}
	r = r.WithContext(NewContext(r.Context(), id))
	r.Body = bodyOf(body)
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return bodyOf(body), nil }
	if mw.opts.Observe != nil {
		mw.opts.Observe(r, Outcome{KeyID: res.KeyID, Elapsed: time.Since(start)})
	}
	mw.next.ServeHTTP(w, r)
}

func bodyOf(b []byte) io.ReadCloser {
	if len(b) == 0 {
		return http.NoBody
	}
	return io.NopCloser(bytes.NewReader(b))
}

var errTooLarge = errors.New("middleware: request body over the size limit")

// readBody reads the whole body, refusing one over the limit without
// reading it all.
func (mw *verifier) readBody(r *http.Request) ([]byte, int, httpsig.Reason, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0, "", nil
	}
	limit := mw.opts.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, errTooLarge
	}
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, http.StatusBadRequest, ReasonBadBody, fmt.Errorf("middleware: reading the request body: %w", err)
		}
		return buf, 0, "", nil
	}
	// Unknown length: grow as data arrives, never past the limit.
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, errTooLarge
		}
		return nil, http.StatusBadRequest, ReasonBadBody, fmt.Errorf("middleware: reading the request body: %w", err)
	}
	if n > limit {
		return nil, http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, errTooLarge
	}
	return buf.Bytes(), 0, "", nil
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
}

// refuse answers a refused request and reports its outcome.
func (mw *verifier) refuse(w http.ResponseWriter, r *http.Request, status int, reason httpsig.Reason, keyID string, err error, start time.Time, base string) {
	p := Problem{Type: mw.opts.ProblemBase + string(reason), Title: titles[reason], Status: status, SignatureBase: base}
	var ve *httpsig.VerifyError
	switch {
	case errors.As(err, &ve):
		p.Detail, p.Signature = ve.Detail, ve.Label
	case status == http.StatusServiceUnavailable:
		// The cause (a database or Redis error) is for the logs only.
		p.Detail = "the server cannot check signatures right now; retry later"
		w.Header().Set("Retry-After", "1")
	default:
		p.Detail = trimPrefix(err.Error())
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Signature realm="`+mw.opts.Realm+`"`)
		hasContent := r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
		if v := mw.opts.Policy.AcceptSignatureFor(r, hasContent); v != "" {
			w.Header().Set("Accept-Signature", v)
		}
	}
	if status == http.StatusRequestEntityTooLarge {
		w.Header().Set("Connection", "close") // the rest of the body is not read
	}
	writeProblem(w, mw.now(), &p)
	if mw.opts.Observe != nil {
		mw.opts.Observe(r, Outcome{Status: status, Reason: reason, KeyID: keyID, Err: err, Elapsed: time.Since(start)})
	}
}

func (mw *verifier) now() time.Time {
	if mw.opts.Now != nil {
		return mw.opts.Now()
	}
	return time.Now()
}

func trimPrefix(s string) string {
	for _, p := range []string{"middleware: ", "httpsig: "} {
		if len(s) > len(p) && s[:len(p)] == p {
			return s[len(p):]
		}
	}
	return s
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
// answers 403 insufficient-scope unless the identity holds every scope.
func RequireScopes(scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := FromContext(r.Context())
			for _, s := range scopes {
				if ok && id.HasScope(s) {
					continue
				}
				base := DefaultProblemBase
				if ok && id.problemBase != "" {
					base = id.problemBase
				}
				writeProblem(w, time.Now(), &Problem{
					Type:   base + string(httpsig.ReasonInsufficientScope),
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
