package httpsig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// Defaults of a zero [Policy].
const (
	DefaultMaxAge  = 300 * time.Second
	DefaultMaxSkew = 30 * time.Second
	// MaxSignatures bounds how many signatures a message may carry: one
	// with more is refused as soon as the verifier reads the excess.
	MaxSignatures = 8
	// nonceGrace is how much longer than its signature is fresh a nonce
	// is remembered: enough for the time between the verifier reading
	// its clock and the store reading its own, and for the clocks of
	// servers that share a store to disagree a little.
	nonceGrace = time.Second
)

var defaultRequiredParams = [...]string{"created", "keyid", "nonce"}

// DefaultRequiredParams returns the signature parameters a zero Policy
// demands: created, keyid and nonce.
func DefaultRequiredParams() []string { return slices.Clone(defaultRequiredParams[:]) }

// Policy says what a verifier demands of a signature beyond its being
// valid. The zero value is the default profile of Signet.
type Policy struct {
	// Required lists the components each signature must cover. Nil means
	// the default profile: @method, @authority and @path; @query when the
	// request has a query; content-type when the request has that field;
	// content-digest when it has content.
	Required []Component
	// Extra lists components each signature must cover besides Required
	// (or the default profile): a route's Idempotency-Key, say.
	Extra []Component
	// RequiredParams lists the signature parameters each signature must
	// carry. Nil means [DefaultRequiredParams] (created, keyid, nonce).
	RequiredParams []string
	// MaxAge is how old a signature's created time may be. Zero means
	// DefaultMaxAge; negative means no limit.
	MaxAge time.Duration
	// MaxSkew is how far in the future a created time may be, for clocks
	// that run fast. Zero means DefaultMaxSkew; negative means none.
	MaxSkew time.Duration
	// Algorithms, if set, lists the only algorithms accepted.
	Algorithms []Algorithm
	// Tag, if set, selects the signatures whose tag parameter has this
	// value; the others are not examined.
	Tag string
	// Labels, if set, selects the signatures with these labels, which must
	// all be present. If nil, every signature of the message is checked
	// (at most MaxSignatures): a message is accepted only if all pass, so
	// a bad signature never rides on a good one.
	Labels []string
}

func (p *Policy) requiredParams() []string {
	if p.RequiredParams == nil {
		return defaultRequiredParams[:]
	}
	return p.RequiredParams
}

// RequiresNonce reports whether the policy demands a nonce of every
// signature, which only a [Verifier] with a [NonceStore] can honour.
func (p *Policy) RequiresNonce() bool {
	return slices.Contains(p.requiredParams(), "nonce")
}

func (p *Policy) maxAge() time.Duration {
	if p.MaxAge == 0 {
		return DefaultMaxAge
	}
	return p.MaxAge
}

func (p *Policy) maxSkew() time.Duration {
	switch {
	case p.MaxSkew == 0:
		return DefaultMaxSkew
	case p.MaxSkew < 0:
		return 0
	}
	return p.MaxSkew
}

// requiredFor returns the components the policy demands of a signature on
// r, which has content if hasContent is set.
func (p *Policy) requiredFor(r *http.Request, hasContent bool) []Component {
	req := p.Required
	if req == nil {
		req = DefaultComponents(r, hasContent)
	}
	if len(p.Extra) > 0 {
		req = append(slices.Clip(req), p.Extra...)
	}
	return req
}

// The components of the default profile, marked as checked.
var (
	compMethod        = Component{Name: Method, checked: Method, usual: usualMethod}
	compAuthority     = Component{Name: Authority, checked: Authority, usual: usualAuthority}
	compPath          = Component{Name: Path, checked: Path, usual: usualPath}
	compQuery         = Component{Name: Query, checked: Query, usual: usualQuery}
	compContentType   = Component{Name: "content-type", checked: "content-type", usual: usualContentType}
	compContentDigest = Component{Name: "content-digest", checked: "content-digest", usual: usualContentDigest}
)

