// Package client signs the HTTP requests a Go program sends, with HTTP
// Message Signatures as specified in RFC 9421 and the Content-Digest field of
// RFC 9530, the way a Signet server expects them.
//
// [Transport] is an [http.RoundTripper] that signs every request with an
// [httpsig.Signer] before its Base transport sends it. Given the gateway's
// keys ([Transport.GatewayKeys]: [LoadGatewayKeys], [JWKS], or keys pinned
// in code), it checks the signature of every response as the response
// streams in (docs/signed-responses.md), and trusts only signed responses
// to correct its clock. [NewTransport] makes one from a key file written
// by `signet keygen`; [LoadKey] reads such a file. [Presign] and
// [Transport.Presign] make presigned URLs (docs/presigned-urls.md).
package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/signet-dev/signet/httpsig"
)

// DefaultMaxBodyBytes is the size limit of a zero Transport for a request
// body it must hold in memory.
const DefaultMaxBodyBytes = 32 << 20

// DefaultProblemBase is the prefix of the problem types of a Signet
// server's refusals (middleware.DefaultProblemBase); a zero Transport acts
// on refusals whose type starts with it.
const DefaultProblemBase = "https://signet.dev/problems/"

// maxProblemBytes bounds what is read of a refusal to find its reason.
const maxProblemBytes = 64 << 10

// maxOrigins bounds the clock offsets a Transport remembers: one per
// origin, the least recently used forgotten first.
const maxOrigins = 1024

// Transport is an [http.RoundTripper] that signs each request it sends.
//
// Each request gets a fresh nonce and a created time from the Signer's
// clock plus the offset the Transport has learnt for the request's origin
// (see [Transport.ClockOffset]).
// A request with a body gets a Content-Digest field first:
//
//   - if the request already carries Content-Digest, that field is signed as
//     it is and the body is sent as a stream, unread;
//   - else if the request has GetBody (as [http.NewRequest] sets for
//     *bytes.Buffer, *bytes.Reader and *strings.Reader bodies), the digest
//     is computed over a copy from GetBody, streamed, and Body is sent;
//   - else the body is read into memory, at most MaxBodyBytes of it, once.
//
// A refusal makes the Transport correct its clock for the origin (scheme,
// host and port) and send the request once more only when all of these
// hold, so that an API's own answers are never taken for the gateway's:
//
//   - the response is a 401 with a WWW-Authenticate challenge for the
//     Signature scheme and an RFC 9457 problem whose type is ProblemBase
//     followed by "expired" or "not-yet-valid";
//   - it has a Date field, and by that Date the refused created time lies
//     in the past (expired) or the future (not-yet-valid) by more than the
//     Date's one-second precision and the round trip explain, so that a
//     created time from the corrected clock would fall inside the window
//     the refused one missed;
//   - the body can be sent again (no body, GetBody, or a body it read into
//     memory), for the retry; the offset is learnt even when it cannot.
//
// The request is sent at most twice. Without GatewayKeys, the Date field
// is not authenticated: it is trusted to set the clock offset of its
// origin, for created times only, and no further. With GatewayKeys, only a
// refusal the gateway signed as its own answer (tag signet-gateway: its
// status, problem body and Date) counts; an answer it relays from the API
// behind it never does, however it looks.
//
// Responses, with GatewayKeys set: each response's signature (tag
// signet-response) is checked when its header arrives, against the request
// as sent (its method, path, query and Signature); its content as it is
// read, so that a large body is never held in memory: the body's Read
// returns an error wrapping an [*httpsig.VerifyError] (digest-mismatch)
// instead of io.EOF when the content does not match the signed
// Content-Digest, and (missing-component) as soon as content arrives that
// the signature does not cover. Read bodies to the end before trusting
// them. [VerifiedResponse] tells whether a response was verified. A
// response without a valid signature is returned as it is, unless
// RequireSignedResponses is set, when RoundTrip returns an error instead.
// To check Content-Digest against the content as sent, the Transport asks
// for gzip itself and decompresses it, as net/http would (when Base is nil
// or an *http.Transport that does not disable compression, and the request
// has no Accept-Encoding); a Base that decompresses on its own is an
// error, since the digest can no longer be checked.
//
// The caller's request is never modified. A Transport is safe for concurrent
// use by multiple goroutines; its fields must not change once it is in use,
// and it must not be copied.
type Transport struct {
	// Signer signs the requests. Required. Its Components, Tag, Label,
	// Digest and other fields apply to every request; nil Components
	// means Signet's default profile. Its Now, if set, is the local
	// clock that the Transport corrects.
	Signer *httpsig.Signer

	// Base is the RoundTripper that sends the signed requests.
	// If nil, http.DefaultTransport is used.
	Base http.RoundTripper

	// MaxBodyBytes bounds a request body that must be read into memory
	// to compute its digest (one without GetBody or Content-Digest); a
	// larger body is an error. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// GatewayKeys, if set, resolves the keyids of the gateway's response
	// signatures: an httpsig.KeyMap of pinned keys, a key or JWK set file
	// ([LoadGatewayKeys]), or the gateway's published set ([JWKS]). Every
	// response is then checked; see [Transport].
	GatewayKeys httpsig.KeyResolver

	// RequireSignedResponses makes RoundTrip return an error, wrapping an
	// [*httpsig.VerifyError] when the signature was refused, for a
	// response without a valid gateway signature. It needs GatewayKeys.
	RequireSignedResponses bool

	// ProblemBase is the prefix of the problem types of the refusals of
	// the Signet server the requests go to. Empty means
	// DefaultProblemBase.
	ProblemBase string

	once    sync.Once
	now     func() time.Time
	offsets *lru.Cache[originKey, time.Duration] // by origin: server minus local time
	signers sync.Pool                            // of *datedSigner
}

