package httpsig

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	rand2 "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// DefaultLabel is the label a [Signer] gives its signature.
const DefaultLabel = "sig1"

// Signer signs requests with one key in the default profile, or with the
// components it is given. Its fields are read-only once it is in use; it is
// then safe for concurrent use.
type Signer struct {
	Key   SigningKey // required
	KeyID string     // required
	// Label of the signature; empty means DefaultLabel.
	Label string
	// Components to cover, in order. Nil means the default profile:
	// @method, @authority, @path, then @query, content-type and
	// content-digest when the request has them.
	Components []Component
	// Tag, if set, is sent as the tag parameter.
	Tag string
	// ExpiresAfter, if positive, adds an expires parameter this long
	// after created.
	ExpiresAfter time.Duration
	// NoNonce leaves out the nonce parameter, which is otherwise 128
	// random bits, fresh for each signature.
	NoNonce bool
	// NoAlg leaves out the alg parameter.
	NoAlg bool
	// Digest is the algorithm for Content-Digest; empty means sha-256.
	Digest DigestAlgorithm
	// Scheme and Structured are as in [Message].
	Scheme     string
	Structured map[string]FieldType
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// NewNonce returns 128 random bits in unpadded base64url: the nonce a
// Signer sends.
func NewNonce() string {
	var text [nonceLen]byte
	newNonceInto(&text)
	return string(text[:])
}

// nonceLen is the length of a nonce's text: 128 bits in unpadded base64.
const nonceLen = 22

func newNonceInto(text *[nonceLen]byte) {
	g := nonceSources.Get().(*rand2.ChaCha8)
	newNonceFrom(g, text)
	nonceSources.Put(g)
}

// newNonceFrom writes a new nonce to text, from g, a generator of
// nonceSources.
func newNonceFrom(g *rand2.ChaCha8, text *[nonceLen]byte) {
	var b [16]byte
	g.Read(b[:])
	base64.RawURLEncoding.Encode(text[:], b[:])
}

// nonceSources are ChaCha8 generators, a cryptographically strong stream
// per generator, each seeded from crypto/rand: cheaper per nonce than a
// system call, and as unpredictable.
var nonceSources = sync.Pool{New: func() any {
	var seed [32]byte
	rand.Read(seed[:])
	return rand2.NewChaCha8(seed)
}}

// SignRequest signs r. If body is not nil it is r's content, and
// SignRequest first sets Content-Digest for it (an empty body gets no
// Content-Digest). A request that has content (ContentLength > 0) but
// neither a body nor a Content-Digest field is an error: the signature
// would not protect the content.
func (s *Signer) SignRequest(r *http.Request, body []byte) error {
	sc := signScratches.Get().(*signScratch)
	defer signScratches.Put(sc)
	m := Message{Request: r, Scheme: s.Scheme, Structured: s.Structured}
	// spare, when set, holds the values of the new fields, in one
	// allocation.
	var spare []string
	if len(body) > 0 {
		alg := s.Digest.orDefault()
		fresh := len(r.Header["Signature-Input"]) == 0 && len(r.Header["Signature"]) == 0
		if fresh && s.Components == nil && (alg == DigestSHA256 || alg == DigestSHA512) {
			// The usual request: the new Content-Digest waits in the
			// scratch, for the base, and then shares one string with the
			// two signature fields.
			sc.digest = appendContentDigest(sc.digest[:0], alg, body)
			m.newDigest, spare = sc.digest, make([]string, 3)
		} else {
			d, err := ContentDigest(s.Digest, body)
			if err != nil {
				return err
			}
			if fresh {
				fields := make([]string, 3)
				fields[0] = d
				r.Header["Content-Digest"], spare = fields[0:1:1], fields[1:3]
			} else {
				r.Header["Content-Digest"] = []string{d}
			}
		}
	}
	hasDigest := m.newDigest != nil
	if !hasDigest {
		_, hasDigest = contentDigestField(r.Header)
	}
	if r.ContentLength > 0 && !hasDigest && s.Components == nil {
		return errors.New("httpsig: the request has content but no Content-Digest; pass its body to SignRequest")
	}
	if !s.NoNonce {
		if sc.nonceGen == nil {
			sc.nonceGen = nonceSources.New().(*rand2.ChaCha8)
		}
		newNonceFrom(sc.nonceGen, &sc.nonce)
	}
	p := s.paramsWith(&sc.nonce)
	if p.Components == nil {
		m.contentType, m.ctKnown = r.Header["Content-Type"], true
		list := &defaultLists[profileIndex(m.targetOf(r).query != "", len(m.contentType) > 0, len(body) > 0 || hasDigest)]
		p.Components, p.listText = list.comps, list.text
	}
	err := signMessage(sc, &m, s.label(), &p, s.Key, spare)
	if err != nil && m.newDigest != nil {
		// Content-Digest is set for the body whether or not signing
		// succeeds, as when it is set first.
		r.Header["Content-Digest"] = []string{string(m.newDigest)}
	}
	return err
}

// defaultLists holds the eight lists of the default profile, by
// profileIndex, with their serialisation: the components of a request
// come from here, already checked and serialised once.
var defaultLists = func() (lists [8]struct {
	comps []Component
	text  string
}) {
	for i := range lists {
		comps := appendDefaultProfile(nil, i&1 != 0, i&2 != 0, i&4 != 0)
		p := Params{Components: comps}
		b, err := p.appendTo(nil)
		if err != nil {
			panic(err)
		}
		lists[i].comps, lists[i].text = comps, string(b)
	}
	return lists
}()

func profileIndex(hasQuery, hasContentType, hasContent bool) int {
	i := 0
	if hasQuery {
		i |= 1
	}
	if hasContentType {
		i |= 2
	}
	if hasContent {
		i |= 4
	}
	return i
}

// SignResponse signs resp, setting Content-Digest for body first if it is
// not nil. With no Components, it covers @status, content-type and
// content-digest when present.
func (s *Signer) SignResponse(resp *http.Response, body []byte) error {
	if len(body) > 0 {
		d, err := ContentDigest(s.Digest, body)
		if err != nil {
			return err
		}
		resp.Header.Set("Content-Digest", d)
	}
	p := s.params()
	if p.Components == nil {
		p.Components = []Component{{Name: Status}}
		if len(resp.Header["Content-Type"]) > 0 {
			p.Components = append(p.Components, compContentType)
		}
		if _, ok := contentDigestField(resp.Header); ok {
			p.Components = append(p.Components, compContentDigest)
		}
	}
	m := Message{Request: resp.Request, Response: resp, Scheme: s.Scheme, Structured: s.Structured}
	sc := signScratches.Get().(*signScratch)
	defer signScratches.Put(sc)
	return signMessage(sc, &m, s.label(), &p, s.Key, nil)
}

func (s *Signer) label() string {
	if s.Label == "" {
		return DefaultLabel
	}
	return s.Label
}

func (s *Signer) params() Params { return s.paramsWith(nil) }

// paramsWith returns the parameters of a new signature. If nonce is not
// nil, it holds a new nonce (unless s.NoNonce), which the parameters
// serialise from there rather than from a string.
func (s *Signer) paramsWith(nonce *[nonceLen]byte) Params {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	created := time.Unix(now().Unix(), 0)
	p := Params{Components: s.Components, Created: created, KeyID: s.KeyID, Tag: s.Tag}
	if !s.NoAlg {
		p.Alg = s.Key.Algorithm()
	}
	switch {
	case s.NoNonce:
	case nonce != nil:
		p.nonceText = nonce[:]
	default:
		p.Nonce = NewNonce()
	}
	if s.ExpiresAfter > 0 {
		p.Expires = created.Add(s.ExpiresAfter)
	}
	return p
}

var signScratches = sync.Pool{New: func() any { return new(signScratch) }}

type signScratch struct {
	base, sig, out, digest []byte
	nonce                  [nonceLen]byte
	// nonceGen makes the nonces of this scratch's signatures: one of
	// nonceSources, kept here to save taking one from the pool.
	nonceGen *rand2.ChaCha8
	fields   structuredFields
	dups     componentSet
	// head is the serialisation of the last new signature's parameters
	// up to its nonce, and what it was made from (see appendParams);
	// keyids are not secret, and the key itself is not held.
	head struct {
		text    []byte
		list    string
		created int64 // Unix time, which tells the zero time apart
		keyID   string
		alg     Algorithm
		hasText bool
	}
}

// appendParams appends p serialised, as p.appendTo does. The parameters of
// a new signature over one of defaultLists, with no expires or tag and a
// nonce in nonceText, serialise as the list, created, keyid and alg, which
// are the same for the signatures a signer makes within a second, then the
// nonce: that head is kept in sc and reused while what it is made from is
// unchanged.
func (sc *signScratch) appendParams(dst []byte, p *Params) ([]byte, error) {
	if p.listText == "" || len(p.order) != 0 || len(p.extra) != 0 || !p.Expires.IsZero() || p.Tag != "" || p.Nonce != "" || p.nonceText == nil {
		return p.appendTo(dst)
	}
	h := &sc.head
	created := p.Created.Unix()
	if !h.hasText || h.list != p.listText || h.created != created || h.keyID != p.KeyID || h.alg != p.Alg {
		head := Params{Components: p.Components, listText: p.listText, Created: p.Created, KeyID: p.KeyID, Alg: p.Alg}
		text, err := head.appendTo(h.text[:0])
		if err != nil {
			h.hasText = false
			return dst, err
		}
		h.text, h.list, h.created, h.keyID, h.alg, h.hasText = text, p.listText, created, p.KeyID, p.Alg, true
	}
	dst = append(dst, h.text...)
	// base64url text: nothing to escape, as appendNew writes it.
	return append(append(append(dst, `;nonce="`...), p.nonceText...), '"'), nil
}

// SignMessage signs m for p with key and adds the signature under label to
// the Signature-Input and Signature fields of the message's header, next
// to any signatures already there. p is used as given: its components in
// their order, its parameters as set. If p.Alg is set it must be the key's.
func SignMessage(m *Message, label string, p *Params, key SigningKey) error {
	sc := signScratches.Get().(*signScratch)
	defer signScratches.Put(sc)
	return signMessage(sc, m.fresh(), label, p, key, nil)
}

// signMessage signs m; spare, if not nil, is room for the values of the
// two signature fields when they are new, and before them for the value
// of Content-Digest when m.newDigest is set, which m's header then gets.
func signMessage(sc *signScratch, m *Message, label string, p *Params, key SigningKey, spare []string) error {
	if !sf.IsKey(label) {
		return fmt.Errorf("httpsig: %q is not a valid signature label (lower-case letters, digits, _-.*)", label)
	}
	if p.Alg != "" && p.Alg != key.Algorithm() {
		return fmt.Errorf("httpsig: the key is for %s, the parameters say %s", key.Algorithm(), p.Alg)
	}
	if p.listText == "" { // else one of defaultLists, checked already
		for i := range p.Components {
			if err := p.Components[i].validate(); err != nil {
				return fmt.Errorf("httpsig: %w", err)
			}
		}
		if err := sc.dups.checkDuplicates(p.Components); err != nil {
			return fmt.Errorf("httpsig: %w", err)
		}
	}
	h := m.Request.Header
	if m.Response != nil {
		h = m.Response.Header
	}
	if h == nil {
		return errors.New("httpsig: the message has no header map")
	}
	var err error
	if sc.base, err = appendBaseLines(sc.base[:0], m, p, &sc.fields); err != nil {
		return fmt.Errorf("httpsig: %w", err)
	}
	paramsStart := len(sc.base)
	if sc.base, err = sc.appendParams(sc.base, p); err != nil {
		return fmt.Errorf("httpsig: %w", err)
	}
	var sig []byte
	if as, ok := key.(appendSigner); ok {
		sc.sig = as.appendSign(sc.sig[:0], sc.base)
		sig = sc.sig
	} else if sig, err = key.Sign(sc.base); err != nil {
		return err
	}
	// With room for Content-Digest too, SignRequest found both signature
	// fields absent, so no label can be taken.
	fresh := m.newDigest != nil && len(spare) == 3
	if !fresh {
		if err := checkLabelFree(h, label); err != nil {
			return err
		}
	}
	// The serialised parameters are the tail of the base.
	paramsText := sc.base[paramsStart:]
	// The new field values in one string, one allocation.
	nd := len(m.newDigest)
	sc.out = append(append(append(append(sc.out[:0], m.newDigest...), label...), '='), paramsText...)
	n := len(sc.out)
	sc.out = sf.AppendBareByteSeq(append(append(sc.out, label...), '='), sig)
	all := string(sc.out)
	input, value := all[nd:n], all[n:]
	if fresh {
		// SignRequest checked that the signature fields are new.
		spare[0], spare[1], spare[2] = all[:nd], input, value
		h["Content-Digest"], h["Signature-Input"], h["Signature"] = spare[0:1:1], spare[1:2:2], spare[2:3:3]
		return nil
	}
	if len(h["Signature-Input"]) == 0 && len(h["Signature"]) == 0 {
		// The usual case: the two fields are new; one slice holds both.
		fields := spare
		if len(fields) != 2 {
			fields = make([]string, 2)
		}
		fields[0], fields[1] = input, value
		h["Signature-Input"], h["Signature"] = fields[0:1:1], fields[1:2:2]
		return nil
	}
	addMember(h, "Signature-Input", input)
	addMember(h, "Signature", value)
	return nil
}

// appendSigner is implemented by keys that can sign into a buffer.
type appendSigner interface {
	appendSign(dst, base []byte) []byte
}

// checkLabelFree refuses a label already used by a signature of h.
func checkLabelFree(h http.Header, label string) error {
	lines := h["Signature-Input"]
	if len(lines) == 0 {
		return nil
	}
	var sp sf.Parser
	members, err := sp.ParseDictionary(joinField(lines))
	if err != nil {
		return fmt.Errorf("httpsig: the message's Signature-Input is malformed: %w", err)
	}
	if slices.ContainsFunc(members, func(m sf.Member) bool { return m.Key == label }) {
		return fmt.Errorf("httpsig: the message already has a signature labelled %q", label)
	}
	return nil
}

// addMember adds a Dictionary member to the field name, at the end of its
// last line if it has one.
func addMember(h http.Header, name, member string) {
	if v := h[name]; len(v) > 0 {
		v[len(v)-1] += ", " + member
		return
	}
	h[name] = []string{member}
}
