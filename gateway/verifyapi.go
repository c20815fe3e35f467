package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
)

// ScopeVerify is the scope a key needs to call the verify API.
const ScopeVerify = "verify"

// maxVerifyFields bounds the field lines of one verify API call.
const maxVerifyFields = 256

// verifyCall is the body of POST /v1/verify: a request another server
// received, without its content.
type verifyCall struct {
	Method    string `json:"method"`
	Target    string `json:"target"`
	Authority string `json:"authority"`
	Scheme    string `json:"scheme"`
	// Headers are the field lines as received, in order; values are
	// Latin-1 strings, one character per octet.
	Headers    [][]string `json:"headers"`
	HasContent bool       `json:"has_content"`
	// ComputedDigest, if set, is a Content-Digest value the caller
	// computed over the content it received (sha-256=:…:): Signet then
	// checks the content itself, against the Content-Digest a signature
	// covers. Without it the caller checks the content against the
	// verdict's content_digest.
	ComputedDigest string `json:"computed_digest"`
}

// verdict is the answer to a call that could be checked: the caller's
// identity, or the refusal.
type verdict struct {
	Verified bool `json:"verified"`
	// KeyID is the keyid of the signature concerned, when one was read.
	KeyID string `json:"key_id,omitempty"`
	// Headers are the fields the caller's answer carries for a key under
	// a limit: RateLimit and RateLimit-Policy, and Retry-After on a
	// refusal.
	Headers http.Header `json:"headers,omitempty"`
	*accepted
	*refused
}

type accepted struct {
	Owner   *string  `json:"owner"`
	Scopes  []string `json:"scopes"`
	Alg     string   `json:"alg"`
	Label   string   `json:"label"`
	Created *int64   `json:"created"`
	Expires *int64   `json:"expires"`
	// Covered are the component identifiers the checked signatures
	// cover, as serialised in Signature-Input.
	Covered []string `json:"covered"`
	// ContentDigest is the Content-Digest field value the content must
	// match, when a checked signature covers it; the caller checks it.
	ContentDigest *string `json:"content_digest"`
	// ContentChecked says that Signet checked the caller's computed
	// digest against ContentDigest.
	ContentChecked bool `json:"content_checked"`
}

type refused struct {
	Status          int                `json:"status"`
	Reason          string             `json:"reason"`
	Problem         middleware.Problem `json:"problem"`
	AcceptSignature string             `json:"accept_signature,omitempty"`
}

// registerVerifyAPI adds POST /v1/verify to the admin mux, for callers
// whose signatures verify as those of admin calls do, by a key with the
// verify scope.
func (g *Gateway) registerVerifyAPI(mux *http.ServeMux) {
	opts := g.opts
	opts.MaxBodyBytes, opts.BodyBudget, opts.Verifier.Debug = maxAdminBody, 0, false
	h := middleware.Verify(opts)(middleware.RequireScopes(opts, ScopeVerify)(http.HandlerFunc(g.verifyAPI)))
	mux.Handle("POST /v1/verify", withRequestID(h))
}

// verifyAPI checks a request another server received as the client
// listener would check it, under the policy in force: its route, the key
// store, the replay cache (the nonce is spent), the route's scopes. It
// answers 200 with a verdict, 400 for a call it cannot read, 503 when a
// store cannot answer.
func (g *Gateway) verifyAPI(w http.ResponseWriter, r *http.Request) {
	var call verifyCall
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&call); err != nil {
		g.writeProblem(w, http.StatusBadRequest, "invalid-request", "Invalid request", "the body must be a JSON object with known fields: "+err.Error())
		return
	}
	req, detail := call.request(r.Context())
	if detail != "" {
		g.writeProblem(w, http.StatusBadRequest, "invalid-request", "Invalid request", detail)
		return
	}
	start := time.Now()
	v, ref := g.checkCall(req, &call)
	if ref != nil && errors.Is(ref.Err, errComputedDigest) {
		g.writeProblem(w, http.StatusBadRequest, "invalid-request", "Invalid request", strings.TrimPrefix(ref.Err.Error(), "gateway: verify API: computed_digest: httpsig: "))
		return
	}
	if ref != nil {
		g.observe(req, middleware.Outcome{Status: ref.Status, Reason: ref.Reason, KeyID: ref.KeyID, Err: ref.Err, Elapsed: time.Since(start)})
		if ref.Status == http.StatusServiceUnavailable {
			// A store could not answer: that is about the call, not the
			// request, whose caller must then answer 503 itself.
			w.Header().Set("Retry-After", "1")
			g.writeProblem(w, http.StatusServiceUnavailable, string(middleware.ReasonUnavailable), "Service unavailable", ref.Problem.Detail)
			return
		}
		v = &verdict{KeyID: ref.KeyID, Headers: ref.Header, refused: &refused{Status: ref.Status, Reason: string(ref.Reason), Problem: ref.Problem, AcceptSignature: ref.AcceptSignature}}
	} else {
		g.observe(req, middleware.Outcome{KeyID: v.KeyID, Elapsed: time.Since(start)})
	}
	writeJSON(w, http.StatusOK, v)
}

