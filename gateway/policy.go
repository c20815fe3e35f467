package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
)

// snapshot is what the gateway serves requests with under one policy:
// the policy, a handler per route, the upstreams with their transports.
// A request takes the snapshot in force when it arrives and keeps it to
// its end, so that a reload never serves it half with one policy and half
// with another.
type snapshot struct {
	policy    *policy.Policy
	legacy    bool // made from Config.Upstream and Config.Verify, with no policy
	routes    []routeHandler
	upstreams map[string]*upstream
}

type routeHandler struct {
	route   *policy.Route
	handler http.Handler
	// opts verify the route's requests; the verify API checks with them.
	opts middleware.Options
}

// upstream is a policy.Upstream with what forwarding to it needs.
type upstream struct {
	*policy.Upstream
	basePath  string // escaped; "" for none or "/"
	transport http.RoundTripper
	closeIdle func() // of a transport the gateway made
}

// routed is what a request carries through the gateway once routed. It
// is the request's context from then on: the context it was routed in,
// with itself as the value of routedKey (one allocation where
// context.WithValue and the struct would make two).
type routed struct {
	context.Context
	snap     *snapshot
	route    *policy.Route
	upstream *upstream
	key      limitedKey // the key resolved to verify the request, if any

	// header is the client's response header, and limits the rate limit
	// fields the usage controls set in it (until they return): for
	// restoreFields.
	header http.Header
	limits *limit.Fields
}

var routedKey = &struct{ name string }{"routed"}

// Value returns rt for routedKey, and the value of the context it extends
// for any other key.
func (rt *routed) Value(key any) any {
	if key == routedKey {
		return rt
	}
	return rt.Context.Value(key)
}

// routedRequest is a request as routed, the shallow copy of the server's
// that carries its routed context, made in one allocation with it.
type routedRequest struct {
	req http.Request
	rt  routed
}

// withRouted returns a shallow copy of r whose context is a routed of s,
// route and up, extending r's, that answers in the header h.
func withRouted(r *http.Request, h http.Header, s *snapshot, route *policy.Route, up *upstream) *http.Request {
	rr := &routedRequest{rt: routed{Context: r.Context(), snap: s, route: route, upstream: up, header: h}}
	// WithContext's copy stays on the stack: only this one is kept.
	rr.req = *r.WithContext(&rr.rt)
	return &rr.req
}

func routedOf(r *http.Request) *routed {
	rt, _ := r.Context().Value(routedKey).(*routed)
	return rt
}

// ReasonNoRoute (404) and ReasonInvalidForwarded (400): see the policy
// package.
const (
	ReasonNoRoute          = policy.ReasonNoRoute
	ReasonInvalidForwarded = policy.ReasonInvalidForwarded
)

// SetPolicy puts p in force for the requests that arrive from now on;
// those under way finish with the policy they started with. Upstreams
// whose connection settings p leaves alone keep their connections. It
// returns an error, and keeps the policy in force, if p cannot be served.
func (g *Gateway) SetPolicy(p *policy.Policy) error {
	g.policyMu.Lock()
	defer g.policyMu.Unlock()
	old := g.snap.Load()
	s, err := g.newSnapshot(p, old)
	if err != nil {
		return err
	}
	g.snap.Store(s)
	if old != nil {
		for name, u := range old.upstreams {
			if nu, ok := s.upstreams[name]; (!ok || nu.transport != u.transport) && u.closeIdle != nil {
				u.closeIdle()
			}
		}
	}
	return nil
}

// Policy returns the policy in force.
func (g *Gateway) Policy() *policy.Policy { return g.snap.Load().policy }

func (g *Gateway) newSnapshot(p *policy.Policy, old *snapshot) (*snapshot, error) {
	if err := g.checkSigning(p.Settings.UpstreamSigning); err != nil {
		return nil, err
	}
	s := &snapshot{policy: p, upstreams: map[string]*upstream{}}
	for name, pu := range p.Upstreams {
		u := &upstream{Upstream: pu}
		if base := pu.URL.EscapedPath(); base != "/" {
			u.basePath = base
		}
		switch {
		case g.cfg.Transport != nil:
			u.transport = g.cfg.Transport
		case old != nil && old.upstreams[name] != nil && old.upstreams[name].closeIdle != nil && old.upstreams[name].SameTransport(pu) && old.policy.Settings.UpstreamTimeout == p.Settings.UpstreamTimeout:
			u.transport, u.closeIdle = old.upstreams[name].transport, old.upstreams[name].closeIdle
		default:
			t := pu.NewTransport()
			if t.ResponseHeaderTimeout == 0 {
				t.ResponseHeaderTimeout = p.Settings.UpstreamTimeout
			}
			d := newDirectTransport(t, pu.URL.Scheme, pu.URL.Host)
			u.transport, u.closeIdle = d, d.CloseIdleConnections
		}
		s.upstreams[name] = u
	}
	for _, r := range p.Routes {
		if err := g.checkRouteRate(r); err != nil {
			return nil, err
		}
		opts := g.routeOptions(p, r)
		h := g.publicHandler(opts.MaxBodyBytes)
		if !r.Public {
			h = middleware.Verify(opts)(g.usage(r, http.HandlerFunc(g.relayed)))
		}
		s.routes = append(s.routes, routeHandler{route: r, handler: h, opts: opts})
	}
	return s, nil
}

