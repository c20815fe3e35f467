// Package gateway is Signet's authenticating reverse proxy: it verifies
// the RFC 9421 signature of every request with [middleware.Verify] and
// forwards the accepted ones, with the caller's identity, to an upstream
// HTTP service.
//
// [New] builds a [Gateway] from a [Config]. With a [policy.Policy], each
// request is routed (host, method, path) to its route's upstream and
// verified with that route's settings, or passed on unsigned on a public
// route; a request no route takes gets 404 no-route. [Gateway.SetPolicy]
// puts a reloaded policy in force for the requests that arrive after it. [Gateway.Handler] serves client
// traffic; [Gateway.AdminHandler] serves /healthz, /metrics and the key
// administration API under /v1/, itself protected by signatures from keys
// with the admin scope.
//
// Once a request's signature verified, the usage controls apply (see
// Config.Limiter, Config.Uses, Config.Meter): the route's, the key's and
// the owner's rates, then the key's uses, refusing with 429 rate-limited
// or uses-exhausted and telling limited keys where they stand in the
// RateLimit-Policy and RateLimit fields; every request is metered.
//
// The upstream receives each request as the client sent it, its target
// byte for byte under the upstream URL's path, except that every client
// field that a stack could read as X-Signet-* (any case, '_' for '-') is
// removed, X-Signet-Key-Id, X-Signet-Owner and X-Signet-Scopes carry the
// verified identity, X-Forwarded-For, -Host and -Proto say where it came
// from, X-Request-Id identifies it, a covered field of several lines is the
// one value that was verified, and the Signature and Signature-Input fields
// are removed if Config.StripSignature is set. Before anything is verified
// or read, the gateway refuses (400) a target that cannot be forwarded as
// it will be verified (a fragment, the absolute form, a dot-segment under
// a base path, one that cannot be written byte for byte), a CONNECT and
// an Upgrade to anything but WebSocket; the rest of the checks are [middleware.Verify]'s. The
// upstream must be reachable only through the gateway, since it trusts
// the identity fields, unless the gateway signs what it forwards
// (upstream_signing, Config.UpstreamSigning; see signUpstream) and the
// upstream checks that signature ([middleware.TrustGateway]).
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
	"github.com/signet-dev/signet/respsign"
)

// Identity fields the upstream receives.
const (
	HeaderKeyID  = "X-Signet-Key-Id"
	HeaderOwner  = "X-Signet-Owner"
	HeaderScopes = "X-Signet-Scopes"
	// HeaderMetadata carries the key's metadata, a JSON object, on routes
	// with forward_metadata (non-ASCII characters as \u escapes).
	HeaderMetadata  = "X-Signet-Metadata"
	HeaderRequestID = "X-Request-Id"
)