// DefaultComponents returns the components of Signet's default profile
// that apply to r, in signing order: @method, @authority, @path, then
// @query if r has a query, content-type if r has that field, and
// content-digest if r has content or a Content-Digest field.
func DefaultComponents(r *http.Request, hasContent bool) []Component {
	_, hasDigest := contentDigestField(r.Header)
	hasQuery := splitTarget(r).query != ""
	return appendDefaultProfile(make([]Component, 0, 6), hasQuery, len(r.Header["Content-Type"]) > 0, hasContent || hasDigest)
}

func appendDefaultProfile(out []Component, hasQuery, hasContentType, hasContent bool) []Component {
	out = append(out, compMethod, compAuthority, compPath)
	if hasQuery {
		out = append(out, compQuery)
	}
	if hasContentType {
		out = append(out, compContentType)
	}
	if hasContent {
		out = append(out, compContentDigest)
	}
	return out
}

// Verifier checks the signatures of messages. Its fields are read-only once
// it is in use; it is then safe for concurrent use.
type Verifier struct {
	Policy Policy
	// Keys resolves keyids. Required.
	Keys KeyResolver
	// Nonces, if set, remembers nonces so that replays are refused. A
	// signature with a nonce must then be bounded in time, by a created
	// parameter under a maximum age or by an expires parameter.
	Nonces NonceStore
	// Scheme overrides the scheme of requests, as [Message.Scheme] does.
	Scheme string
	// Structured adds structured-field types, as [Message.Structured] does.
	Structured map[string]FieldType
	// Debug keeps the signature base in results and errors, to explain
	// failures to the people debugging a client. Never set it where
	// signatures cross a trust boundary you do not control: it tells a
	// caller what the server would have signed.
	Debug bool
	// Presign is the policy for presigned requests, which
	// [Verifier.VerifyPresigned] checks; the other methods ignore it.
	Presign PresignPolicy
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// Set on the copy VerifyPresigned makes: the bound on expires minus
	// created, and that the message carries exactly one signature.
	maxLifetime time.Duration
	presigned   bool
	// Set on the verifiers of ResponseVerifier: no clock checks, and the
	// tags to select, as Policy.Tag, any of these.
	ignoreTime bool
	tags       []string
}

// Result describes a verified message: the first of its checked signatures,
// and how many were checked.
type Result struct {
	Label   string
	KeyID   string
	Key     VerifyingKey
	Created time.Time
	Expires time.Time
	Nonce   string
	Tag     string
	// Signatures is how many signatures were checked; all verified.
	Signatures int
	// Base is the signature base of the first signature, when
	// Verifier.Debug is set.
	Base string
	// ContentDigest is set by VerifyRequestHeader when a checked signature
	// covers content-digest: the Content-Digest field value the content
	// must match.
	ContentDigest string
	// Covered lists the components the checked signatures cover, those of
	// the first first; set by VerifyRequestHeader, for a server that must
	// pass on exactly what was verified.
	Covered []Component

	coversDigest bool // some checked signature covers content-digest
}

type verifyState struct {
	sigSet
	fields    structuredFields // also parses Content-Digest
	selected  []int
	required  []Component
	base      []byte
	digest    string // the Content-Digest field
	hasDigest bool
	// headerOnly leaves the content to the caller: a covered
	// content-digest sets digestCovered instead of being checked.
	headerOnly, digestCovered bool
	// profile is the default profile's required list by profileIndex,
	// or -1 when the policy sets its own.
	profile int
	// covered says which of the default profile's components (bit*)
	// coveredList holds: a client sends the same list with every
	// request, and sigSet hands out the slice it remembers for it, never
	// changed in place, so its components are compared once.
	coveredList []Component
	covered     uint8
}

// Bits of the default profile's components in verifyState.covered.
const (
	bitMethod uint8 = 1 << iota
	bitAuthority
	bitPath
	bitQuery
	bitContentType
	bitContentDigest
)

// profileBits returns the bits of the components of the default profile
// with index i (profileIndex).
func profileBits(i int) uint8 {
	b := bitMethod | bitAuthority | bitPath
	if i&1 != 0 {
		b |= bitQuery
	}
	if i&2 != 0 {
		b |= bitContentType
	}
	if i&4 != 0 {
		b |= bitContentDigest
	}
	return b
}