// A datedSigner is a copy of the Transport's Signer whose clock reads at:
// the created time of one signature.
type datedSigner struct {
	httpsig.Signer
	at time.Time
}

var _ http.RoundTripper = (*Transport)(nil)

// ClockOffset returns the difference between the clock of the server at
// u's origin and the local one, as the Transport has learnt it from
// refusals, and adds to the created time of the signatures it sends there.
// It is zero until that server has refused a signature for its time.
func (t *Transport) ClockOffset(u *url.URL) time.Duration {
	t.once.Do(t.setup)
	d, _ := t.offsets.Peek(origin(u))
	return d
}

func (t *Transport) setup() {
	t.now = time.Now
	if t.Signer != nil && t.Signer.Now != nil {
		t.now = t.Signer.Now
	}
	t.offsets, _ = lru.New[originKey, time.Duration](maxOrigins)
	t.signers.New = func() any {
		d := &datedSigner{Signer: *t.Signer}
		d.Now = func() time.Time { return d.at }
		return d
	}
}

// An originKey is the scheme, host and port of a URL, the unit of clock
// offsets.
type originKey struct{ scheme, host, port string }

func origin(u *url.URL) originKey {
	o := originKey{strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()}
	if o.port == "" {
		switch o.scheme {
		case "http":
			o.port = "80"
		case "https":
			o.port = "443"
		}
	}
	return o
}