// Pinger is implemented by the stores that can say whether they are up.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config configures a Gateway. Zero values are documented defaults.
type Config struct {
	// Policy routes requests to upstreams and says what each route
	// requires; it also supplies the verification settings (maximum age,
	// skew, tag, scheme, debug, body limit, stripping of signatures),
	// which then replace those of Verify, StripSignature and
	// UpstreamTimeout. Nil means one route of every path, signed, to
	// Upstream, with those fields. SetPolicy replaces it.
	Policy *policy.Policy
	// Upstream is the service requests are forwarded to when there is no
	// Policy.
	Upstream *url.URL
	// Verify configures the verification of requests; its Verifier's
	// Keys and Nonces are required. The admin API verifies with the same
	// settings, but takes bodies of at most 64 KiB and never shows
	// signature bases. Every outcome goes to the gateway's metrics and
	// logs, then to Verify.Observe, if set.
	Verify middleware.Options
	// Admin serves the key administration API; nil leaves /v1/ out.
	Admin KeyAdmin
	// Keyring holds the gateway's own Ed25519 keys. When set, every
	// response of the client listener is signed with the key of it that
	// signs at the time (docs/signed-responses.md): the gateway's own
	// answers (refusals, its errors, the key set) with tag signet-gateway,
	// the upstream's with tag signet-response; and the public keys are
	// published at KeysPath on both listeners. SetKeyring replaces it.
	Keyring *keyring.Ring
	// StripSignature removes Signature and Signature-Input before
	// forwarding.
	StripSignature bool
	// Transport, if set, reaches every upstream; nil means one per
	// upstream, with its settings (see NewTransport).
	Transport http.RoundTripper
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// Registry receives the metrics; nil means a new registry, served at
	// /metrics of the admin handler.
	Registry *prometheus.Registry

	// MaxInFlight bounds the client requests handled at once, each from
	// the end of its header to the end of its response (a WebSocket for
	// as long as it is open). Beyond it a request is answered at once,
	// before anything of it is read or verified, with 503 unavailable
	// and Retry-After. Zero means DefaultMaxInFlight.
	MaxInFlight int
	// UpstreamTimeout bounds the wait for the upstream's response header
	// once the request is sent (504 beyond). Zero means
	// DefaultUpstreamTimeout, negative no bound. It applies to the
	// default Transport; a Transport of one's own brings its own.
	UpstreamTimeout time.Duration
	// WriteTimeout is how long a client may take to accept each write of
	// its response before the connection is closed. Zero means
	// DefaultWriteTimeout, negative no bound.
	WriteTimeout time.Duration

	// UpstreamSigning has the gateway sign each forwarded request with
	// its Keyring, for upstreams behind middleware.TrustGateway, when
	// there is no Policy (with one, the policy's upstream_signing says).
	// New returns an error if it is set without a Keyring.
	UpstreamSigning bool
	// Limiter applies the rate limits to the requests whose signature
	// verified: a route's (policy), the key's (its record, or
	// DefaultRate), the owner's (OwnerRate). limit/memory for one
	// gateway, limit/redis for several. Nil: no rates, and a policy whose
	// routes have one is refused.
	Limiter limit.Limiter
	// Uses spends the budgets of uses of keys that have one, taking them
	// from the key store (see Ledger). Nil: a request of a key with a
	// budget gets 503, failing closed.
	Uses limit.Counter
	// DefaultRate applies to the keys whose record sets no rate limit;
	// zero: none.
	DefaultRate limit.Rate
	// OwnerRate applies to all the keys of each owner together; zero:
	// none.
	OwnerRate limit.Rate
	// Meter, if set, counts every client request: per key (once its key
	// is found), route (with a policy) and outcome (accepted, or the
	// reason of the refusal). Its owner closes it after the gateway's
	// last request, so that it writes its last counts.
	Meter Meter
}

// Gateway is the reverse proxy. It is safe for concurrent use.
type Gateway struct {
	cfg         Config
	snap        atomic.Pointer[snapshot]
	respKeys    atomic.Pointer[responseKeys]
	policyMu    sync.Mutex // serialises SetPolicy
	budget      *middleware.Budget
	log         *slog.Logger
	metrics     *metrics
	opts        middleware.Options // of the client handler, as used
	problemBase string
	proxy       *httputil.ReverseProxy
	handler     http.Handler
	admin       http.Handler
	checkers    []check

	signFailures *sampledLog // requests not forwarded: not signed

	inFlight       *inFlight
	draining       atomic.Bool
	unavailable    *sampledLog // 503s: the stores could not answer
	overloaded     *sampledLog // 503s: MaxInFlight reached
	upstreamFailed *sampledLog
}

// check is a dependency /healthz asks.
type check struct {
	name string
	p    Pinger
}