// coveredBits returns which of the default profile's components cs
// covers, remembering the answer for the slice cs.
func (st *verifyState) coveredBits(cs []Component) uint8 {
	cached := len(cs) > 0 && len(cs) == len(st.lastComps) && &cs[0] == &st.lastComps[0]
	if cached && len(cs) == len(st.coveredList) && &cs[0] == &st.coveredList[0] {
		return st.covered
	}
	var b uint8
	for i, c := range [...]*Component{&compMethod, &compAuthority, &compPath, &compQuery, &compContentType, &compContentDigest} {
		if covers(cs, c) {
			b |= 1 << i
		}
	}
	if cached {
		// Only the list sigSet remembers is never overwritten; holding
		// it here also keeps its storage from being reused for another.
		st.coveredList, st.covered = cs, b
	}
	return b
}

var verifyStates = sync.Pool{New: func() any { return new(verifyState) }}

// VerifyRequest checks the signatures on r, whose content (already read,
// and possibly empty) is body, with the context of r for the key resolver
// and the nonce store. A refusal is a [*VerifyError]; any other error means
// a key resolver or nonce store could not answer, and the request must be
// refused all the same (fail closed).
func (v *Verifier) VerifyRequest(r *http.Request, body []byte) (Result, error) {
	m := requestMessage(r, v.Scheme, v.Structured)
	return v.verify(r.Context(), &m, r.Header, body, len(body) > 0 || r.ContentLength > 0, false)
}

// VerifyRequestHeader checks the signatures on r before its content is
// read, so that a server never reads the body of a request it refuses: it
// checks all that [Verifier.VerifyRequest] does (policy, key, signature, nonce)
// except the content against the Content-Digest field. The default profile
// demands content-digest unless r.ContentLength is 0, since a body of
// unknown length may hold content.
//
// The nonce is spent before the content is checked. When a checked
// signature covers content-digest, Result.ContentDigest is the field value
// the content must match: read the content and check it with
// [CheckContentDigest] before acting on the request. Result.Covered lists
// the components the signatures cover.
func (v *Verifier) VerifyRequestHeader(r *http.Request) (Result, error) {
	m := requestMessage(r, v.Scheme, v.Structured)
	return v.verify(r.Context(), &m, r.Header, nil, r.ContentLength != 0, true)
}

// requestMessage returns the Message of a received request, whose
// Content-Type and Content-Digest lines it looks up once for all who need
// them: the profile, the digest check and the signature base.
func requestMessage(r *http.Request, scheme string, structured map[string]FieldType) Message {
	h := r.Header
	return Message{
		Request: r, Scheme: scheme, Structured: structured,
		contentType: h["Content-Type"], contentDigest: h["Content-Digest"], ctKnown: true, cdKnown: true,
	}
}

// VerifyResponse checks the signatures on resp, whose content is body, as
// VerifyRequest does. resp.Request, if set, serves components with the req
// parameter; ctx is for the key resolver and the nonce store, since a
// response has no context of its own.
func (v *Verifier) VerifyResponse(ctx context.Context, resp *http.Response, body []byte) (Result, error) {
	m := Message{Request: resp.Request, Response: resp, Scheme: v.Scheme, Structured: v.Structured}
	return v.verify(ctx, &m, resp.Header, body, len(body) > 0 || resp.ContentLength > 0, false)
}