// legacySnapshot serves Config.Upstream with Config.Verify, as a gateway
// without a policy always has: every path, signed.
func (g *Gateway) legacySnapshot() (*snapshot, error) {
	if err := g.checkSigning(g.cfg.UpstreamSigning); err != nil {
		return nil, err
	}
	p, err := policy.Parse("", nil, policy.Options{Flags: map[string]string{"upstream": g.cfg.Upstream.String()}})
	if err != nil {
		return nil, err
	}
	u := &upstream{Upstream: p.Upstreams["default"], transport: g.cfg.Transport}
	if base := g.cfg.Upstream.EscapedPath(); base != "/" {
		u.basePath = base
	}
	s := &snapshot{policy: p, legacy: true, upstreams: map[string]*upstream{"default": u}}
	s.routes = []routeHandler{{route: p.Routes[0], handler: middleware.Verify(g.opts)(g.usage(nil, http.HandlerFunc(g.relayed))), opts: g.opts}}
	return s, nil
}

// routeOptions returns the settings requests routed to r are verified
// with (those of a public route, for the verify API: the policy's, with
// no scopes).
func (g *Gateway) routeOptions(p *policy.Policy, r *policy.Route) middleware.Options {
	maxBody := r.MaxBody
	if maxBody == 0 {
		maxBody = p.Settings.MaxBody
	}
	opts := g.opts
	v := &opts.Verifier
	v.Policy.MaxAge = p.Settings.MaxAge
	if r.MaxAge != 0 {
		v.Policy.MaxAge = r.MaxAge
	}
	v.Policy.MaxSkew = p.Settings.MaxSkew
	if v.Policy.MaxSkew == 0 {
		v.Policy.MaxSkew = -1 // the setting 0 is none; the Policy's zero is the default
	}
	v.Policy.Tag = p.Settings.Tag
	v.Policy.Algorithms = r.Algorithms
	v.Policy.Extra = r.Require
	v.Scheme = p.Settings.Scheme
	v.Debug = p.Settings.DebugExplain
	opts.MaxBodyBytes = maxBody
	opts.Budget = g.budget
	if len(r.Scopes.AllOf)+len(r.Scopes.AnyOf) > 0 {
		scopes := r.Scopes
		opts.Authorize = func(_ *http.Request, id *middleware.Identity) string {
			if missing := scopes.Missing(id.Scopes); missing != "" {
				return "this route needs " + missing
			}
			return ""
		}
	}
	opts.Presigned = r.Presigned == nil || *r.Presigned
	if r.Presigned != nil && *r.Presigned {
		opts.Verifier.Presign.Methods = presignMethods(r.Method)
	}
	return opts
}

// presignMethods returns the methods a route that allows presigned
// requests takes them for: its method (and HEAD with GET), or every
// method when the route matches any.
func presignMethods(method string) []string {
	switch method {
	case "":
		return []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}
	case http.MethodGet:
		return []string{http.MethodGet, http.MethodHead}
	}
	return []string{method}
}

// publicHandler passes requests on without a signature, their bodies
// streamed under the limit.
func (g *Gateway) publicHandler(maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			w.Header().Set("Connection", "close")
			g.writeProblem(w, http.StatusRequestEntityTooLarge, string(middleware.ReasonBodyTooLarge), "Request body too large", "the request body is over the limit of this route")
			g.observe(r, middleware.Outcome{Status: http.StatusRequestEntityTooLarge, Reason: middleware.ReasonBodyTooLarge, Err: errors.New("gateway: body over the limit of a public route")})
			return
		}
		if httpsig.IsPresigned(r) {
			// Its signature would go unchecked, and reach the upstream.
			g.refuseStatus(w, r, http.StatusForbidden, httpsig.ReasonInsufficientScope, "Insufficient scope", "presigned URLs are not accepted on a public route")
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		if g.signsUpstream(routedOf(r)) && !g.bufferPublic(w, r, maxBody) {
			return
		}
		g.metrics.public(routedOf(r).route.Name)
		if g.cfg.Meter != nil {
			g.cfg.Meter.Count("", routedOf(r).route.Name, "")
		}
		g.relayed(w, r)
	})
}

