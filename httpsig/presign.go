package httpsig

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The presigned-URL profile (docs/presigned-urls.md): an RFC 9421
// signature carried in the query of the URL it signs, for clients that
// cannot add header fields (a browser's <img>, <a href> or WebSocket).
const (
	// PresignInputParam is the query parameter holding the Signature-Input
	// field value; PresignSignatureParam holds the Signature field value.
	// Both are percent-encoded.
	PresignInputParam     = "signet-input"
	PresignSignatureParam = "signet-sig"
	// PresignTag is the tag parameter of every presigned signature. It
	// keeps them apart from signatures sent in header fields: a verifier
	// of header signatures should refuse it, and the presigned verifier
	// accepts nothing else.
	PresignTag = "signet-presign"
	// DefaultMaxPresignLifetime bounds expires minus created for a zero
	// [PresignPolicy].
	DefaultMaxPresignLifetime = 24 * time.Hour
)

// The components every presigned signature covers, in this order.
var presignComponents = []Component{compMethod, compAuthority, compPath, compQuery}

// PresignOptions describe one presigned URL.
type PresignOptions struct {
	// Method is the one method the URL serves; empty means GET.
	Method string
	// Expires is how long the URL stays valid from its created time,
	// rounded up to whole seconds. Required.
	Expires time.Duration
	// SingleUse adds a nonce, so that a verifier with a [NonceStore]
	// accepts the URL once.
	SingleUse bool
	// Nonce, if set, is the nonce of a single-use URL instead of 128
	// fresh random bits: for reproducible URLs in tests.
	Nonce string
}

// Presign returns rawURL with a signature in its query, as the
// presigned-URL profile specifies: the parameters [PresignInputParam] and
// [PresignSignatureParam] are appended to the query, which is otherwise
// kept byte for byte, as is the rest of the URL. The signature covers
// @method, @authority, @path and @query (the query without the two
// parameters), with the parameters created, keyid, alg (unless NoAlg),
// expires, a nonce when o.SingleUse is set, and tag [PresignTag].
//
// Presign uses the Key, KeyID, Label, NoAlg and Now of s; the profile
// fixes everything else. rawURL must be an absolute http or https URL
// without user information, whose path and query are written the way
// every client sends them: the path may hold unreserved characters,
// sub-delimiters, ':', '@', '/' and %XX escapes, but no "." or ".."
// segment (browsers resolve them, even escaped); the query the same, and
// '?', but no apostrophe (browsers escape it there).
func (s *Signer) Presign(rawURL string, o PresignOptions) (string, error) {
	if s.Key == nil || s.KeyID == "" {
		return "", errors.New("httpsig: Presign needs a Signer with a Key and a KeyID")
	}
	if o.Expires <= 0 {
		return "", errors.New("httpsig: a presigned URL needs a positive Expires")
	}
	method := o.Method
	if method == "" {
		method = http.MethodGet
	}
	if !isToken(method) {
		return "", fmt.Errorf("httpsig: %q is not an HTTP method", method)
	}
	u, err := splitURL(rawURL)
	if err != nil {
		return "", err
	}
	if err := checkPresignTarget(u.path, u.query); err != nil {
		return "", err
	}
	if presignParamIn(u.query) {
		return "", fmt.Errorf("httpsig: the URL already has a %s or %s parameter", PresignInputParam, PresignSignatureParam)
	}
	target := u.path
	if target == "" {
		target = "/"
	}
	if u.hasQuery {
		target += "?" + u.query
	}
	r := &http.Request{Method: method, Host: u.authority, RequestURI: target, Header: http.Header{}}
	p := s.params()
	p.Components, p.Tag, p.Nonce = presignComponents, PresignTag, ""
	switch {
	case o.Nonce != "" && !o.SingleUse:
		return "", errors.New("httpsig: a nonce is for a single-use URL")
	case o.Nonce != "":
		p.Nonce = o.Nonce
	case o.SingleUse:
		p.Nonce = NewNonce()
	}
	p.Expires = p.Created.Add(o.Expires.Truncate(time.Second))
	if o.Expires%time.Second != 0 {
		p.Expires = p.Expires.Add(time.Second)
	}
	m := Message{Request: r, Scheme: u.scheme}
	sc := signScratches.Get().(*signScratch)
	defer signScratches.Put(sc)
	if err := signMessage(sc, &m, s.label(), &p, s.Key, nil); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(u.beforeFragment)
	switch {
	case !u.hasQuery:
		b.WriteByte('?')
	case u.query != "":
		b.WriteByte('&')
	}
	b.WriteString(PresignInputParam)
	b.WriteByte('=')
	b.WriteString(presignEscape(r.Header.Get("Signature-Input")))
	b.WriteByte('&')
	b.WriteString(PresignSignatureParam)
	b.WriteByte('=')
	b.WriteString(presignEscape(r.Header.Get("Signature")))
	if u.hasFragment {
		b.WriteByte('#')
		b.WriteString(u.fragment)
	}
	return b.String(), nil
}