func (v *Verifier) verify(ctx context.Context, m *Message, h http.Header, body []byte, hasContent, headerOnly bool) (Result, error) {
	st := verifyStates.Get().(*verifyState)
	defer verifyStates.Put(st)
	st.headerOnly, st.digestCovered = headerOnly, false
	if err := st.parse(h); err != nil {
		return Result{}, err
	}
	if v.presigned && len(st.sigs) != 1 {
		return Result{}, refuse(ReasonMalformedSignature, "", "a presigned URL carries exactly one signature")
	}
	if err := v.selectSignatures(st); err != nil {
		return Result{}, err
	}
	// m's lines, when known, are those of h: only a request's own
	// header is looked up ahead (requestMessage).
	if m.cdKnown {
		st.digest, st.hasDigest = joinLines(m.contentDigest)
	} else {
		st.digest, st.hasDigest = contentDigestField(h)
	}
	now := v.now()
	st.required = st.required[:0]
	st.profile = -1
	switch {
	case v.Policy.Required != nil:
		st.required = append(st.required, v.Policy.Required...)
	case m.Response == nil:
		hasDigest := st.hasDigest
		hasQuery := m.targetOf(m.Request).query != ""
		ct := m.contentType
		if !m.ctKnown {
			ct = h["Content-Type"]
		}
		i := profileIndex(hasQuery, len(ct) > 0, hasContent || hasDigest)
		if len(v.Policy.Extra) == 0 {
			st.profile = i
		} else {
			st.required = appendDefaultProfile(st.required, hasQuery, len(ct) > 0, hasContent || hasDigest)
		}
	}
	st.required = append(st.required, v.Policy.Extra...)
	var res Result
	for n, i := range st.selected {
		s := &st.sigs[i]
		key, err := v.checkOne(ctx, m, body, now, st, s)
		if err != nil {
			return Result{}, s.blame(err)
		}
		if n == 0 {
			p := &s.params
			res = Result{Label: s.label, KeyID: p.KeyID, Key: key, Created: p.Created, Expires: p.Expires, Nonce: p.Nonce, Tag: p.Tag}
			if v.Debug {
				res.Base = string(st.base)
			}
		}
	}
	// Nonces are spent only once every signature has verified, so that a
	// forged companion signature cannot burn a genuine nonce.
	if v.Nonces != nil {
		// Resolving keys may have taken a while: the signatures must
		// still be fresh now, when their nonces are remembered (see
		// lastFresh).
		now := v.now()
		for _, i := range st.selected {
			s := &st.sigs[i]
			if s.params.Nonce == "" {
				continue
			}
			last, _ := v.lastFresh(&s.params)
			if now.After(last) {
				return Result{}, s.blame(refuse(ReasonExpired, "", "the signature expired while it was being checked"))
			}
			err := v.Nonces.Remember(ctx, s.params.KeyID, s.params.Nonce, s.params.Created, last.Add(nonceGrace))
			if errors.Is(err, ErrReplayed) {
				err = &VerifyError{Reason: ReasonReplayed, Detail: "this nonce was already used", Err: err}
			}
			if err != nil {
				return Result{}, s.blame(err)
			}
		}
	}
	res.Signatures, res.coversDigest = len(st.selected), st.digestCovered
	if headerOnly {
		if st.digestCovered {
			res.ContentDigest = st.digest
		}
		n := 0
		for _, i := range st.selected {
			n += len(st.sigs[i].params.Components)
		}
		res.Covered = make([]Component, 0, n)
		for _, i := range st.selected {
			res.Covered = append(res.Covered, st.sigs[i].params.Components...)
		}
	}
	return res, nil
}

// selectSignatures picks the signatures the policy asks for.
func (v *Verifier) selectSignatures(st *verifyState) error {
	st.selected = st.selected[:0]
	if v.Policy.Labels != nil {
		for _, l := range v.Policy.Labels {
			i := slices.IndexFunc(st.sigs, func(s parsedSig) bool { return s.label == l })
			if i < 0 {
				return refuse(ReasonMissingSignature, l, "the message has no signature with this label")
			}
			st.selected = append(st.selected, i)
		}
	} else {
		for i := range st.sigs {
			st.selected = append(st.selected, i)
		}
	}
	if v.Policy.Tag != "" {
		st.selected = slices.DeleteFunc(st.selected, func(i int) bool { return st.sigs[i].params.Tag != v.Policy.Tag })
		if len(st.selected) == 0 {
			return refuse(ReasonMissingSignature, "", "the message has no signature with tag "+strconv.Quote(v.Policy.Tag))
		}
	}
	if v.tags != nil {
		st.selected = slices.DeleteFunc(st.selected, func(i int) bool { return !slices.Contains(v.tags, st.sigs[i].params.Tag) })
		if len(st.selected) == 0 {
			return refuse(ReasonMissingSignature, "", "the message has no signature with tag "+strings.Join(v.tags, " or "))
		}
	}
	if len(st.selected) == 0 {
		// An empty Signature-Input field holds no signature at all.
		return refuse(ReasonMissingSignature, "", "the Signature-Input field holds no signature")
	}
	return nil
}