// checkCall routes and verifies the request of a call.
func (g *Gateway) checkCall(req *http.Request, call *verifyCall) (*verdict, *middleware.Refusal) {
	s := g.snap.Load()
	refuse := func(status int, reason httpsig.Reason, title, detail string) *middleware.Refusal {
		return &middleware.Refusal{
			Status: status, Reason: reason, Err: fmt.Errorf("gateway: verify API: %s", detail),
			Problem: middleware.Problem{Type: g.problemBase + string(reason), Title: title, Status: status, Detail: detail},
		}
	}
	path, _, _, detail := splitTarget(req)
	if detail != "" {
		return nil, refuse(http.StatusBadRequest, middleware.ReasonInvalidTarget, "Invalid request target", detail)
	}
	route, err := s.policy.Match(req.Method, call.Authority, path)
	var te *policy.TargetError
	switch {
	case s.legacy:
		route, err = s.policy.Routes[0], nil
	case errors.As(err, &te):
		return nil, refuse(http.StatusBadRequest, middleware.ReasonInvalidTarget, "Invalid request target", te.Detail)
	case err != nil:
		return nil, refuse(http.StatusNotFound, ReasonNoRoute, "No route", "no route of the gateway takes "+req.Method+" requests for this path")
	}
	rh := &s.routes[route.Index]
	opts := rh.opts
	opts.ProblemBase = g.problemBase
	if rh.route.Public {
		opts.Authorize = nil
	}
	// From here on the caller's req carries its route, for the logs and
	// metrics of the verdict.
	*req = *req.WithContext(&routed{Context: req.Context(), snap: s, route: route, upstream: s.upstreams[route.Upstream.Name]})
	signed := middleware.WithOrigin(req, middleware.Origin{Scheme: call.Scheme, Authority: call.Authority})
	id, res, ref := middleware.CheckHeader(opts, signed)
	if ref != nil {
		return nil, ref
	}
	v := &accepted{Scopes: id.Scopes, Alg: string(id.Alg), Label: id.Label, Covered: make([]string, len(res.Covered))}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	if id.Owner != "" {
		v.Owner = &id.Owner
	}
	if !res.Created.IsZero() {
		c := res.Created.Unix()
		v.Created = &c
	}
	if !res.Expires.IsZero() {
		e := res.Expires.Unix()
		v.Expires = &e
	}
	for i, c := range res.Covered {
		v.Covered[i] = c.String()
	}
	if res.ContentDigest != "" {
		v.ContentDigest = &res.ContentDigest
		if call.ComputedDigest != "" {
			if ref := g.matchDigest(opts, req, &res, call.ComputedDigest); ref != nil {
				return nil, ref
			}
			v.ContentChecked = true
		}
	}
	headers, ref := g.verifyUsage(req, route, id)
	if ref != nil {
		return nil, ref
	}
	return &verdict{Verified: true, KeyID: id.KeyID, Headers: headers, accepted: v}, nil
}

// verifyUsage applies the usage controls to a request the verify API
// checked, as the gateway does to those it forwards: the route's, the
// key's and the owner's rates, then the key's uses. It returns the
// RateLimit fields the caller's answer carries, or the refusal.
func (g *Gateway) verifyUsage(req *http.Request, route *policy.Route, id *middleware.Identity) (http.Header, *middleware.Refusal) {
	key := g.limitedKeyOf(req, id.KeyID)
	if g.cfg.Limiter == nil && g.cfg.Uses == nil && !hasUses(key) {
		return nil, nil
	}
	var routeRate limit.Rate
	if route.Rate != nil {
		routeRate = RouteRate(route.Rate)
	}
	var f limit.Fields
	reason, err := g.applyLimits(req.Context(), &f, route, routeRate, id, key)
	h := verdictFields(&f)
	problem := func(status int, reason httpsig.Reason, title, detail string, err error) *middleware.Refusal {
		return &middleware.Refusal{
			Status: status, Reason: reason, KeyID: id.KeyID, Err: err, Header: h,
			Problem: middleware.Problem{Type: g.problemBase + string(reason), Title: title, Status: status, Detail: detail},
		}
	}
	switch {
	case err != nil:
		g.metrics.limitErrors.Inc()
		return nil, problem(http.StatusServiceUnavailable, middleware.ReasonUnavailable, "Service unavailable",
			"the gateway could not check the limits of the key; retry later", fmt.Errorf("gateway: verify API: limits: %w", err))
	case reason == ReasonUsesExhausted:
		return nil, problem(http.StatusTooManyRequests, reason, "Uses exhausted",
			"the key has no uses left; see the RateLimit field for when they are refilled, if they are", errors.New("gateway: verify API: uses exhausted"))
	case reason != "":
		return nil, problem(http.StatusTooManyRequests, reason, "Rate limited",
			"the key is over a rate limit; retry after the time Retry-After gives", errors.New("gateway: verify API: rate limited"))
	}
	return h, nil
}