// serveRouted finds the route of a request under the policy in force and
// hands the request to it, with what its signature was made over when it
// came through a trusted proxy.
func (g *Gateway) serveRouted(w http.ResponseWriter, r *http.Request) {
	s := g.snap.Load()
	p := s.policy
	path, _, _, detail := splitTarget(r)
	if detail != "" {
		g.refuse(w, r, middleware.ReasonInvalidTarget, "Invalid request target", detail)
		return
	}
	var origin policy.Origin
	if !s.legacy {
		var err error
		origin, err = p.Proxies.Origin(r.RemoteAddr, r.TLS != nil, r.Host, r.Header, p.Settings.Scheme)
		if err != nil {
			g.refuse(w, r, ReasonInvalidForwarded, "Invalid forwarding fields", strings.TrimPrefix(err.Error(), "policy: "))
			return
		}
	} else {
		origin.Authority = r.Host
	}
	route, err := p.Match(r.Method, origin.Authority, path)
	if err != nil {
		// te in this branch only: errors.As makes it escape, an
		// allocation per request otherwise.
		var te *policy.TargetError
		if errors.As(err, &te) {
			g.refuse(w, r, middleware.ReasonInvalidTarget, "Invalid request target", te.Detail)
			return
		}
		g.refuseStatus(w, r, http.StatusNotFound, ReasonNoRoute, "No route", "no route of the gateway takes "+r.Method+" requests for this path")
		return
	}
	up := s.upstreams[route.Upstream.Name]
	if d := checkUpstreamTarget(r, up); d != "" {
		g.refuse(w, r, middleware.ReasonInvalidTarget, "Invalid request target", d)
		return
	}
	if r.Trailer == nil && r.ContentLength < 0 {
		// The server puts trailers in the Trailer of the request it made,
		// which the copies below would not see, unless the map is shared.
		r.Trailer = http.Header{}
	}
	r = withRouted(r, w.Header(), s, route, up)
	if origin.Forwarded {
		r = middleware.WithOrigin(r, middleware.Origin{Scheme: origin.Scheme, Authority: origin.Authority, PathPrefix: origin.Prefix})
	}
	s.routes[route.Index].handler.ServeHTTP(w, r)
}

// checkUpstreamTarget returns why r's target cannot be passed on to up as
// it will be verified, or "".
func checkUpstreamTarget(r *http.Request, up *upstream) string {
	path, query, hasQuery, detail := up.target(r)
	if detail == "" && strings.HasPrefix(path, "//") {
		// The one case where the URL might not be written as given.
		u := up.url(path, query, hasQuery)
		want := path
		if u.ForceQuery || u.RawQuery != "" {
			want += "?" + u.RawQuery
		}
		if u.RequestURI() != want {
			detail = "the request target cannot be passed on byte for byte; percent-encode it"
		}
	}
	return detail
}

// roundTrip sends a request to the transport of the upstream it was
// routed to.
type roundTrip struct{}

func (roundTrip) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := routedOf(req)
	if rt == nil {
		return nil, errors.New("gateway: a request reached the transport without a route")
	}
	if err := signErrOf(req); err != nil {
		return nil, err
	}
	return rt.upstream.transport.RoundTrip(req)
}

// url returns the URL of up for the path and query target returned,
// which the transport writes as they are.
func (up *upstream) url(path, query string, hasQuery bool) *url.URL {
	return upstreamURL(up.URL, path, query, hasQuery)
}

// target returns the path and query up gets for r; see splitTarget.
func (up *upstream) target(r *http.Request) (path, query string, hasQuery bool, detail string) {
	path, query, hasQuery, detail = splitTarget(r)
	if detail != "" {
		return
	}
	switch base := up.basePath; {
	case base == "":
	case hasDotSegment(path):
		return "", "", false, "the path has a dot-segment (., .., or one percent-encoded), which could leave the upstream's base path"
	case strings.HasSuffix(base, "/"):
		path = base + path[1:]
	default:
		path = base + path
	}
	return path, query, hasQuery, ""
}