// blame names the signature concerned in err: its label and keyid in a
// refusal, which checks leave for it to fill in, and in the message of a
// failure to resolve its key or remember its nonce.
func (s *parsedSig) blame(err error) error {
	if ve, ok := err.(*VerifyError); ok {
		ve.Label, ve.KeyID = s.label, s.params.KeyID
		return ve
	}
	return fmt.Errorf("httpsig: signature %s, keyid %q: %w", s.label, s.params.KeyID, err)
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// lastFresh returns the last instant at which checkParams finds a
// signature with parameters p fresh, and false if there is none: nothing
// bounds how long it stays fresh.
//
// The invariant that makes nonces work: a request is accepted only at an
// instant no later than lastFresh of each of its signatures (checkParams
// refuses it after; verify checks again just before it remembers the
// nonces), and each nonce is remembered through lastFresh plus
// nonceGrace. So while any copy of a request can still pass the freshness
// checks, the store still holds its nonce, and refuses the copy. The
// checks compare exact instants, not whole seconds, so that rounding
// cannot open a gap; skew does not move lastFresh, since it only lets
// created lie ahead of the clock.
func (v *Verifier) lastFresh(p *Params) (time.Time, bool) {
	var last time.Time
	if maxAge := v.Policy.maxAge(); maxAge > 0 && !p.Created.IsZero() {
		last = p.Created.Add(maxAge)
	}
	if !p.Expires.IsZero() {
		// Fresh strictly before expires: time.Time counts nanoseconds.
		if e := p.Expires.Add(-time.Nanosecond); last.IsZero() || e.Before(last) {
			last = e
		}
	}
	return last, !last.IsZero()
}

// checkOne verifies one signature: policy first (cheap, and needs no key),
// then the key, the signature base, the signature and the content digest.
// Its refusals leave the label and keyid to blame.
func (v *Verifier) checkOne(ctx context.Context, m *Message, body []byte, now time.Time, st *verifyState, s *parsedSig) (VerifyingKey, error) {
	p := &s.params
	if err := v.checkParams(p, now); err != nil {
		return nil, err
	}
	if st.profile >= 0 {
		// The default profile alone.
		if want := profileBits(st.profile); st.coveredBits(p.Components)&want != want {
			missing := appendDefaultProfile(st.required[:0], st.profile&1 != 0, st.profile&2 != 0, st.profile&4 != 0)
			for i := range missing {
				if !covers(p.Components, &missing[i]) {
					return nil, refuse(ReasonMissingComponent, "", "the signature must cover "+missing[i].String())
				}
			}
		}
	}
	for i := range st.required {
		// Signers usually cover the required components in the same
		// order, so look at the same position first.
		if !(i < len(p.Components) && p.Components[i].equal(&st.required[i])) && !covers(p.Components, &st.required[i]) {
			return nil, refuse(ReasonMissingComponent, "", "the signature must cover "+st.required[i].String())
		}
	}
	if p.KeyID == "" {
		return nil, refuse(ReasonUnknownKey, "", "the signature has no keyid parameter")
	}
	key, err := v.Keys.ResolveKey(ctx, p.KeyID)
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownKey):
		return nil, &VerifyError{Reason: ReasonUnknownKey, Detail: "no key has this keyid", Err: err}
	case errors.Is(err, ErrKeyRevoked):
		reason, detail := ReasonKeyRevoked, "the key was revoked"
		var rr RefusalReasoner
		if errors.As(err, &rr) {
			reason, detail = rr.RefusalReason()
		}
		return nil, &VerifyError{Reason: reason, Detail: detail, Err: err}
	case errors.Is(err, ErrKeyExpired):
		return nil, &VerifyError{Reason: ReasonKeyExpired, Detail: "the key has expired", Err: err}
	case err != nil:
		return nil, err
	}
	alg := key.Algorithm()
	if p.Alg != "" && p.Alg != alg {
		return nil, refuse(ReasonAlgorithmMismatch, "", "the key is bound to "+string(alg)+", the signature says "+strconv.Quote(string(p.Alg)))
	}
	if v.Policy.Algorithms != nil && !slices.Contains(v.Policy.Algorithms, alg) {
		return nil, refuse(ReasonAlgorithmMismatch, "", "algorithm "+string(alg)+" is not accepted here")
	}
	st.base, err = appendBase(st.base[:0], m, p, s.raw, &st.fields)
	if err != nil {
		var ce *componentError
		if errors.As(err, &ce) && ce.absent {
			return nil, v.withBase(&VerifyError{Reason: ReasonMissingComponent, Detail: err.Error(), Err: err}, st)
		}
		return nil, &VerifyError{Reason: ReasonMalformedSignature, Detail: err.Error(), Err: err}
	}
	if err := key.Verify(st.base, s.value); err != nil {
		return nil, v.withBase(&VerifyError{Reason: ReasonBadSignature, Detail: "the signature does not match the message", Err: err}, st)
	}
	if st.coveredBits(p.Components)&bitContentDigest != 0 {
		st.digestCovered = true
		if st.headerOnly {
			return key, nil
		}
		if err := checkDigest(&st.fields.sp, st.digest, body); err != nil {
			return nil, err
		}
	}
	return key, nil
}

