package httpsig

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// AcceptSignature is one member of an Accept-Signature field (RFC 9421
// §5.1): a signature the sender asks for, by label, with the components it
// must cover and, optionally, the key, algorithm or tag to use.
type AcceptSignature struct {
	Label      string
	Components []Component
	KeyID      string
	Alg        Algorithm
	Nonce      string
	Tag        string
}

// AcceptSignatureField serialises requests for signatures as the value of
// an Accept-Signature field.
func AcceptSignatureField(reqs ...AcceptSignature) (string, error) {
	var dst []byte
	for i, a := range reqs {
		if !sf.IsKey(a.Label) {
			return "", fmt.Errorf("httpsig: %q is not a valid signature label", a.Label)
		}
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(append(dst, a.Label...), '=')
		p := Params{Components: a.Components, KeyID: a.KeyID, Alg: a.Alg, Nonce: a.Nonce, Tag: a.Tag}
		var err error
		if dst, err = p.appendTo(dst); err != nil {
			return "", fmt.Errorf("httpsig: Accept-Signature %s: %w", a.Label, err)
		}
	}
	return string(dst), nil
}

// AcceptSignatureFor returns the Accept-Signature field value that tells a
// client what the policy demands of a signature on r: the label "sig1"
// with the required components and the tag, if the policy sets one.
func (p *Policy) AcceptSignatureFor(r *http.Request, hasContent bool) string {
	label := DefaultLabel
	if len(p.Labels) > 0 {
		label = p.Labels[0]
	}
	v, err := AcceptSignatureField(AcceptSignature{Label: label, Components: p.requiredFor(r, hasContent), Tag: p.Tag})
	if err != nil {
		return ""
	}
	return v
}

// ParseAcceptSignature parses an Accept-Signature field value. As RFC 9421
// §5.1 requires, the created parameter, which only the signer can choose,
// may not be requested; a nonce may, so that a response answers a
// challenge.
func ParseAcceptSignature(field string) ([]AcceptSignature, error) {
	var sp sf.Parser
	members, err := sp.ParseDictionary(field)
	if err != nil {
		return nil, fmt.Errorf("httpsig: Accept-Signature: %w", err)
	}
	if sp.Duplicate {
		return nil, errors.New("httpsig: Accept-Signature repeats a label or parameter")
	}
	out := make([]AcceptSignature, 0, len(members))
	var dups componentSet
	for _, m := range members {
		for _, prm := range m.Params {
			if prm.Key == "created" {
				return nil, fmt.Errorf("httpsig: Accept-Signature %s asks for %s, which only the signer can choose", m.Key, prm.Key)
			}
		}
		var p Params
		if err := paramsFromMember(m, nil, &p, &dups); err != nil {
			return nil, fmt.Errorf("httpsig: Accept-Signature %s: %w", m.Key, err)
		}
		out = append(out, AcceptSignature{Label: m.Key, Components: p.Components, KeyID: p.KeyID, Alg: p.Alg, Nonce: p.Nonce, Tag: p.Tag})
	}
	return out, nil
}