// New returns a Gateway for cfg.
func New(cfg Config) (*Gateway, error) {
	v := &cfg.Verify.Verifier
	switch {
	case cfg.Policy == nil && (cfg.Upstream == nil || cfg.Upstream.Host == ""):
		return nil, errors.New("gateway: Config.Upstream needs a scheme and host")
	case cfg.Policy == nil && cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https":
		return nil, errors.New("gateway: the upstream URL must be http or https")
	case v.Keys == nil:
		return nil, errors.New("gateway: Config.Verify.Verifier.Keys is nil")
	case v.Nonces == nil:
		return nil, errors.New("gateway: Config.Verify.Verifier.Nonces is nil")
	case cfg.MaxInFlight < 0:
		return nil, errors.New("gateway: Config.MaxInFlight is negative")
	}
	if err := checkUsageConfig(&cfg); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, problemBase: cfg.Verify.ProblemBase}
	if g.log == nil {
		g.log = slog.Default()
	}
	if g.problemBase == "" {
		g.problemBase = middleware.DefaultProblemBase
	}
	if cfg.Registry == nil {
		g.cfg.Registry = prometheus.NewRegistry()
	}
	g.inFlight = newInFlight(orDefault(cfg.MaxInFlight, DefaultMaxInFlight), orDefault(cfg.WriteTimeout, DefaultWriteTimeout))
	g.metrics = newMetrics(g.cfg.Registry, v.Keys, v.Nonces, g.inFlight)
	g.unavailable = newSampledLog(g.log, slog.LevelError, "verification unavailable")
	g.overloaded = newSampledLog(g.log, slog.LevelError, "overloaded: refused a request beyond the limit of requests in flight")
	g.upstreamFailed = newSampledLog(g.log, slog.LevelWarn, "upstream error")
	g.signFailures = newSampledLog(g.log, slog.LevelError, "upstream signing failed: request not forwarded")
	if cfg.Transport == nil && cfg.Policy == nil {
		t := NewTransport()
		t.ResponseHeaderTimeout = max(orDefault(cfg.UpstreamTimeout, DefaultUpstreamTimeout), 0)
		g.cfg.Transport = newDirectTransport(t, cfg.Upstream.Scheme, cfg.Upstream.Host)
	}
	if p, ok := v.Keys.(Pinger); ok {
		g.checkers = append(g.checkers, check{"key_store", p})
	}
	if p, ok := v.Nonces.(Pinger); ok {
		g.checkers = append(g.checkers, check{"replay_store", p})
	}
	g.opts = cfg.Verify
	g.opts.Verifier.Keys = countErrors{v.Keys, nil, g.metrics.keyStoreErrors, g.metrics.keyLookupSeconds}
	g.opts.Verifier.Nonces = countErrors{nil, v.Nonces, g.metrics.replayStoreErrors, nil}
	g.opts.Observe = g.observe
	g.opts.ResponseSigner = nil // the gateway signs around everything it answers
	if cfg.Policy == nil {
		g.opts.Presigned = true
	}
	budget := g.opts.BodyBudget
	if budget <= 0 {
		budget = middleware.DefaultBodyBudget
	}
	if cfg.Policy != nil {
		budget = max(budget, cfg.Policy.Settings.BodyBudget, cfg.Policy.Settings.MaxBody)
		for _, r := range cfg.Policy.Routes {
			budget = max(budget, r.MaxBody)
		}
	}
	g.budget = middleware.NewBudget(max(budget, g.opts.MaxBodyBytes))
	g.opts.Budget = g.budget
	g.proxy = &httputil.ReverseProxy{
		Rewrite:      g.rewrite,
		Transport:    roundTrip{},
		ErrorHandler: g.upstreamError,
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode < 100 {
				// net/http's reader takes any three digits; ResponseWriter
				// panics on a status below 100, which would drop the client
				// without an answer and leave the upstream's connection
				// open. ReverseProxy closes the body and answers 502.
				return fmt.Errorf("gateway: the upstream answered with status %03d", resp.StatusCode)
			}
			restoreFields(resp.Request)
			corsResponse(resp)
			return modifyResponse(resp)
		},
		BufferPool: &bufferPool{},
		// FlushInterval stays zero: ReverseProxy passes streamed responses
		// (server-sent events, unknown length) on as they come anyway.
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	if err := g.SetKeyring(cfg.Keyring); err != nil {
		return nil, err
	}
	if cfg.Policy != nil {
		if err := g.SetPolicy(cfg.Policy); err != nil {
			return nil, err
		}
	} else {
		s, err := g.legacySnapshot()
		if err != nil {
			return nil, err
		}
		g.snap.Store(s)
	}
	g.handler = withRequestID(g.withCORS(g.inFlight.handler(g.signing(g.checkForward()), g.signing(http.HandlerFunc(g.refuseOverloaded)).ServeHTTP, g.upstreamBroke)))
	g.admin = g.newAdminHandler()
	return g, nil
}

