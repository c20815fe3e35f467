package httpsig

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// parsedSig is one signature read from a message. Its storage is reused
// from one message to the next.
type parsedSig struct {
	label  string
	params Params
	comps  []Component // storage for params.Components, unless cached
	value  []byte
	// raw is the Signature-Input member as received when that is its
	// canonical serialisation, which @signature-params then reuses.
	raw string
}

// sigSet holds the signatures of one message; the zero value is ready.
type sigSet struct {
	sp   sf.Parser
	sigs []parsedSig
	// The components of the last inner list read, by its text: a client
	// sends the same list with every request, so most messages skip
	// reading it again.
	lastList  string
	lastComps []Component
	dups      componentSet
	// singleValue holds the signature of the usual Signature field (one
	// member, written canonically), decoded as the field is read.
	singleValue []byte
}

// Bounds on the signature fields, checked as they are parsed so that an
// oversized field costs no more than its first few signatures: every
// check after parsing is then over a handful of items.
const (
	maxComponents = 64 // covered by one signature
	maxParams     = 16 // of one component or signature; 6 are defined
	// maxCachedList bounds the lists sigSet remembers: the default
	// profile has 6 components, and a long list is not worth a copy.
	maxCachedList = 16
)

var signatureLimits = sf.Limits{Members: MaxSignatures, InnerItems: maxComponents, Params: maxParams}

// fieldError refuses a Signature-Input or Signature field that does not
// parse.
func fieldError(name string, err error) *VerifyError {
	detail := name + " is not a valid Dictionary: " + err.Error()
	if errors.Is(err, sf.ErrLimit) {
		detail = fmt.Sprintf("%s holds more than this server reads: at most %d signatures, each covering at most %d components, with at most %d parameters per component or signature", name, MaxSignatures, maxComponents, maxParams)
	}
	return &VerifyError{Reason: ReasonMalformedSignature, Detail: detail, Err: err}
}

// joinField returns the value of a field, with several field lines
// combined as RFC 9110 §5.3 says.
func joinField(lines []string) string {
	if len(lines) == 1 {
		return lines[0]
	}
	return strings.Join(lines, ", ")
}

func (st *sigSet) parse(h http.Header) error {
	st.sp.Reset()
	st.sigs = st.sigs[:0]
	inputLines, sigLines := h["Signature-Input"], h["Signature"]
	if len(inputLines) == 0 {
		if len(sigLines) == 0 {
			return refuse(ReasonMissingSignature, "", "the request has no Signature-Input and Signature fields")
		}
		return refuse(ReasonMalformedSignature, "", "the request has a Signature field but no Signature-Input field")
	}
	if len(sigLines) == 0 {
		return refuse(ReasonMalformedSignature, "", "the request has a Signature-Input field but no Signature field")
	}
	if len(inputLines) == 1 && len(sigLines) == 1 && st.parseUsual(inputLines[0], sigLines[0]) {
		return nil
	}
	return st.parseFields(inputLines, sigLines)
}

// parseUsual reads the usual pair of fields: Signature-Input one signature
// over the remembered list, each of its parameters one of the six RFC 9421
// defines, given once, written as [sf.Parser.ParseKnownMember] accepts;
// Signature one canonical Byte Sequence under the same label. It reads
// them as parseFields would, straight into the signature, and returns
// false, reading nothing, for any other fields, which parseFields must
// then read.
func (st *sigSet) parseUsual(input, sig string) bool {
	k := st.lastList
	i := sf.KeyLen(input)
	if k == "" || k[0] != '(' || i == 0 || i+1+len(k) > len(input) || input[i] != '=' || input[i+1:i+1+len(k)] != k {
		return false
	}
	if cap(st.sigs) == 0 {
		st.sigs = make([]parsedSig, 0, 1)
	}
	s := &st.sigs[:1][0]
	p := &s.params
	p.Components, p.order, p.extra = st.lastComps, p.order[:0], p.extra[:0]
	p.Created, p.Expires = time.Time{}, time.Time{}
	p.KeyID, p.Alg, p.Nonce, p.Tag = "", "", "", ""
	var seen uint8
	for pos := i + 1 + len(k); pos < len(input); {
		// Each parameter is one of the six, written ;name= and a value
		// as sf.KnownParam reads it: what it would read, without
		// scanning the name.
		var letter byte
		var ok bool
		rest := input[pos:]
		switch {
		case strings.HasPrefix(rest, ";created="):
			var n int64
			n, pos, ok = sf.KnownInteger(input, pos+len(";created="))
			p.Created, letter = time.Unix(n, 0), spCreated
		case strings.HasPrefix(rest, ";keyid="):
			p.KeyID, pos, ok = sf.KnownString(input, pos+len(";keyid="))
			letter = spKeyID
		case strings.HasPrefix(rest, ";alg="):
			var alg string
			alg, pos, ok = sf.KnownString(input, pos+len(";alg="))
			p.Alg, letter, ok = Algorithm(alg), spAlg, ok && alg != ""
		case strings.HasPrefix(rest, ";nonce="):
			p.Nonce, pos, ok = sf.KnownString(input, pos+len(";nonce="))
			letter = spNonce
		case strings.HasPrefix(rest, ";expires="):
			var n int64
			n, pos, ok = sf.KnownInteger(input, pos+len(";expires="))
			p.Expires, letter = time.Unix(n, 0), spExpires
		case strings.HasPrefix(rest, ";tag="):
			p.Tag, pos, ok = sf.KnownString(input, pos+len(";tag="))
			letter = spTag
		}
		if !ok {
			return false
		}
		bit := uint8(1) << indexByte(spDefault, letter)
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		p.order = append(p.order, letter)
	}
	label := input[:i]
	var ok bool
	if s.value, ok = sf.DecodeSingleByteSeq(s.value[:0], sig, label); !ok {
		return false
	}
	s.label, s.raw = label, input[i+1:]
	st.sigs = st.sigs[:1]
	return true
}