func (t *Transport) problemBase() string {
	if t.ProblemBase != "" {
		return t.ProblemBase
	}
	return DefaultProblemBase
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// CloseIdleConnections closes the idle connections of Base, if it has a
// CloseIdleConnections method, so that [http.Client.CloseIdleConnections]
// reaches it.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip signs a copy of req and sends it with Base; see [Transport].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	reqBodyClosed := false
	if req.Body != nil {
		defer func() {
			if !reqBodyClosed {
				req.Body.Close()
			}
		}()
	}
	if t.Signer == nil || t.Signer.Key == nil {
		return nil, errors.New("client: Transport.Signer, with its Key, is required")
	}
	if t.RequireSignedResponses && t.GatewayKeys == nil {
		return nil, errors.New("client: RequireSignedResponses needs GatewayKeys")
	}
	t.once.Do(t.setup)
	c, err := t.content(req)
	if err != nil {
		return nil, err
	}
	org := origin(req.URL)
	sent := t.now()
	r, created, err := t.sign(req, &c, c.first, org, sent)
	if err != nil {
		return nil, err
	}
	// The base RoundTripper closes the body it is given.
	reqBodyClosed = c.sendsReqBody
	resp, err := t.base().RoundTrip(r)
	if err != nil {
		return nil, err
	}
	own, err := t.checkResponse(req, r, resp)
	if err != nil {
		return nil, err
	}
	if !t.correctClock(resp, org, created, sent, own) || c.replay == nil {
		return resp, nil
	}
	body, err := c.replay()
	if err != nil {
		// The refusal is the best answer there is.
		return resp, nil
	}
	discard(resp.Body)
	r, _, err = t.sign(req, &c, body, org, t.now())
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	resp, err = t.base().RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if _, err := t.checkResponse(req, r, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// content is what the Transport sends as a request's body.
type content struct {
	digest string        // Content-Digest to set; "" leaves the field as it is
	length int64         // ContentLength of the signed request
	first  io.ReadCloser // the body of the first attempt
	// sendsReqBody is set when first is the caller's req.Body.
	sendsReqBody bool
	// replay returns the body again, for a retry; nil when it cannot.
	replay func() (io.ReadCloser, error)
}

func noBody() (io.ReadCloser, error) { return http.NoBody, nil }

func (t *Transport) content(req *http.Request) (content, error) {
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		return content{length: req.ContentLength, first: req.Body, sendsReqBody: true, replay: noBody}, nil
	case req.Header.Get("Content-Digest") != "":
		return content{length: req.ContentLength, first: req.Body, sendsReqBody: true, replay: req.GetBody}, nil
	case req.GetBody != nil:
		return t.streamedContent(req)
	}
	return t.bufferedContent(req)
}

// streamedContent digests a copy of the body from GetBody, so that the
// body is never held in memory.
func (t *Transport) streamedContent(req *http.Request) (content, error) {
	d, err := httpsig.NewDigester(t.Signer.Digest)
	if err != nil {
		return content{}, fmt.Errorf("client: %w", err)
	}
	rc, err := req.GetBody()
	if err != nil {
		return content{}, fmt.Errorf("client: GetBody: %w", err)
	}
	n, err := io.Copy(d, rc)
	rc.Close()
	if err != nil {
		return content{}, fmt.Errorf("client: reading the body from GetBody: %w", err)
	}
	switch {
	case n == 0:
		return content{first: http.NoBody, replay: noBody}, nil
	case req.ContentLength > 0 && req.ContentLength != n:
		return content{}, fmt.Errorf("client: GetBody gave %d bytes, ContentLength says %d", n, req.ContentLength)
	}
	return content{digest: d.Value(), length: n, first: req.Body, sendsReqBody: true, replay: req.GetBody}, nil
}

// bufferedContent reads the body into memory, once.
func (t *Transport) bufferedContent(req *http.Request) (content, error) {
	limit := t.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	data, err := readAll(req.Body, req.ContentLength, limit)
	if err != nil {
		return content{}, fmt.Errorf("client: the request body: %w (give the request GetBody, or a Content-Digest, to stream it)", err)
	}
	replay := func() (io.ReadCloser, error) { return bodyOf(data), nil }
	if len(data) == 0 {
		return content{first: http.NoBody, replay: replay}, nil
	}
	digest, err := httpsig.ContentDigest(t.Signer.Digest, data)
	if err != nil {
		return content{}, fmt.Errorf("client: %w", err)
	}
	return content{digest: digest, length: int64(len(data)), first: bodyOf(data), replay: replay}, nil
}

var errTooLarge = errors.New("larger than the limit")

// readAll reads r, which should hold size bytes (unknown if size <= 0),
// refusing more than limit.
func readAll(r io.Reader, size, limit int64) ([]byte, error) {
	if size > limit {
		return nil, fmt.Errorf("its %d bytes are %w of %d", size, errTooLarge, limit)
	}
	if size > 0 {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		var extra [1]byte
		if n, _ := io.ReadFull(r, extra[:]); n > 0 {
			return nil, fmt.Errorf("it is longer than its ContentLength, %d", size)
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > limit {
		return nil, fmt.Errorf("it is %w of %d bytes", errTooLarge, limit)
	}
	return buf, nil
}

func bodyOf(data []byte) io.ReadCloser {
	if len(data) == 0 {
		return http.NoBody
	}
	return io.NopCloser(bytes.NewReader(data))
}

// sign returns a signed copy of req that sends body, and its created
// time: local time now plus the clock offset of the origin org.
func (t *Transport) sign(req *http.Request, c *content, body io.ReadCloser, org originKey, now time.Time) (*http.Request, time.Time, error) {
	host, err := wireHost(req)
	if err != nil {
		return nil, time.Time{}, err
	}
	r := req.Clone(req.Context())
	r.Host = host
	r.Body, r.ContentLength, r.GetBody = body, c.length, c.replay
	if c.digest != "" {
		r.Header["Content-Digest"] = []string{c.digest}
	}
	if t.asksForGzip(r) {
		r.Header["Accept-Encoding"] = []string{"gzip"}
	}
	offset, _ := t.offsets.Get(org)
	created := time.Unix(now.Add(offset).Unix(), 0)
	s := t.signers.Get().(*datedSigner)
	s.at = created
	err = s.SignRequest(r, nil)
	t.signers.Put(s)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("client: %w", err)
	}
	return r, created, nil
}

// wireHost returns the Host field net/http will send for r, which is the
// authority a server checks: r.Host or the URL's host, without an IPv6
// zone (RFC 6874) or an empty port (RFC 9110 §4.2.3). net/http would send
// a non-ASCII host in its A-label (punycode) form, which the standard
// library cannot compute for the signature: such a host is an error.
func wireHost(r *http.Request) (string, error) {
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			return "", fmt.Errorf("client: host %q is not ASCII; give its A-label (punycode) form, which is what is sent", host)
		}
	}
	if strings.HasPrefix(host, "[") {
		if end := strings.LastIndexByte(host, ']'); end > 0 {
			if zone := strings.LastIndexByte(host[:end], '%'); zone > 0 {
				host = host[:zone] + host[end:]
			}
		}
	}
	return strings.TrimSuffix(host, ":"), nil
}