// NewTransport returns the transport a Gateway uses by default: that of
// an upstream of a policy file with no settings of its own (many idle
// connections to the one upstream, where net/http keeps only two per host,
// which halves throughput under load; bounded dial and handshake times;
// no content coding asked for on the client's behalf).
func NewTransport() *http.Transport {
	return new(policy.Upstream).NewTransport()
}

// Handler returns the handler for client traffic.
func (g *Gateway) Handler() http.Handler { return g.handler }

// AdminHandler returns the handler of the admin listener.
func (g *Gateway) AdminHandler() http.Handler { return g.admin }

func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	// serveRouted made sure the target can be forwarded as received.
	rt := routedOf(pr.In)
	path, query, hasQuery, _ := rt.upstream.target(pr.In)
	// pr.Out.URL is ReverseProxy's copy of the client's, the out
	// request's own: overwritten rather than made anew.
	if pr.Out.URL == nil {
		pr.Out.URL = new(url.URL)
	}
	setUpstreamURL(pr.Out.URL, rt.upstream.URL, path, query, hasQuery)
	// The clone keeps the client's RequestURI, which the transports
	// ignore but the gateway's signature (signUpstream) would cover in
	// place of the target written from pr.Out.URL, under the upstream
	// URL's base path and query.
	pr.Out.RequestURI = ""
	pr.Out.Host = pr.In.Host // the upstream sees the host the client asked for
	if pr.Out.Body != nil && pr.In.GetBody != nil {
		// The body is in memory (verified or buffered), but ReverseProxy
		// hands it on in a wrapper net/http cannot see through, which
		// makes the transport write the header and the body in two
		// packets; handed on as it is, they leave in one.
		if b, err := pr.In.GetBody(); err == nil {
			pr.Out.Body = b
		}
	}
	h := pr.Out.Header
	for k := range h {
		if spoofable(k) {
			delete(h, k)
		}
	}
	// The values of the fields the gateway sets come from one array.
	var f fieldValues
	// ReverseProxy removes the client's X-Forwarded-For, -Host and
	// -Proto; these too, which the gateway did not check (or has turned
	// into the X-Forwarded-* it sets below).
	delete(h, "Forwarded")
	delete(h, "X-Forwarded-Prefix")
	// What pr.SetXForwarded sets (ReverseProxy has removed the client's
	// X-Forwarded-For: none to keep), with the host and scheme that the
	// gateway routed and verified when they are not the request's own.
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		h["X-Forwarded-For"] = f.field(ip)
	}
	fwdHost, fwdProto := pr.In.Host, "http"
	if pr.In.TLS != nil {
		fwdProto = "https"
	}
	if o, ok := middleware.OriginOf(pr.In); ok {
		fwdHost, fwdProto = o.Authority, o.Scheme
		if o.PathPrefix != "" {
			h["X-Forwarded-Prefix"] = f.field(o.PathPrefix)
		}
	}
	h["X-Forwarded-Host"] = f.field(fwdHost)
	h["X-Forwarded-Proto"] = f.field(fwdProto)
	if len(h["Accept-Encoding"]) > 0 && browserRequest(pr.In) && g.Keyring() != nil && !coversAcceptEncoding(pr.In.Header) {
		// A browser asks for compressed content on its own and hands the
		// page the decoded bytes, so the page could never check the
		// signed digest of compressed ones: the upstream is asked for
		// the content as it is (unless a signature covers the field).
		h["Accept-Encoding"] = []string{"identity"}
	}
	strip := g.cfg.StripSignature
	if !rt.snap.legacy {
		strip = rt.snap.policy.Settings.StripSignature
	}
	if strip {
		delete(h, "Signature")
		delete(h, "Signature-Input")
	}
	if id, ok := middleware.FromContext(pr.In.Context()); ok {
		h[HeaderKeyID] = f.field(id.KeyID)
		h[HeaderOwner] = f.field(id.Owner)
		h[HeaderScopes] = f.field(strings.Join(id.Scopes, ","))
		if rt.route.ForwardMetadata && rt.key != nil && rt.key.KeyID() == id.KeyID {
			if md, ok := rt.key.(interface{ Metadata() []byte }); ok && len(md.Metadata()) > 0 {
				h[HeaderMetadata] = f.field(asciiJSON(md.Metadata()))
			}
		}
	}
	g.signUpstream(pr, rt)
	if _, ok := pr.Out.Header["User-Agent"]; !ok {
		// What ReverseProxy sets after Rewrite (so that the transport
		// sends no User-Agent of its own), from the same array.
		pr.Out.Header["User-Agent"] = f.field("")
	}
}