// errComputedDigest marks a computed digest that cannot be checked: the
// call's fault, not the request's.
var errComputedDigest = errors.New("gateway: verify API: computed_digest")

// matchDigest checks the caller's computed digest against the
// Content-Digest the signature covers, refusing a mismatch as the
// gateway refuses content that does not match it.
func (g *Gateway) matchDigest(opts middleware.Options, req *http.Request, res *httpsig.Result, computed string) *middleware.Refusal {
	err := httpsig.MatchContentDigest(res.ContentDigest, computed)
	if err == nil {
		return nil
	}
	var ve *httpsig.VerifyError
	if !errors.As(err, &ve) {
		return &middleware.Refusal{Status: http.StatusBadRequest, Err: fmt.Errorf("%w: %w", errComputedDigest, err)}
	}
	reason := httpsig.ReasonDigestMismatch
	return &middleware.Refusal{
		Status: http.StatusUnauthorized, Reason: reason, KeyID: res.KeyID, Err: err,
		Problem: middleware.Problem{
			Type: g.problemBase + string(reason), Title: middleware.Title(reason), Status: http.StatusUnauthorized,
			Detail: ve.Detail, Signature: res.Label,
		},
		AcceptSignature: opts.Verifier.Policy.AcceptSignatureFor(req, true),
	}
}

// request makes the request a call describes, or says why it cannot.
func (c *verifyCall) request(ctx context.Context) (*http.Request, string) {
	switch {
	case c.Method == "" || !isToken(c.Method):
		return nil, "method must be an HTTP method"
	case c.Target == "":
		return nil, "target must be the request-target as received"
	case c.Scheme != "http" && c.Scheme != "https":
		return nil, `scheme must be "http" or "https"`
	case len(c.Headers) > maxVerifyFields:
		return nil, fmt.Sprintf("headers holds more than %d field lines", maxVerifyFields)
	}
	if !visible(c.Target) || !visible(c.Authority) {
		return nil, "target and authority must be printable ASCII"
	}
	h := make(http.Header, len(c.Headers))
	for i, line := range c.Headers {
		if len(line) != 2 {
			return nil, fmt.Sprintf("headers[%d] must be a [name, value] pair", i)
		}
		name := line[0]
		value, ok := latin1Bytes(line[1])
		if !isToken(name) {
			return nil, fmt.Sprintf("headers[%d]: %q is not a field name", i, name)
		}
		if !ok || strings.ContainsAny(value, "\r\n\x00") {
			return nil, fmt.Sprintf("headers[%d]: the value of %q must be a Latin-1 string (one character per octet) without CR, LF or NUL", i, name)
		}
		if strings.EqualFold(name, "Host") {
			continue // authority says what the client addressed
		}
		key := http.CanonicalHeaderKey(name)
		h[key] = append(h[key], strings.Trim(value, " \t"))
	}
	u, err := url.ParseRequestURI(c.Target)
	if err != nil {
		// The target is checked, and refused, as the listener would.
		u = &url.URL{Path: "/"}
	}
	r := (&http.Request{
		Method: c.Method, URL: u, RequestURI: c.Target, Host: c.Authority, Header: h,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody,
	}).WithContext(ctx)
	if c.HasContent {
		r.ContentLength = -1
	}
	return r, ""
}

// latin1Bytes turns a string of characters U+0000–U+00FF into the octets
// they stand for; ok is false for a character above.
func latin1Bytes(s string) (string, bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for _, c := range s {
		if c > 0xff {
			return "", false
		}
		b = append(b, byte(c))
	}
	return string(b), true
}

// verdictFields returns the fields f adds to an answer, under the names
// the RateLimit draft spells (an http.Header would say "Ratelimit"), or
// nil if none.
func verdictFields(f *limit.Fields) http.Header {
	h := http.Header{}
	f.AddTo(h)
	if len(h) == 0 {
		return nil
	}
	out := make(http.Header, len(h))
	for k, v := range h {
		switch k {
		case "Ratelimit":
			k = "RateLimit"
		case "Ratelimit-Policy":
			k = "RateLimit-Policy"
		}
		out[k] = v
	}
	return out
}
