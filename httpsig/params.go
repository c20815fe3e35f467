package httpsig

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// Params are the covered components and metadata of one signature: the
// value of its @signature-params component and of its Signature-Input
// member (RFC 9421 §2.3). Zero times and empty strings are absent
// parameters.
type Params struct {
	Components []Component
	Created    time.Time
	Expires    time.Time
	KeyID      string
	Alg        Algorithm
	Nonce      string
	Tag        string

	// order and extra keep a parsed value's parameter order and any
	// parameters this package does not know, so that it serialises back
	// as it was received.
	order []byte
	extra []sf.Param
}

// Signature-parameter letters used in Params.order; extras are 'x'.
const (
	spCreated = 'c'
	spExpires = 'e'
	spKeyID   = 'k'
	spAlg     = 'a'
	spNonce   = 'n'
	spTag     = 't'
	spExtra   = 'x'
	spDefault = "ckanet" // created, keyid, alg, nonce, expires, tag
)

// paramsFromMember reads a Signature-Input member. comps is storage the
// components are appended to; the result's Components alias it.
func paramsFromMember(m sf.Member, comps []Component, p *Params) error {
	if !m.Inner {
		return errors.New("signature input is not an inner list")
	}
	for _, it := range m.Items {
		c, err := componentFromItem(it)
		if err != nil {
			return err
		}
		comps = append(comps, c)
	}
	if err := checkDuplicates(comps); err != nil {
		return err
	}
	p.Components, p.order, p.extra = comps, p.order[:0], p.extra[:0]
	p.Created, p.Expires = time.Time{}, time.Time{}
	p.KeyID, p.Alg, p.Nonce, p.Tag = "", "", "", ""
	for _, prm := range m.Params {
		v := prm.Value
		letter := byte(spExtra)
		switch prm.Key {
		case "created", "expires":
			if v.Kind != sf.Integer || v.Int < 0 {
				return fmt.Errorf("parameter %s must be a non-negative Integer", prm.Key)
			}
			if prm.Key == "created" {
				p.Created, letter = time.Unix(v.Int, 0), spCreated
			} else {
				p.Expires, letter = time.Unix(v.Int, 0), spExpires
			}
		case "keyid", "alg", "nonce", "tag":
			if v.Kind != sf.String {
				return fmt.Errorf("parameter %s must be a String", prm.Key)
			}
			switch prm.Key {
			case "keyid":
				p.KeyID, letter = v.Str, spKeyID
			case "alg":
				p.Alg, letter = Algorithm(v.Str), spAlg
			case "nonce":
				p.Nonce, letter = v.Str, spNonce
			case "tag":
				p.Tag, letter = v.Str, spTag
			}
		default:
			p.extra = append(p.extra, prm)
		}
		p.order = append(p.order, letter)
	}
	return nil
}

// String returns the serialised inner list with parameters: the value of
// @signature-params and of the Signature-Input member.
func (p *Params) String() string {
	b, err := p.appendTo(nil)
	if err != nil {
		return ""
	}
	return string(b)
}

// appendTo serialises p per RFC 9421 §2.3. A parsed value keeps its
// parameter order; parameters set afterwards follow in the default order.
func (p *Params) appendTo(dst []byte) ([]byte, error) {
	dst = append(dst, '(')
	for i := range p.Components {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = p.Components[i].appendTo(dst)
	}
	dst = append(dst, ')')
	w := paramWriter{p: p, dst: dst}
	for _, letter := range p.order {
		w.write(letter)
	}
	for i := 0; i < len(spDefault); i++ {
		w.write(spDefault[i])
	}
	for w.err == nil && w.extra < len(p.extra) {
		w.write(spExtra)
	}
	if w.err != nil {
		return w.dst, fmt.Errorf("httpsig: signature parameters cannot be serialised: %w", w.err)
	}
	return w.dst, nil
}

// paramWriter appends signature parameters, each once.
type paramWriter struct {
	p     *Params
	dst   []byte
	done  [len(spDefault)]bool
	extra int // extras written so far
	err   error
}

func (w *paramWriter) write(letter byte) {
	p := w.p
	if w.err != nil {
		return
	}
	if letter == spExtra {
		if w.extra < len(p.extra) {
			w.dst, w.err = sf.AppendParams(w.dst, p.extra[w.extra:w.extra+1])
			w.extra++
		}
		return
	}
	i := indexByte(spDefault, letter)
	if w.done[i] {
		return
	}
	w.done[i] = true
	switch letter {
	case spCreated:
		w.appendTime(";created=", p.Created)
	case spExpires:
		w.appendTime(";expires=", p.Expires)
	case spKeyID:
		w.dst, w.err = appendStringParam(w.dst, ";keyid=", p.KeyID)
	case spAlg:
		w.dst, w.err = appendStringParam(w.dst, ";alg=", string(p.Alg))
	case spNonce:
		w.dst, w.err = appendStringParam(w.dst, ";nonce=", p.Nonce)
	case spTag:
		w.dst, w.err = appendStringParam(w.dst, ";tag=", p.Tag)
	}
}

func (w *paramWriter) appendTime(prefix string, t time.Time) {
	if t.IsZero() {
		return
	}
	w.dst = append(w.dst, prefix...)
	w.dst, w.err = sf.AppendBare(w.dst, sf.Bare{Kind: sf.Integer, Int: t.Unix()})
}

func appendStringParam(dst []byte, prefix, v string) ([]byte, error) {
	if v == "" {
		return dst, nil
	}
	dst = append(dst, prefix...)
	return sf.AppendString(dst, v)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// Signature is one labelled signature of a message: its parameters from
// Signature-Input and its value from Signature.
type Signature struct {
	Label  string
	Params Params
	Value  []byte
}

// ParseSignatures parses the Signature-Input and Signature fields of h
// (RFC 9421 §4.1, §4.2). Labels must be unique and each Signature-Input
// member needs a Signature member; a Signature member without a
// Signature-Input member is ignored, as RFC 9421 §4.2 requires. It returns
// an error with reason missing-signature when there is no Signature-Input
// field, and malformed-signature for anything else wrong.
func ParseSignatures(h http.Header) ([]Signature, error) {
	var st sigSet
	if err := st.parse(h); err != nil {
		return nil, err
	}
	out := make([]Signature, len(st.sigs))
	for i, s := range st.sigs {
		out[i] = Signature{Label: s.label, Value: append([]byte(nil), s.value...)}
		p := &out[i].Params
		*p = s.params
		p.Components = append([]Component(nil), s.params.Components...)
		p.order = append([]byte(nil), s.params.order...)
		p.extra = append([]sf.Param(nil), s.params.extra...)
	}
	return out, nil
}