// asksForGzip reports whether the Transport asks for gzip itself, as
// net/http would, so that it can check the digest of the content as sent
// and then decompress it.
func (t *Transport) asksForGzip(r *http.Request) bool {
	if t.GatewayKeys == nil || len(r.Header["Accept-Encoding"]) > 0 || len(r.Header["Range"]) > 0 || r.Method == http.MethodHead {
		return false
	}
	switch b := t.base().(type) {
	case *http.Transport:
		return !b.DisableCompression
	}
	return false
}

// checkResponse checks the gateway's signature of resp, an answer to r,
// the signed copy of the caller's req, and reports whether it verified as
// the gateway's own answer (tag signet-gateway), not one it relays.
// It returns an error, having closed the body, only when
// RequireSignedResponses is set and it did not, or when Base decompressed
// the content itself.
func (t *Transport) checkResponse(req, r *http.Request, resp *http.Response) (bool, error) {
	if t.GatewayKeys == nil {
		return false, nil
	}
	if resp.Request == nil {
		resp.Request = r
	}
	fail := func(err error) (bool, error) {
		if !t.RequireSignedResponses {
			return false, nil
		}
		resp.Body.Close()
		return false, fmt.Errorf("client: the response to %s %s: %w", r.Method, r.URL.Redacted(), err)
	}
	if resp.Uncompressed {
		resp.Body.Close()
		return false, fmt.Errorf("client: the response to %s %s was decompressed by Base, so its Content-Digest cannot be checked: give Base DisableCompression, or leave Accept-Encoding to the Transport", r.Method, r.URL.Redacted())
	}
	v := httpsig.ResponseVerifier{Keys: t.GatewayKeys}
	res, err := v.VerifyStream(r.Context(), resp)
	if err != nil {
		return fail(err)
	}
	askedForGzip := len(req.Header["Accept-Encoding"]) == 0 && len(r.Header["Accept-Encoding"]) > 0
	if askedForGzip && strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") && resp.Body != http.NoBody {
		resp.Body = &gunzipBody{checked: resp.Body}
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength, resp.Uncompressed = -1, true
	}
	resp.Body = markVerified(resp.Body, res)
	return res.Tag == httpsig.GatewayTag, nil
}