func (v *Verifier) withBase(e *VerifyError, st *verifyState) *VerifyError {
	if v.Debug {
		e.Base = string(st.base)
	}
	return e
}

func (v *Verifier) checkParams(p *Params, now time.Time) error {
	if p.Tag == PresignTag && !v.presigned {
		// Made for a URL, whose lifetime may be hours: not a signature of
		// header fields.
		return refuse(ReasonMalformedSignature, "", "a presigned signature (tag "+PresignTag+") is valid only in the query of its URL")
	}
	if v.Policy.RequiredParams != nil || p.Created.IsZero() || p.KeyID == "" || p.Nonce == "" {
		// Not the default list (created, keyid, nonce) all present.
		for _, name := range v.Policy.requiredParams() {
			if !p.has(name) {
				return refuse(ReasonMalformedSignature, "", "the signature has no "+name+" parameter, which this server requires")
			}
		}
	}
	if p.Alg != "" {
		if _, err := ParseAlgorithm(string(p.Alg)); err != nil {
			return refuse(ReasonAlgorithmMismatch, "", "unknown algorithm "+strconv.Quote(string(p.Alg)))
		}
	}
	if v.ignoreTime {
		return nil
	}
	if v.maxLifetime > 0 && p.Expires.Sub(p.Created) > v.maxLifetime {
		return refuse(ReasonMalformedSignature, "", "the signature is valid for "+p.Expires.Sub(p.Created).String()+", more than the "+v.maxLifetime.String()+" allowed")
	}
	if !p.Created.IsZero() && p.Created.After(now.Add(v.Policy.maxSkew())) {
		return refuse(ReasonNotYetValid, "", "created is "+p.Created.Sub(now).Truncate(time.Second).String()+" in the future; check the client's clock against the Date header")
	}
	last, bounded := v.lastFresh(p)
	switch {
	case !bounded && v.Nonces != nil && p.Nonce != "":
		// Its nonce would have to be remembered for ever.
		return refuse(ReasonMalformedSignature, "", "nothing bounds how long the signature stays valid (no expires parameter, no created parameter under a maximum age), so its nonce cannot be remembered for that long")
	case bounded && now.After(last):
		if maxAge := v.Policy.maxAge(); maxAge > 0 && !p.Created.IsZero() && now.After(p.Created.Add(maxAge)) {
			return refuse(ReasonExpired, "", "created is "+now.Sub(p.Created).Truncate(time.Second).String()+" ago, more than the "+maxAge.String()+" allowed")
		}
		return refuse(ReasonExpired, "", "the signature expired "+now.Sub(p.Expires).Truncate(time.Second).String()+" ago")
	}
	return nil
}

// has reports whether the named signature parameter is present.
func (p *Params) has(name string) bool {
	switch name {
	case "created":
		return !p.Created.IsZero()
	case "expires":
		return !p.Expires.IsZero()
	case "keyid":
		return p.KeyID != ""
	case "alg":
		return p.Alg != ""
	case "nonce":
		return p.Nonce != ""
	case "tag":
		return p.Tag != ""
	}
	return slices.ContainsFunc(p.extra, func(x sf.Param) bool { return x.Key == name })
}

// covers reports whether cs holds a component equal to c.
func covers(cs []Component, c *Component) bool {
	for i := range cs {
		if cs[i].equal(c) {
			return true
		}
	}
	return false
}
