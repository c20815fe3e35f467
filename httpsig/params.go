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
	// listText, when set, is the serialised inner list of Components:
	// the Signer sets it for the default profile's lists.
	listText string
	// nonceText, when set and Nonce is not, is the nonce: the Signer
	// writes a new one there, which spares making it a string.
	nonceText []byte
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

// errEmptyAlg is refused with reason algorithm-mismatch: alg must name a
// registered algorithm (RFC 9421 §2.3), and "" names none.
var errEmptyAlg = errors.New(`alg="" names no algorithm`)

// paramsFromMember reads a Signature-Input member. comps is storage the
// components are appended to; the result's Components alias it.
func paramsFromMember(m sf.Member, comps []Component, p *Params, dups *componentSet) error {
	if !m.Inner {
		return errors.New("a signature input must be an inner list")
	}
	comps, err := componentsFromItems(m.Items, comps, dups)
	if err != nil {
		return err
	}
	return paramsFromList(m.Params, comps, p)
}

// componentsFromItems reads the covered components of a signature.
func componentsFromItems(items []sf.Item, comps []Component, dups *componentSet) ([]Component, error) {
	for _, it := range items {
		c, err := componentFromItem(it)
		if err != nil {
			return comps, err
		}
		comps = append(comps, c)
	}
	return comps, dups.checkDuplicates(comps)
}

// paramsFromList sets p to the components and signature parameters given.
func paramsFromList(params []sf.Param, comps []Component, p *Params) error {
	p.Components, p.order, p.extra = comps, p.order[:0], p.extra[:0]
	p.Created, p.Expires = time.Time{}, time.Time{}
	p.KeyID, p.Alg, p.Nonce, p.Tag = "", "", "", ""
	for _, prm := range params {
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
				if v.Str == "" {
					return errEmptyAlg
				}
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
	if p.listText != "" {
		dst = append(dst, p.listText...)
	} else {
		dst = append(dst, '(')
		for i := range p.Components {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = p.Components[i].appendTo(dst)
		}
		dst = append(dst, ')')
	}
	var done [len(spDefault)]bool
	extra := 0
	var err error
	if len(p.order) == 0 && len(p.extra) == 0 {
		// A signature being made: the parameters that are set, in the
		// default order (spDefault), none written yet.
		if dst, err = p.appendNew(dst); err != nil {
			return dst, fmt.Errorf("signature parameters cannot be serialised: %w", err)
		}
		return dst, nil
	}
	// Parameters in p.order were received, so they are written even when
	// empty (tag=""); the others only when set.
	for _, letter := range p.order {
		if dst, err = p.appendParam(dst, letter, &done, &extra, true); err != nil {
			return dst, err
		}
	}
	for i := 0; i < len(spDefault); i++ {
		if dst, err = p.appendParam(dst, spDefault[i], &done, &extra, false); err != nil {
			return dst, err
		}
	}
	for extra < len(p.extra) {
		if dst, err = p.appendParam(dst, spExtra, &done, &extra, false); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// appendNew appends the parameters of a signature being made that are
// set, in the order of spDefault: what appendKnown gives for each letter,
// written out.
func (p *Params) appendNew(dst []byte) ([]byte, error) {
	var err error
	if dst, err = appendTimeParam(dst, ";created=", p.Created); err != nil {
		return dst, err
	}
	if p.KeyID != "" {
		if dst, err = sf.AppendString(append(dst, ";keyid="...), p.KeyID); err != nil {
			return dst, err
		}
	}
	if p.Alg != "" {
		if dst, err = sf.AppendString(append(dst, ";alg="...), string(p.Alg)); err != nil {
			return dst, err
		}
	}
	switch {
	case p.Nonce == "" && p.nonceText != nil:
		// base64url text: nothing to escape.
		dst = append(append(append(dst, `;nonce="`...), p.nonceText...), '"')
	case p.Nonce != "":
		if dst, err = sf.AppendString(append(dst, ";nonce="...), p.Nonce); err != nil {
			return dst, err
		}
	}
	if dst, err = appendTimeParam(dst, ";expires=", p.Expires); err != nil {
		return dst, err
	}
	if p.Tag != "" {
		return sf.AppendString(append(dst, ";tag="...), p.Tag)
	}
	return dst, nil
}

// appendParam appends the parameter a letter of Params.order stands for,
// unless it was written already or is absent; extra counts the unknown
// parameters written so far.
func (p *Params) appendParam(dst []byte, letter byte, done *[len(spDefault)]bool, extra *int, received bool) ([]byte, error) {
	var err error
	if letter == spExtra {
		if *extra < len(p.extra) {
			dst, err = sf.AppendParams(dst, p.extra[*extra:*extra+1])
			*extra++
		}
	} else if i := indexByte(spDefault, letter); !done[i] {
		done[i] = true
		dst, err = p.appendKnown(dst, letter, received)
	}
	if err != nil {
		return dst, fmt.Errorf("signature parameters cannot be serialised: %w", err)
	}
	return dst, nil
}

// appendKnown appends the defined parameter letter stands for, if it is
// set or was received.
func (p *Params) appendKnown(dst []byte, letter byte, received bool) ([]byte, error) {
	switch letter {
	case spCreated:
		return appendTimeParam(dst, ";created=", p.Created)
	case spExpires:
		return appendTimeParam(dst, ";expires=", p.Expires)
	case spKeyID:
		return appendStringParam(dst, ";keyid=", p.KeyID, received)
	case spAlg:
		return appendStringParam(dst, ";alg=", string(p.Alg), received)
	case spNonce:
		if p.Nonce == "" && p.nonceText != nil {
			// base64url text: nothing to escape.
			return append(append(append(dst, `;nonce="`...), p.nonceText...), '"'), nil
		}
		return appendStringParam(dst, ";nonce=", p.Nonce, received)
	case spTag:
		return appendStringParam(dst, ";tag=", p.Tag, received)
	}
	return dst, nil
}

func appendTimeParam(dst []byte, prefix string, t time.Time) ([]byte, error) {
	if t.IsZero() {
		return dst, nil
	}
	dst = append(dst, prefix...)
	return sf.AppendBare(dst, sf.Bare{Kind: sf.Integer, Int: t.Unix()})
}

func appendStringParam(dst []byte, prefix, v string, always bool) ([]byte, error) {
	if v == "" && !always {
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
// Signature-Input member is ignored, as RFC 9421 §4.2 requires. It reads
// at most [MaxSignatures] signatures, as a [Verifier] does. It returns an
// error with reason missing-signature when there is no Signature-Input
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
