package httpsig

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// The Signet response profile (docs/signed-responses.md): a server signs
// each response it sends, binding it to the request it answers, so that a
// client can tell the server's own answers (and its Date) from anything
// else on the path.
const (
	// ResponseTag is the tag of the signature of a response a server
	// relays from the service behind it (a gateway's upstream, the
	// handler behind middleware): it vouches that the response is the
	// service's answer to that request, unaltered.
	ResponseTag = "signet-response"
	// GatewayTag is the tag of the signature of a response the server
	// makes itself: its refusals and its own errors. Only such a
	// response speaks for the server: a client corrects its clock, or
	// sends a request again, on nothing else.
	GatewayTag = "signet-gateway"
	// ResponseLabel is the label a [ResponseSigner] gives its signature.
	ResponseLabel = "signet"
)

// Components of the response profile, marked as checked.
var (
	compStatus     = Component{Name: Status, checked: Status}
	compDate       = Component{Name: "date", checked: "date"}
	compReqMethod  = Component{Name: Method, Req: true, checked: Method}
	compReqPath    = Component{Name: Path, Req: true, checked: Path}
	compReqQuery   = Component{Name: Query, Req: true, checked: Query}
	compReqSig     = Component{Name: "signature", Req: true, checked: "signature"}
	compRespCType  = Component{Name: "content-type", checked: "content-type"}
	compRespDigest = compContentDigest
)

// ResponseComponents returns the components a response signature covers,
// in signing order, for a response with header fields h and content
// (hasContent) that answers req: @status; content-type if h has it;
// content-digest if the response has content; date; and of the request,
// with the req parameter, @method, @path, @query if it has a query, and
// signature if it carries a Signature field, which binds the response to
// that one request (its nonce and created time).
func ResponseComponents(req *http.Request, h http.Header, hasContent bool) []Component {
	out := make([]Component, 0, 8)
	out = append(out, compStatus)
	if len(h["Content-Type"]) > 0 {
		out = append(out, compRespCType)
	}
	if hasContent {
		out = append(out, compRespDigest)
	}
	return appendResponseBinding(append(out, compDate), req)
}

// appendResponseBinding appends the components of the request.
func appendResponseBinding(out []Component, req *http.Request) []Component {
	out = append(out, compReqMethod, compReqPath)
	if splitTarget(req).hasQuery {
		out = append(out, compReqQuery)
	}
	if len(req.Header["Signature"]) > 0 {
		out = append(out, compReqSig)
	}
	return out
}