// rawURLParts is an absolute URL cut into its parts as written, which
// net/url does not keep: its path and query exactly as given.
type rawURLParts struct {
	scheme, authority, path, query, fragment string
	hasQuery, hasFragment                    bool
	beforeFragment                           string
}

func splitURL(rawURL string) (rawURLParts, error) {
	u, err := url.Parse(rawURL)
	switch {
	case err != nil:
		return rawURLParts{}, fmt.Errorf("httpsig: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return rawURLParts{}, fmt.Errorf("httpsig: %q is not an absolute http or https URL", rawURL)
	case u.User != nil:
		return rawURLParts{}, errors.New("httpsig: a presigned URL cannot carry user information (user@host): clients do not send it")
	case u.Host == "" || u.Opaque != "":
		return rawURLParts{}, fmt.Errorf("httpsig: the URL %q has no host", rawURL)
	}
	var p rawURLParts
	p.scheme = u.Scheme
	rest := rawURL[len(u.Scheme)+len("://"):]
	p.beforeFragment, p.fragment, p.hasFragment = strings.Cut(rawURL, "#")
	rest, _, _ = strings.Cut(rest, "#")
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	p.authority, rest = rest[:end], rest[end:]
	for i := 0; i < len(p.authority); i++ {
		if c := p.authority[i]; !isUnreserved(c) && c != ':' && c != '[' && c != ']' {
			return rawURLParts{}, fmt.Errorf("httpsig: the host %q has %q, which clients send differently; give it as a name, an IPv4 or an IPv6 address", p.authority, c)
		}
	}
	p.path, p.query, p.hasQuery = strings.Cut(rest, "?")
	return p, nil
}

// checkPresignTarget reports why a path and query cannot be presigned,
// or nil: a browser, curl and net/http must all send them byte for byte
// as written, or the signature would not verify.
func checkPresignTarget(path, query string) error {
	if i := badTargetByte(path, false); i >= 0 {
		return fmt.Errorf("httpsig: the path has %q at byte %d, which clients send differently; percent-encode it", path[i], i)
	}
	for _, seg := range strings.Split(path, "/") {
		switch strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(seg, "%2e", "."), "%2E", ".")) {
		case ".", "..":
			return fmt.Errorf("httpsig: the path has a %q segment, which browsers resolve before sending", seg)
		}
	}
	if i := badTargetByte(query, true); i >= 0 {
		return fmt.Errorf("httpsig: the query has %q at byte %d, which clients send differently; percent-encode it", query[i], i)
	}
	return nil
}

// badTargetByte returns the index of the first byte of s outside the set
// checkPresignTarget allows, or of a '%' not followed by two hex digits;
// -1 if there is none.
func badTargetByte(s string, query bool) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isUnreserved(c):
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return i
			}
			i += 2
		case c == '\'':
			if query {
				return i
			}
		case strings.IndexByte("!$&()*+,;=:@/", c) >= 0:
		case c == '?' && query:
		default:
			return i
		}
	}
	return -1
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// isToken reports whether s is an RFC 9110 token, as a method must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isUnreserved(c) && strings.IndexByte("!#$%&'*+^`|", c) < 0 {
			return false
		}
	}
	return true
}

// presignEscape percent-encodes every byte but the unreserved ones, with
// upper-case hex digits: the one encoding every implementation writes,
// so that a URL presigned in any language is the same string.
func presignEscape(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 3 / 2)
	for i := 0; i < len(s); i++ {
		if c := s[i]; isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
	return b.String()
}

