package middleware

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keyring"
	"github.com/signet-dev/signet/replay/memory"
)

// What a Signet gateway's signature on a forwarded request is called
// (gateway.UpstreamLabel and gateway.UpstreamTag).
const (
	GatewayLabel = "signet"
	GatewayTag   = "signet-gateway"
)

// Defaults of TrustOptions.
const (
	DefaultTrustMaxAge     = 60 * time.Second
	DefaultTrustMaxSkew    = 5 * time.Second
	DefaultKeysRefresh     = 5 * time.Minute
	DefaultKeysMinInterval = time.Second
)

// TrustOptions configures [TrustGateway]. Exactly one of JWKSURL,
// JWKSFile and Keys says where the gateway's public keys come from.
type TrustOptions struct {
	// JWKSURL is where the gateway publishes its keys: its
	// /.well-known/signet-keys. The set is fetched at the first request,
	// again every Refresh, and when a signature names a key it does not
	// hold, which is how a rotated key is learnt without a refused
	// request. Loads are at most one every MinInterval: a request that
	// needs one sooner waits for it.
	JWKSURL string
	// HTTPClient fetches JWKSURL; nil means a client with a 5 s timeout.
	HTTPClient *http.Client
	// AllowHTTP lets JWKSURL be plain http to a host that is not a
	// loopback address: only where nobody can come between the service
	// and the gateway's admin listener, since whoever can replaces the
	// keys. Otherwise use https, JWKSFile or Keys.
	AllowHTTP bool
	// JWKSFile is a file holding the published set, read at once (an
	// error is returned for a bad file) and again as JWKSURL is fetched.
	JWKSFile string
	// Keys pins public keys by keyid (their RFC 7638 thumbprint, which
	// `signet` prints); they never change.
	Keys map[string]ed25519.PublicKey
	// Refresh and MinInterval: see JWKSURL. Zero means
	// DefaultKeysRefresh and DefaultKeysMinInterval.
	Refresh, MinInterval time.Duration

	// Nonces remembers the nonces of the gateway's signatures; nil means
	// an in-memory store of MaxEntries entries (zero: the store's
	// default). Upstream instances behind one gateway may each keep their
	// own: the gateway sends each request to one of them.
	Nonces     httpsig.NonceStore
	MaxEntries int
	// MaxAge and MaxSkew bound the created time of the gateway's
	// signatures; zero means DefaultTrustMaxAge and DefaultTrustMaxSkew.
	// The gateway signs just before it forwards, so they can be short.
	MaxAge, MaxSkew time.Duration
	// Label and Tag select the gateway's signature; empty means
	// GatewayLabel and GatewayTag.
	Label, Tag string
	// MaxBodyBytes, BodyBudget, ProblemBase, Realm and Observe are as in
	// Options.
	MaxBodyBytes int64
	BodyBudget   int64
	ProblemBase  string
	Realm        string
	Observe      func(r *http.Request, o Outcome)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Vouched is what a gateway vouched for about a request.
type Vouched struct {
	// KeyID, Owner and Scopes are the client's, as the gateway verified
	// them; empty when Public.
	KeyID  string
	Owner  string
	Scopes []string
	// Public is set when the gateway passed the request on unsigned (a
	// public route): it came through the gateway, from nobody known.
	Public bool
	// RequestID is the gateway's X-Request-Id of the request.
	RequestID string
	// GatewayKeyID is the key the gateway signed with; Created when.
	GatewayKeyID string
	Created      time.Time
}

var vouchedKey = &contextKey{"vouched"}

// VouchedFromContext returns what TrustGateway verified of the request.
func VouchedFromContext(ctx context.Context) (*Vouched, bool) {
	v, ok := ctx.Value(vouchedKey).(*Vouched)
	return v, ok
}

// TrustGateway returns a middleware for a service behind a Signet gateway
// that signs what it forwards (upstream_signing): it lets through only
// requests that carry a valid gateway signature (label signet, tag
// signet-gateway, Ed25519, by a key the gateway publishes), fresh, with a
// nonce not seen before, covering the request's method, authority, path,
// query, content type, content (checked against Content-Digest),
// X-Request-Id and every X-Signet-* field the request has. The next
// handler finds what the gateway vouched for with [VouchedFromContext],
// and, unless the route was public, the client's [Identity] with
// [FromContext] (so that [RequireScopes] works behind it).
//
// A request that did not come through the gateway (no signature, another
// key, X-Signet-* fields of its own, a changed path or body) is refused
// with a problem+json 401 (missing-signature, unknown-key,
// bad-signature, replayed, digest-mismatch, missing-component for an
// X-Signet-* field the signature does not cover, ...),
// or 400, 413 or 503 as [Verify] does (503 also when the gateway's keys
// were never loaded: fail closed).
func TrustGateway(opts TrustOptions) (func(http.Handler) http.Handler, error) {
	keys, err := newGatewayKeys(&opts)
	if err != nil {
		return nil, err
	}
	maxAge, skew := orDur(opts.MaxAge, DefaultTrustMaxAge), orDur(opts.MaxSkew, DefaultTrustMaxSkew)
	nonces := opts.Nonces
	if nonces == nil {
		nonces = memory.New(memory.Options{MaxEntries: opts.MaxEntries, MaxSkew: skew, Now: opts.Now})
	}
	label, tag := opts.Label, opts.Tag
	if label == "" {
		label = GatewayLabel
	}
	if tag == "" {
		tag = GatewayTag
	}
	o := Options{
		Verifier: httpsig.Verifier{
			Policy: httpsig.Policy{
				Labels: []string{label}, Tag: tag, MaxAge: maxAge, MaxSkew: skew,
				Algorithms: []httpsig.Algorithm{httpsig.AlgEd25519},
				Extra:      []httpsig.Component{{Name: "x-request-id"}},
			},
			Keys: keys, Nonces: nonces, Now: opts.Now,
		},
		MaxBodyBytes: opts.MaxBodyBytes, BodyBudget: opts.BodyBudget,
		ProblemBase: opts.ProblemBase, Realm: opts.Realm, Observe: opts.Observe,
	}.withDefaults()
	b := &NewBudget(o.BodyBudget).b
	return func(next http.Handler) http.Handler {
		return &trustVerifier{verifier{opts: o, budget: b, next: next}}
	}, nil
}

func orDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

type trustVerifier struct{ mw verifier }

// The identity fields a gateway sets.
const (
	fieldKeyID  = "X-Signet-Key-Id"
	fieldOwner  = "X-Signet-Owner"
	fieldScopes = "X-Signet-Scopes"
)

func (t *trustVerifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mw := &t.mw
	start := time.Now()
	if ref := checkRequest(r); ref != nil {
		mw.refuse(w, r, ref, start)
		return
	}
	res, err := mw.opts.Verifier.VerifyRequestHeader(r)
	if err != nil {
		mw.refuse(w, r, verifyRefusal(err), start)
		return
	}
	if name := uncoveredSignetField(r.Header, res.Covered); name != "" {
		mw.refuse(w, r, &refusal{
			status: http.StatusUnauthorized, reason: httpsig.ReasonMissingComponent, keyID: res.KeyID, label: res.Label, unread: true,
			detail: "the field " + strconv.Quote(name) + " is not covered by the gateway's signature",
		}, start)
		return
	}
	if name := combineCovered(r.Header, res.Covered); name != "" {
		mw.refuse(w, r, &refusal{
			status: http.StatusBadRequest, reason: ReasonInvalidField, keyID: res.KeyID, unread: true,
			detail: "the covered field " + strconv.Quote(name) + " has several lines, the last one empty",
		}, start)
		return
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
	if len(body) > 0 && res.ContentDigest == "" {
		// A body of unknown length that the signature did not cover.
		mw.refuse(w, r, &refusal{status: http.StatusUnauthorized, reason: httpsig.ReasonMissingComponent, keyID: res.KeyID, label: res.Label, detail: "the gateway's signature does not cover the content (content-digest)"}, start)
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
	v := &Vouched{RequestID: r.Header.Get("X-Request-Id"), GatewayKeyID: res.KeyID, Created: res.Created}
	ctx := r.Context()
	if ids := r.Header[fieldKeyID]; len(ids) > 0 {
		v.KeyID, v.Owner = ids[0], r.Header.Get(fieldOwner)
		if s := r.Header.Get(fieldScopes); s != "" {
			v.Scopes = strings.Split(s, ",")
		}
		ctx = NewContext(ctx, &Identity{KeyID: v.KeyID, Owner: v.Owner, Scopes: v.Scopes, Label: res.Label, Created: res.Created})
	} else {
		v.Public = true
	}
	r = r.WithContext(context.WithValue(ctx, vouchedKey, v))
	r.Body = bodyOf(body)
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return bodyOf(body), nil }
	if mw.opts.Observe != nil {
		mw.opts.Observe(r, Outcome{KeyID: res.KeyID, Elapsed: time.Since(start)})
	}
	mw.next.ServeHTTP(w, r)
}

// uncoveredSignetField returns the name of a field of h that a stack could
// read as X-Signet-* (any case, '_' for '-') and that covered does not
// name exactly, or "". The identity fields go together: X-Signet-Key-Id
// brings the other two.
func uncoveredSignetField(h http.Header, covered []httpsig.Component) string {
	for name := range h {
		if !signetField(name) {
			continue
		}
		ok := false
		switch name {
		case fieldKeyID, fieldOwner, fieldScopes:
			for _, c := range covered {
				ok = ok || (c.Name == strings.ToLower(name) && c.Param == "" && !c.Req && !c.SF && !c.BS && !c.Tr && c.Key == "")
			}
		}
		if !ok {
			return name
		}
	}
	if len(h[fieldKeyID]) > 0 && (len(h[fieldOwner]) == 0 || len(h[fieldScopes]) == 0) {
		return fieldOwner
	}
	return ""
}

func signetField(name string) bool {
	const prefix = "x-signet-"
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// gatewayKeys resolves the keyids of a gateway's published keys: pinned,
// or read from a file or URL, refreshed periodically and when a signature
// names a key the set lacks.
type gatewayKeys struct {
	load        func(ctx context.Context) (map[string]keyring.PublicKey, error)
	refresh     time.Duration
	minInterval time.Duration
	now         func() time.Time

	set   atomic.Pointer[keySet]
	mu    sync.Mutex // one load at a time
	tried time.Time  // of the last load, under mu
}

type keySet struct {
	keys    map[string]keyring.PublicKey
	verify  httpsig.KeyMap
	fetched time.Time
}

func newGatewayKeys(o *TrustOptions) (*gatewayKeys, error) {
	g := &gatewayKeys{refresh: orDur(o.Refresh, DefaultKeysRefresh), minInterval: orDur(o.MinInterval, DefaultKeysMinInterval), now: o.Now}
	if g.now == nil {
		g.now = time.Now
	}
	n := 0
	for _, set := range []bool{o.JWKSURL != "", o.JWKSFile != "", o.Keys != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("middleware: TrustOptions needs one of JWKSURL, JWKSFile and Keys")
	}
	switch {
	case o.Keys != nil:
		keys := make(map[string]keyring.PublicKey, len(o.Keys))
		for id, k := range o.Keys {
			if len(k) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("middleware: pinned key %q is not an Ed25519 public key", id)
			}
			keys[id] = keyring.PublicKey{ID: id, Key: k}
		}
		s, err := newKeySet(keys, time.Time{})
		if err != nil {
			return nil, err
		}
		g.set.Store(s)
		g.refresh = -1
	case o.JWKSFile != "":
		path := o.JWKSFile
		g.load = func(context.Context) (map[string]keyring.PublicKey, error) {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("middleware: the gateway's keys: %w", err)
			}
			return keyring.ParseJWKS(data)
		}
		if err := g.loadLocked(context.Background()); err != nil {
			return nil, err
		}
	default:
		client := o.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 5 * time.Second}
		}
		url := o.JWKSURL
		u, err := neturl.Parse(url)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("middleware: JWKSURL %q is not an absolute URL", url)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && (o.AllowHTTP || loopback(u.Hostname()))) {
			return nil, fmt.Errorf("middleware: the gateway's keys at %s://%s would come over plain http, which whoever sits between could replace: use https, JWKSFile or Keys, or set AllowHTTP", u.Scheme, u.Host)
		}
		g.load = func(ctx context.Context) (map[string]keyring.PublicKey, error) {
			return fetchJWKS(ctx, client, url)
		}
	}
	return g, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newKeySet(keys map[string]keyring.PublicKey, at time.Time) (*keySet, error) {
	m, err := keyring.Resolver(keys)
	if err != nil {
		return nil, err
	}
	return &keySet{keys: keys, verify: m, fetched: at}, nil
}