// ResponseSigner signs responses in the Signet response profile. Its
// fields are read-only once it is in use; it is then safe for concurrent
// use.
type ResponseSigner struct {
	Key   SigningKey // required; Signet servers use Ed25519
	KeyID string     // required
	// Label of the signature; empty means ResponseLabel.
	Label string
	// Tag of the signature: ResponseTag or GatewayTag; empty means
	// ResponseTag.
	Tag string
	// Digest is the algorithm for Content-Digest; empty means sha-256.
	Digest DigestAlgorithm
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (s *ResponseSigner) label() string {
	if s.Label == "" {
		return ResponseLabel
	}
	return s.Label
}

func (s *ResponseSigner) tag() string {
	if s.Tag == "" {
		return ResponseTag
	}
	return s.Tag
}

// ContentDigest returns the Content-Digest field value of content, in the
// signer's digest algorithm.
func (s *ResponseSigner) ContentDigest(content []byte) (string, error) {
	return ContentDigest(s.Digest, content)
}

// NewDigester returns a Digester in the signer's digest algorithm, for
// content that streams by.
func (s *ResponseSigner) NewDigester() (*Digester, error) {
	return NewDigester(s.Digest)
}

// SignHeader signs a response before its header is sent: status and h are
// its status code and header fields, req the request it answers as the
// client sent it (with its Signature field, if any), and digest the
// Content-Digest field value of its content, or "" when it has none.
//
// SignHeader sets Date to the signer's clock (the clock the server checks
// created times against, which is what a client learns from it) and
// Content-Digest to digest when it is not empty, removes any signature
// already there under its label or with one of the two tags (only the
// server speaks for them; fields that do not parse are removed whole),
// and adds its signature, covering [ResponseComponents] with the
// parameters created, keyid, alg and tag.
func (s *ResponseSigner) SignHeader(h http.Header, status int, req *http.Request, digest string) error {
	if s.Key == nil || s.KeyID == "" {
		return errors.New("httpsig: a ResponseSigner needs a Key and a KeyID")
	}
	if req == nil || h == nil {
		return errors.New("httpsig: SignHeader needs the header fields and the request")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	h["Date"] = []string{t.UTC().Format(http.TimeFormat)}
	if digest != "" {
		h["Content-Digest"] = []string{digest}
	}
	label, tag := s.label(), s.tag()
	dropSignatures(h, label)
	p := Params{
		Components: ResponseComponents(req, h, digest != ""),
		Created:    time.Unix(t.Unix(), 0), KeyID: s.KeyID, Alg: s.Key.Algorithm(), Tag: tag,
	}
	m := Message{Request: req, Response: &http.Response{StatusCode: status, Header: h, Request: req}}
	sc := signScratches.Get().(*signScratch)
	defer signScratches.Put(sc)
	return signMessage(sc, &m, label, &p, s.Key, nil)
}

// SignResponse signs resp, whose content is body, with SignHeader;
// resp.Request is the request it answers. An empty body has no
// Content-Digest.
func (s *ResponseSigner) SignResponse(resp *http.Response, body []byte) error {
	var digest string
	if len(body) > 0 {
		var err error
		if digest, err = ContentDigest(s.Digest, body); err != nil {
			return err
		}
	}
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	return s.SignHeader(resp.Header, resp.StatusCode, resp.Request, digest)
}

// dropSignatures removes the members of Signature-Input and Signature
// whose label is label or whose tag is one of the server's.
func dropSignatures(h http.Header, label string) {
	inputs, values := h["Signature-Input"], h["Signature"]
	if len(inputs) == 0 && len(values) == 0 {
		return
	}
	var sp sf.Parser
	in, err1 := sp.ParseDictionary(joinField(inputs))
	dup := sp.Duplicate
	val, err2 := sp.ParseDictionary(joinField(values))
	if err1 != nil || err2 != nil || dup || sp.Duplicate {
		delete(h, "Signature-Input")
		delete(h, "Signature")
		return
	}
	var dropped []string
	in = slices.DeleteFunc(in, func(m sf.Member) bool {
		drop := m.Key == label || slices.ContainsFunc(m.Params, func(p sf.Param) bool {
			return p.Key == "tag" && p.Value.Kind == sf.String && (p.Value.Str == ResponseTag || p.Value.Str == GatewayTag)
		})
		if drop {
			dropped = append(dropped, m.Key)
		}
		return drop
	})
	if len(dropped) == 0 && !slices.ContainsFunc(val, func(m sf.Member) bool { return m.Key == label }) {
		return
	}
	val = slices.DeleteFunc(val, func(m sf.Member) bool { return m.Key == label || slices.Contains(dropped, m.Key) })
	setDictionary(h, "Signature-Input", in)
	setDictionary(h, "Signature", val)
}

func setDictionary(h http.Header, name string, members []sf.Member) {
	b, err := sf.AppendDictionary(nil, members)
	if err != nil || len(members) == 0 {
		delete(h, name)
		return
	}
	h[name] = []string{string(b)}
}

// ResponseVerifier checks the response signatures of the Signet response
// profile. Its fields are read-only once it is in use; it is then safe for
// concurrent use.
//
// It checks every signature with one of its tags, and demands of each that it
// cover @status, date, content-type when the response has it, and of the
// request (resp.Request, as it was sent) @method, @path, @query when it has
// a query and signature when it was signed; the content must be covered
// by content-digest, or be empty. Time is not checked: the client's clock
// may be the one that is off, and the response is bound to its one
// request by the request's signature, whose nonce is fresh.
type ResponseVerifier struct {
	// Keys resolves the keyids of the server's signatures. Required.
	Keys KeyResolver
	// Tags select the signatures to check; nil means ResponseTag and
	// GatewayTag. [Result].Tag says which the response carried.
	Tags []string
	// Structured adds structured-field types, as [Message.Structured] does.
	Structured map[string]FieldType
}

func (v *ResponseVerifier) verifier(resp *http.Response) (*Verifier, error) {
	if v.Keys == nil {
		return nil, errors.New("httpsig: ResponseVerifier.Keys is nil")
	}
	if resp.Request == nil {
		return nil, errors.New("httpsig: the response has no Request, which its signature covers")
	}
	tags := v.Tags
	if tags == nil {
		tags = []string{ResponseTag, GatewayTag}
	}
	required := []Component{compStatus, compDate}
	if len(resp.Header["Content-Type"]) > 0 {
		required = append(required, compRespCType)
	}
	return &Verifier{
		Policy: Policy{
			Required: appendResponseBinding(required, resp.Request), RequiredParams: []string{"created", "keyid"},
			MaxAge: -1,
		},
		Keys: v.Keys, Structured: v.Structured, ignoreTime: true, tags: tags,
	}, nil
}

// Verify checks the response signatures of resp, whose content, read
// already, is body. A refusal is a [*VerifyError]; any other error means
// the key resolver could not answer.
func (v *ResponseVerifier) Verify(ctx context.Context, resp *http.Response, body []byte) (Result, error) {
	pv, err := v.verifier(resp)
	if err != nil {
		return Result{}, err
	}
	m := Message{Request: resp.Request, Response: resp, Structured: v.Structured}
	res, err := pv.verify(ctx, &m, resp.Header, body, len(body) > 0, false)
	if err != nil {
		return Result{}, ofResponse(err)
	}
	if len(body) > 0 && !res.coversDigest {
		return Result{}, refuse(ReasonMissingComponent, res.Label, "the response has content, and its signature does not cover content-digest")
	}
	return res, nil
}

// VerifyStream checks the response signatures of resp before its content
// is read, and the content as it is read: resp.Body is replaced by a
// reader that hashes what it passes on and, at the end, returns an error
// wrapping a [*VerifyError] (digest-mismatch) instead of io.EOF when the
// content does not match the signed Content-Digest, or (missing-component)
// as soon as content arrives that no signature covers. So the content is
// never held in memory, and a reader that reads to the end (io.ReadAll,
// io.Copy, a JSON decoder followed by a read to EOF) learns of a
// mismatch; what it acted on before then was not yet verified. The body
// of a 101 (Switching Protocols) response, a connection, is left alone.
func (v *ResponseVerifier) VerifyStream(ctx context.Context, resp *http.Response) (Result, error) {
	pv, err := v.verifier(resp)
	if err != nil {
		return Result{}, err
	}
	m := Message{Request: resp.Request, Response: resp, Structured: v.Structured}
	res, err := pv.verify(ctx, &m, resp.Header, nil, false, true)
	if err != nil {
		return Result{}, ofResponse(err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil || resp.Body == http.NoBody {
		return res, nil
	}
	cb := &checkedBody{rc: resp.Body, label: res.Label}
	if res.coversDigest {
		if cb.digest, err = NewDigestVerifier(res.ContentDigest); err != nil {
			return Result{}, err
		}
	}
	resp.Body = cb
	return res, nil
}

// ofResponse rewords a refusal about the signature fields, which the
// parser words for a request, for the response it is about.
func ofResponse(err error) error {
	var ve *VerifyError
	if errors.As(err, &ve) {
		if rest, ok := strings.CutPrefix(ve.Detail, "the request has "); ok {
			c := *ve
			c.Detail = "the response has " + rest
			return &c
		}
	}
	return err
}

// checkedBody passes on the content of a response while hashing it, and
// checks it at the end.
type checkedBody struct {
	mu     sync.Mutex
	rc     io.ReadCloser
	digest *DigestVerifier // nil: no content is covered
	label  string
	err    error // sticky
}

func (b *checkedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		if b.digest == nil {
			b.err = refuse(ReasonMissingComponent, b.label, "the response has content, and its signature does not cover content-digest")
			return 0, b.err
		}
		b.digest.Write(p[:n])
	}
	if err == io.EOF && b.digest != nil {
		if cerr := b.digest.Check(); cerr != nil {
			ve := cerr.(*VerifyError)
			ve.Label = b.label
			b.err = ve
			return n, b.err
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *checkedBody) Close() error { return b.rc.Close() }