// presignUnescape decodes a query parameter value as
// application/x-www-form-urlencoded ('+' is a space, %XX a byte), which
// also reads what generic URL builders write. A '%' without two hex digits
// after it is an error, not a literal: two readers must never disagree.
func presignUnescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b = append(b, ' ')
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", errors.New("a '%' is not followed by two hex digits")
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

// presignName says what a query parameter name is to the profile.
type presignName uint8

const (
	otherParam presignName = iota
	inputParam
	signatureParam
	// oddParam is one of the two names in another spelling (escaped, or
	// in other letter case), which some frameworks read as the name.
	oddParam
)

func classifyParam(name string) presignName {
	switch name {
	case PresignInputParam:
		return inputParam
	case PresignSignatureParam:
		return signatureParam
	}
	// Both names start with "signet-"; anything shorter than the shorter
	// one, or without an escape or a letter of that prefix, is neither.
	if len(name) < len(PresignSignatureParam) {
		return otherParam
	}
	if strings.IndexByte(name, '%') >= 0 || strings.IndexByte(name, '+') >= 0 {
		decoded, err := presignUnescape(name)
		if err != nil {
			return otherParam
		}
		name = decoded
	}
	if strings.EqualFold(name, PresignInputParam) || strings.EqualFold(name, PresignSignatureParam) {
		return oddParam
	}
	return otherParam
}

// presignParamIn reports whether a raw query holds either parameter, in
// any spelling.
func presignParamIn(query string) bool {
	for query != "" {
		var piece string
		piece, query, _ = strings.Cut(query, "&")
		name, _, _ := strings.Cut(piece, "=")
		if classifyParam(name) != otherParam {
			return true
		}
	}
	return false
}

// IsPresigned reports whether the target of r has a query parameter named
// [PresignInputParam] or [PresignSignatureParam], in any spelling (escaped,
// or in other letter case): a server sends such a request to
// [Verifier.VerifyPresigned], which refuses the odd spellings, and never
// forwards it unverified.
func IsPresigned(r *http.Request) bool {
	return presignParamIn(splitTarget(r).query)
}

// PresignPolicy says what a [Verifier] demands of presigned requests
// beyond the profile. The zero value is the default.
type PresignPolicy struct {
	// MaxLifetime bounds expires minus created, and how old created may
	// be. Zero means DefaultMaxPresignLifetime.
	MaxLifetime time.Duration
	// RequireNonce accepts only single-use URLs.
	RequireNonce bool
	// Methods lists the methods presigned requests may use. Nil means GET
	// and HEAD. Another method is refused with reason insufficient-scope
	// (403): the signature is not the problem, the server's policy is.
	Methods []string
}

func (p *PresignPolicy) maxLifetime() time.Duration {
	if p.MaxLifetime <= 0 {
		return DefaultMaxPresignLifetime
	}
	return p.MaxLifetime
}