// parseFields reads the Signature-Input and Signature fields, of which
// there are lines.
func (st *sigSet) parseFields(inputLines, sigLines []string) error {
	// Members marked Known are the list remembered now; the loop below may
	// remember another before it reaches them.
	known := st.lastComps
	st.sp.KnownList = st.lastList
	st.sp.Limits = signatureLimits
	var inputs []sf.Member
	var err error
	ok := false
	if len(inputLines) == 1 {
		// The usual field, one signature over the remembered list: what
		// ParseDictionary would read, without its general work.
		inputs, ok = st.sp.ParseKnownMember(inputLines[0])
	}
	if !ok {
		if inputs, err = st.sp.ParseDictionary(joinField(inputLines)); err != nil {
			return fieldError("Signature-Input", err)
		}
	}
	if st.sp.Duplicate {
		return refuse(ReasonMalformedSignature, "", "Signature-Input repeats a label or parameter")
	}
	canonical := !st.sp.NonCanonical && !st.sp.Duplicate
	var values []sf.Member
	single := false
	if len(inputs) == 1 && len(sigLines) == 1 {
		// The usual Signature field, one signature written canonically:
		// what ParseDictionary would read, decoded as it is read.
		st.singleValue, single = sf.DecodeSingleByteSeq(st.singleValue[:0], sigLines[0], inputs[0].Key)
	}
	if !single {
		if values, err = st.sp.ParseDictionary(joinField(sigLines)); err != nil {
			return fieldError("Signature", err)
		}
		if st.sp.Duplicate {
			return refuse(ReasonMalformedSignature, "", "Signature repeats a label or parameter")
		}
	}
	remembered := false
	// Both fields hold at most MaxSignatures members: pairing them costs
	// no more than parsing them.
	for _, in := range inputs {
		if len(st.sigs) < cap(st.sigs) {
			// Reuse the storage of an earlier message's signature.
			st.sigs = st.sigs[:len(st.sigs)+1]
		} else {
			st.sigs = append(st.sigs, parsedSig{})
		}
		s := &st.sigs[len(st.sigs)-1]
		s.label = in.Key
		s.raw = ""
		if canonical {
			s.raw = in.Raw
		}
		if err := st.readParams(in, s, canonical && !remembered, known); err != nil {
			reason := ReasonMalformedSignature
			if err == errEmptyAlg {
				reason = ReasonAlgorithmMismatch
			}
			return &VerifyError{Reason: reason, Label: in.Key, Detail: "Signature-Input: " + err.Error(), Err: err}
		}
		remembered = remembered || st.lastList == in.ListRaw
		if single {
			s.value, st.singleValue = st.singleValue, s.value
			continue
		}
		var val *sf.Member
		for j := range values {
			if values[j].Key == in.Key {
				val = &values[j]
				break
			}
		}
		switch {
		case val == nil:
			return s.blame(refuse(ReasonMalformedSignature, "", "Signature has no member for this label"))
		case val.Inner || val.Item.Value.Kind != sf.ByteSeq:
			return s.blame(refuse(ReasonMalformedSignature, "", "the Signature member is not a Byte Sequence"))
		}
		if s.value, err = sf.DecodeByteSeq(s.value[:0], val.Item.Value.Str); err != nil {
			return s.blame(refuse(ReasonMalformedSignature, "", "the signature is not valid base64"))
		}
	}
	return nil
}

// readParams reads the parameters of a Signature-Input member into s,
// reusing the components of the last identical list, and remembers the
// list if remember is set.
func (st *sigSet) readParams(in sf.Member, s *parsedSig, remember bool, known []Component) error {
	if !in.Inner {
		return errors.New("a signature input must be an inner list")
	}
	if in.Known {
		return paramsFromList(in.Params, known, &s.params)
	}
	var err error
	if s.comps, err = componentsFromItems(in.Items, s.comps[:0], &st.dups); err != nil {
		return err
	}
	if err := paramsFromList(in.Params, s.comps, &s.params); err != nil {
		return err
	}
	// Only a list read without anything odd in the field is remembered,
	// so that skipping its text skips nothing the parser would have
	// flagged. The cache gets a new copy, never one overwritten in place:
	// other signatures of this message may be using the last one.
	if remember && len(s.comps) <= maxCachedList {
		st.lastList, st.lastComps = in.ListRaw, slices.Clone(s.comps)
	}
	return nil
}