// fieldValues makes the one-value slices of the header fields rewrite
// sets from one array, one allocation instead of one per field. Each
// slice has a capacity of one: appending to it copies, and no field
// writes into another's value.
type fieldValues struct {
	vals *[8]string
	n    int
}

func (f *fieldValues) field(v string) []string {
	if f.vals == nil {
		f.vals = new([8]string)
	}
	if f.n == len(f.vals) {
		return []string{v}
	}
	f.vals[f.n] = v
	f.n++
	return f.vals[f.n-1 : f.n : f.n]
}

// coversAcceptEncoding reports whether a signature of h may cover
// Accept-Encoding: any Signature-Input line that names it.
func coversAcceptEncoding(h http.Header) bool {
	for _, line := range h["Signature-Input"] {
		if strings.Contains(strings.ToLower(line), `"accept-encoding"`) {
			return true
		}
	}
	return false
}

// asciiJSON returns the JSON text js, compacted, with every character
// outside printable ASCII written as a \u escape: a field value any
// upstream reads the same way.
func asciiJSON(js []byte) string {
	var c bytes.Buffer
	if err := json.Compact(&c, js); err != nil {
		return "{}" // the key store holds only valid objects
	}
	var b strings.Builder
	for _, r := range c.String() {
		switch {
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, "\\u%04x\\u%04x", r1, r2)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

func joinQuery(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "&" + b
}

func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away, or a shutdown cut the request: nobody to
		// answer, and returning would have net/http write an empty 200,
		// a whole response to a request that never was.
		panic(http.ErrAbortHandler)
	}
	if s, ok := r.Context().Value(signerKey{}).(*respsign.Signer); ok {
		s.Own(r) // the gateway's answer, not the upstream's
	}
	restoreFields(r) // the upstream may have sent a 1xx before it failed
	if g.signFailed(w, err) {
		return
	}
	g.metrics.upstreamErrors.Inc()
	g.upstreamFailed.add(err.Error(), "request_id", r.Header.Get(HeaderRequestID), "method", r.Method, "path", r.URL.Path, "error", err.Error())
	g.writeProblem(w, status, "upstream-unavailable", "Upstream unavailable", "the service behind the gateway did not answer")
}

// observe records the outcome of verification in metrics and logs, and
// passes it on to the Observe of the configuration.
func (g *Gateway) observe(r *http.Request, o middleware.Outcome) {
	if g.cfg.Verify.Observe != nil {
		defer g.cfg.Verify.Observe(r, o)
	}
	route := ""
	rt := routedOf(r)
	if rt != nil {
		route = rt.route.Name
		if o.Status != 0 {
			g.meterRefusal(r, o)
		}
	}
	g.metrics.observe(o, route)
	if o.Status == 0 && !g.log.Enabled(r.Context(), slog.LevelDebug) {
		return // accepted requests are logged at debug level only
	}
	attrs := []any{
		"request_id", r.Header.Get(HeaderRequestID), "method", r.Method, "path", r.URL.Path, "route", route,
		"key_id", o.KeyID, "verify_ms", float64(o.Elapsed.Microseconds()) / 1000,
	}
	switch {
	case o.Status == 0:
		g.log.Debug("accepted", attrs...)
	case o.Status == http.StatusServiceUnavailable:
		g.unavailable.add(o.Err.Error(), append(attrs, "reason", string(o.Reason), "error", o.Err.Error())...)
	default:
		g.log.Info("refused", append(attrs, "status", o.Status, "reason", string(o.Reason), "detail", detailOf(o.Err))...)
	}
}