// correctClock reports whether resp is a Signet server's refusal of the
// signature created at created (sent at local time sent) for a time the
// origin's clock offset, corrected from resp's Date, would cure; if so it
// sets that offset. See [Transport] for the rule. resp.Body stays whole.
func (t *Transport) correctClock(resp *http.Response, org originKey, created, sent time.Time, own bool) bool {
	if t.GatewayKeys != nil && !own {
		// Only the gateway's signature of its own answer vouches for a
		// refusal and its Date.
		return false
	}
	if resp.StatusCode != http.StatusUnauthorized || !signatureChallenge(resp.Header.Values("WWW-Authenticate")) {
		return false
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/problem+json" {
		return false
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return false
	}
	// A signed problem is read to its end, where its digest is checked:
	// its reason is trusted only then.
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxProblemBytes+1))
	resp.Body = withReader(resp.Body, io.MultiReader(bytes.NewReader(head), resp.Body))
	if err != nil || len(head) > maxProblemBytes {
		return false
	}
	var problem struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(head, &problem) != nil {
		return false
	}
	reason, ok := strings.CutPrefix(problem.Type, t.problemBase())
	if !ok {
		return false
	}
	now := t.now()
	// A clock that was right still puts created up to a second (Date's
	// precision), a second more (an offset learnt before, rounded) and
	// the round trip away from Date: what lies within that margin is no
	// evidence of a wrong clock, and a correction would change nothing.
	margin := 2*time.Second + max(now.Sub(sent), 0)
	switch httpsig.Reason(reason) {
	case httpsig.ReasonExpired:
		if date.Sub(created) <= margin {
			return false
		}
	case httpsig.ReasonNotYetValid:
		if created.Sub(date) <= margin {
			return false
		}
	default:
		return false
	}
	// Date has whole seconds: the server read its clock somewhere in
	// [date, date+1s).
	t.offsets.Add(org, date.Add(500*time.Millisecond).Sub(now).Round(time.Second))
	return true
}

// signatureChallenge reports whether WWW-Authenticate field values hold a
// challenge for the Signature scheme (RFC 9110 §11.6.1).
func signatureChallenge(values []string) bool {
	for _, v := range values {
		for _, scheme := range challengeSchemes(v) {
			if strings.EqualFold(scheme, "Signature") {
				return true
			}
		}
	}
	return false
}

// challengeSchemes returns the auth-schemes of the challenges in one
// WWW-Authenticate field value: the tokens that open an element of the
// comma-separated list and are not the name of an auth-param.
func challengeSchemes(v string) []string {
	var schemes []string
	inQuote, start := false, true
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
		case c == ',':
			start = true
		case start && c != ' ' && c != '\t':
			start = false
			j := i
			for j < len(v) && !strings.ContainsRune(" \t,=\"", rune(v[j])) {
				j++
			}
			k := j
			for k < len(v) && (v[k] == ' ' || v[k] == '\t') {
				k++
			}
			if j > i && (k == len(v) || v[k] != '=') {
				schemes = append(schemes, v[i:j])
			}
			i = max(j, i+1) - 1
		}
	}
	return schemes
}

// discard drains a little of a body, so that its connection can be used
// again, and closes it.
func discard(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, 4<<10))
	body.Close()
}