// maxJWKS bounds a fetched key set.
const maxJWKS = 1 << 20

func fetchJWKS(ctx context.Context, client *http.Client, url string) (map[string]keyring.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("middleware: the gateway's keys: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("middleware: fetching the gateway's keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("middleware: fetching the gateway's keys: %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	if err != nil {
		return nil, fmt.Errorf("middleware: fetching the gateway's keys: %w", err)
	}
	return keyring.ParseJWKS(data)
}

// reload loads the set again, unless another caller did while this one
// waited. Loads are at most one a MinInterval, whoever asks (a signature
// naming a key nobody published, say): the caller waits for its turn
// rather than being refused, since the key may be new.
func (g *gatewayKeys) reload(ctx context.Context) error {
	before, arrived := g.set.Load(), g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur := g.set.Load(); cur != before || g.tried.After(arrived) {
		return nil // loaded, or tried, while this caller waited
	}
	if left := g.minInterval - g.now().Sub(g.tried); !g.tried.IsZero() && left > 0 {
		t := time.NewTimer(left)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return g.loadLocked(ctx)
}

// refreshAsync loads the set again in the background, if no load is
// under way and the last is older than MinInterval: a stale set keeps
// verifying meanwhile.
func (g *gatewayKeys) refreshAsync() {
	if !g.mu.TryLock() {
		return
	}
	if !g.tried.IsZero() && g.now().Sub(g.tried) < g.minInterval {
		g.mu.Unlock()
		return
	}
	go func() {
		defer g.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		g.loadLocked(ctx)
	}()
}

func (g *gatewayKeys) loadLocked(ctx context.Context) error {
	now := g.now()
	g.tried = now
	keys, err := g.load(ctx)
	if err == nil {
		var s *keySet
		if s, err = newKeySet(keys, now); err == nil {
			g.set.Store(s)
		}
	}
	return err
}

// ResolveKey returns the key keyID names, loading the set again when it
// is stale or lacks the key. A key past its exp (no longer published) is
// refused; a set that cannot be loaded keeps the one loaded before (the
// keys it holds still verify) and, with none, fails closed.
func (g *gatewayKeys) ResolveKey(ctx context.Context, keyID string) (httpsig.VerifyingKey, error) {
	s := g.set.Load()
	if g.load != nil {
		if s == nil || s.verify[keyID] == nil {
			err := g.reload(ctx)
			if s = g.set.Load(); s == nil {
				if err == nil {
					err = errors.New("middleware: the gateway's keys are not loaded")
				}
				return nil, err
			}
		} else if g.now().Sub(s.fetched) >= g.refresh {
			g.refreshAsync()
		}
	}
	k, ok := s.verify[keyID]
	if !ok {
		return nil, httpsig.ErrUnknownKey
	}
	if exp := s.keys[keyID].Expires; !exp.IsZero() && !g.now().Before(exp) {
		return nil, httpsig.ErrKeyExpired
	}
	return k, nil
}