func detailOf(err error) string {
	var ve *httpsig.VerifyError
	if errors.As(err, &ve) {
		return ve.Detail
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// withRequestID gives every request an X-Request-Id: the client's, when it
// is a short printable token, or a new random one; and echoes it.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
			// The request's value and the response's from one array;
			// each slice has a capacity of one, so neither writes into
			// the other.
			ids := &[2]string{id, id}
			r.Header[HeaderRequestID] = ids[0:1:1]
			w.Header()[HeaderRequestID] = ids[1:2:2]
		} else {
			w.Header()[HeaderRequestID] = []string{id}
		}
		next.ServeHTTP(w, r)
	})
}

// restoreFields puts back the fields the gateway set in the client's
// response header before it forwarded r (X-Request-Id, the CORS fields,
// the rate limits) when a 1xx response of the upstream took them:
// httputil.ReverseProxy passes a 1xx on with the header it finds, the
// gateway's fields and the 1xx's, then empties the header for the final
// response. It runs before the proxy copies the upstream's final header
// or the gateway writes its own answer, so the gateway's fields come
// first, as they would have, and where the gateway replaces the
// upstream's (corsResponse) it still does.
func restoreFields(r *http.Request) {
	if r == nil {
		return
	}
	rt := routedOf(r)
	if rt == nil || rt.header == nil || len(rt.header) > 0 {
		// Never empty otherwise: withRequestID always sets X-Request-Id.
		return
	}
	h := rt.header
	// withRequestID put the response's X-Request-Id first in the request,
	// which the proxy's outgoing request r copies.
	if id := r.Header[HeaderRequestID]; len(id) > 0 {
		h[HeaderRequestID] = []string{id[0]}
	}
	if allowed, ok := r.Context().Value(corsKey).(bool); ok {
		setCORS(h, r.Header["Origin"], allowed)
	}
	if rt.limits != nil {
		rt.limits.AddTo(h)
	}
}

// Request ids are a random prefix per process and a counter: unique
// without a system call per request.
var (
	requestIDPrefix = func() (p [8]byte) { rand.Read(p[:]); return p }()
	requestIDCount  atomic.Uint64
)

func newRequestID() string {
	var b [16]byte
	copy(b[:8], requestIDPrefix[:])
	binary.BigEndian.PutUint64(b[8:], requestIDCount.Add(1))
	return hex.EncodeToString(b[:])
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// countErrors counts the errors of a key resolver or nonce store that mean
// it could not answer (not refusals), and times key lookups.
type countErrors struct {
	keys    httpsig.KeyResolver
	nonces  httpsig.NonceStore
	errs    prometheus.Counter
	seconds prometheus.Histogram
}

func (c countErrors) ResolveKey(ctx context.Context, id string) (httpsig.VerifyingKey, error) {
	start := time.Now()
	k, err := c.keys.ResolveKey(ctx, id)
	c.seconds.Observe(time.Since(start).Seconds())
	if lk, ok := k.(limitedKey); ok && err == nil {
		if rt, _ := ctx.Value(routedKey).(*routed); rt != nil {
			rt.key = lk // for the usage controls, once the signature verifies
		}
	}
	if err != nil && !errors.Is(err, httpsig.ErrUnknownKey) && !errors.Is(err, httpsig.ErrKeyRevoked) && !errors.Is(err, httpsig.ErrKeyExpired) {
		c.errs.Inc()
	}
	return k, err
}

func (c countErrors) Remember(ctx context.Context, keyID, nonce string, created, until time.Time) error {
	err := c.nonces.Remember(ctx, keyID, nonce, created, until)
	if err != nil && !errors.Is(err, httpsig.ErrReplayed) {
		c.errs.Inc()
	}
	return err
}