// VerifyPresigned checks a presigned request (see [Signer.Presign]) and
// returns the request that was verified: a shallow copy of r whose target
// (RequestURI, and URL.RawQuery) no longer holds the two parameters, which
// is the target to forward. The rest of its query is r's, byte for byte,
// with nothing re-encoded; when nothing is left, the target has no '?'.
//
// The request is refused (a [*VerifyError]) when the query holds either
// parameter more than once, or in another spelling, or only one of them;
// when the target has a fragment; when r also carries Signature or
// Signature-Input fields; when the parameters hold more or less than one
// signature, or one without tag [PresignTag]; when the signature does not
// cover @method, @authority, @path and @query (and content-digest if r has
// content), lacks created, keyid or expires (or a nonce, under
// v.Presign.RequireNonce), has a lifetime over v.Presign.MaxLifetime, or is
// not yet valid, expired, replayed or bad. Its method must be one of
// v.Presign.Methods.
//
// Of v.Policy only MaxSkew and Algorithms apply: the profile fixes the
// rest. Keys, Nonces (which makes single-use URLs single-use), Scheme,
// Structured, Debug and Now apply as for [Verifier.VerifyRequest].
func (v *Verifier) VerifyPresigned(r *http.Request, body []byte) (*http.Request, Result, error) {
	t := splitTarget(r)
	if strings.IndexByte(r.RequestURI, '#') >= 0 {
		return nil, Result{}, refuse(ReasonMalformedSignature, "", "the request target has a fragment")
	}
	if !t.hasQuery {
		return nil, Result{}, refuse(ReasonMissingSignature, "", "the URL has no query, so no "+PresignSignatureParam+" parameter")
	}
	if len(r.Header["Signature"]) > 0 || len(r.Header["Signature-Input"]) > 0 {
		return nil, Result{}, refuse(ReasonMalformedSignature, "", "the request carries a signature both in its query and in its header fields")
	}
	stripped, input, sig, err := stripPresignParams(t.query)
	if err != nil {
		return nil, Result{}, err
	}
	methods := v.Presign.Methods
	if methods == nil {
		methods = []string{http.MethodGet, http.MethodHead}
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	if !slices.Contains(methods, method) {
		return nil, Result{}, refuse(ReasonInsufficientScope, "", "presigned URLs are not accepted for "+method+" here")
	}
	if v.Presign.RequireNonce && v.Nonces == nil {
		return nil, Result{}, errors.New("httpsig: PresignPolicy.RequireNonce needs a Verifier with Nonces")
	}
	clean := verifiedTarget(r, stripped)

	pv := *v
	hasContent := len(body) > 0 || r.ContentLength > 0
	required := presignComponents
	if hasContent {
		required = append(slices.Clip(required), compContentDigest)
	}
	params := []string{"created", "keyid", "expires"}
	if v.Presign.RequireNonce {
		params = append(params, "nonce")
	}
	lifetime := v.Presign.maxLifetime()
	pv.Policy = Policy{
		Required: required, RequiredParams: params, MaxAge: lifetime, MaxSkew: v.Policy.MaxSkew,
		Algorithms: v.Policy.Algorithms, Tag: PresignTag,
	}
	pv.maxLifetime, pv.presigned = lifetime, true
	h := http.Header{"Signature-Input": {input}, "Signature": {sig}}
	m := Message{Request: clean, Scheme: v.Scheme, Structured: v.Structured}
	res, err := pv.verify(r.Context(), &m, h, body, hasContent, false)
	if err != nil {
		return nil, Result{}, err
	}
	return clean, res, nil
}

// stripPresignParams returns the raw query without the two parameters,
// and their decoded values.
func stripPresignParams(query string) (stripped, input, sig string, err error) {
	var kept []string
	var haveInput, haveSig bool
	for piece := range strings.SplitSeq(query, "&") {
		name, value, _ := strings.Cut(piece, "=")
		kind := classifyParam(name)
		switch kind {
		case otherParam:
			kept = append(kept, piece)
			continue
		case oddParam:
			return "", "", "", refuse(ReasonMalformedSignature, "", fmt.Sprintf("the query parameter %q is spelled in a way servers read differently; write %s and %s as they are", name, PresignInputParam, PresignSignatureParam))
		}
		have, dst := &haveInput, &input
		if kind == signatureParam {
			have, dst = &haveSig, &sig
		}
		if *have {
			return "", "", "", refuse(ReasonMalformedSignature, "", "the query repeats the "+name+" parameter")
		}
		*have = true
		if *dst, err = presignUnescape(value); err != nil {
			return "", "", "", refuse(ReasonMalformedSignature, "", "the "+name+" parameter: "+err.Error())
		}
	}
	switch {
	case !haveInput && !haveSig:
		return "", "", "", refuse(ReasonMissingSignature, "", "the query has no "+PresignInputParam+" and "+PresignSignatureParam+" parameters")
	case !haveInput:
		return "", "", "", refuse(ReasonMalformedSignature, "", "the query has a "+PresignSignatureParam+" parameter but no "+PresignInputParam)
	case !haveSig:
		return "", "", "", refuse(ReasonMalformedSignature, "", "the query has a "+PresignInputParam+" parameter but no "+PresignSignatureParam)
	}
	return strings.Join(kept, "&"), input, sig, nil
}

// verifiedTarget returns a shallow copy of r whose target has the query
// stripped, so that the base is built from, and the caller forwards,
// the same strings.
func verifiedTarget(r *http.Request, stripped string) *http.Request {
	c := r.WithContext(r.Context())
	if r.URL != nil {
		u := *r.URL
		u.RawQuery, u.ForceQuery = stripped, false
		c.URL = &u
	}
	if r.RequestURI != "" {
		before, _, _ := strings.Cut(r.RequestURI, "?")
		c.RequestURI = before
		if stripped != "" {
			c.RequestURI += "?" + stripped
		}
	}
	return c
}
