package httpsig

import (
	"errors"
	"fmt"
	"strings"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// The derived components of RFC 9421 §2.2.
const (
	Method        = "@method"
	TargetURI     = "@target-uri"
	Authority     = "@authority"
	Scheme        = "@scheme"
	RequestTarget = "@request-target"
	Path          = "@path"
	Query         = "@query"
	QueryParam    = "@query-param"
	Status        = "@status"
	// SignatureParams names the last line of every signature base; it is
	// never a covered component.
	SignatureParams = "@signature-params"
)

// Component identifies a message component (RFC 9421 §2): a derived
// component such as @method, or an HTTP field by its lower-case name, with
// the parameters that say how to take its value.
//
// Parameters keep the order they were parsed in, because the signature base
// repeats them verbatim; set by hand, they serialise in the order req, tr,
// name, key, sf, bs.
type Component struct {
	Name string
	// Key selects one member of a Dictionary field (the key parameter).
	Key string
	// Param is the encoded name of the query parameter of @query-param
	// (the name parameter).
	Param string
	// SF asks for the strict re-serialisation of a structured field.
	SF bool
	// BS wraps each field line in a Byte Sequence.
	BS bool
	// Req takes the value from the request a response answers.
	Req bool
	// Tr takes the field from the trailers instead of the header.
	Tr bool

	// order holds the parameter keys as parsed, one letter each, then
	// zeros.
	order [len(pOrder)]byte
	// checked is Name once validated, so that serialising a parsed
	// component skips checking the name again (and notices a change).
	checked string
	// usual is set, for a component without parameters, to which of the
	// default profile's it is (usualMethod…), so that the base line is
	// written without serialising the identifier or dispatching on its
	// name; it holds only while Name is checked and nothing else is set.
	usual uint8
}

// Values of Component.usual, and the start of their base lines.
const (
	usualNone uint8 = iota
	usualMethod
	usualAuthority
	usualPath
	usualQuery
	usualContentType
	usualContentDigest
)

var usualLines = [...]string{
	usualMethod:        `"@method": `,
	usualAuthority:     `"@authority": `,
	usualPath:          `"@path": `,
	usualQuery:         `"@query": `,
	usualContentType:   `"content-type": `,
	usualContentDigest: `"content-digest": `,
}

// usualOf returns the value of Component.usual for a component named
// name without parameters.
func usualOf(name string) uint8 {
	switch name {
	case Method:
		return usualMethod
	case Authority:
		return usualAuthority
	case Path:
		return usualPath
	case Query:
		return usualQuery
	case "content-type":
		return usualContentType
	case "content-digest":
		return usualContentDigest
	}
	return usualNone
}

// isUsual reports whether c.usual holds: c was made with it and has not
// been changed since.
func (c *Component) isUsual() bool {
	return c.usual != usualNone && c.checked == c.Name && c.order[0] == 0 && c.plain()
}

// Component parameter letters used in Component.order.
const (
	pKey   = 'k'
	pName  = 'n'
	pSF    = 's'
	pBS    = 'b'
	pReq   = 'r'
	pTr    = 't'
	pOrder = "rtnksb" // default order
)

// ParseComponent parses a component identifier as it appears in a
// Signature-Input field, such as "content-type" or
// `"@query-param";name="id"`. A bare name without quotes is accepted too.
func ParseComponent(s string) (Component, error) {
	if !strings.HasPrefix(s, `"`) {
		name, params, found := strings.Cut(s, ";")
		s = `"` + name + `"`
		if found {
			s += ";" + params
		}
	}
	var p sf.Parser
	it, err := p.ParseItem(s)
	if err != nil {
		return Component{}, fmt.Errorf("httpsig: component %s: %w", s, err)
	}
	if p.Duplicate {
		return Component{}, fmt.Errorf("httpsig: component %s repeats a parameter", s)
	}
	c, err := componentFromItem(it)
	if err != nil {
		return Component{}, fmt.Errorf("httpsig: %w", err)
	}
	return c, nil
}

// ParseComponents parses a space- or comma-separated list of component
// identifiers, such as `@method @path "content-type"`.
func ParseComponents(s string) ([]Component, error) {
	var out []Component
	for _, f := range splitOutsideQuotes(s) {
		c, err := ParseComponent(f)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	var set componentSet
	if err := set.checkDuplicates(out); err != nil {
		return nil, fmt.Errorf("httpsig: %w", err)
	}
	return out, nil
}

// splitOutsideQuotes splits s at spaces, tabs and commas that are not
// inside a quoted string.
func splitOutsideQuotes(s string) []string {
	var out []string
	start, quoted := -1, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ' ' || c == ',' || c == '\t'):
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

var errComponentItem = errors.New("a component identifier must be a String")

func componentFromItem(it sf.Item) (Component, error) {
	if it.Value.Kind != sf.String {
		return Component{}, errComponentItem
	}
	c := Component{Name: it.Value.Str}
	if len(it.Params) > len(pOrder) {
		return Component{}, fmt.Errorf("component %q has too many parameters", c.Name)
	}
	for i, prm := range it.Params {
		v := prm.Value
		switch prm.Key {
		case "key", "name":
			if v.Kind != sf.String {
				return Component{}, fmt.Errorf("component %q: parameter %s must be a String", c.Name, prm.Key)
			}
			if prm.Key == "key" {
				c.Key, c.order[i] = v.Str, pKey
			} else {
				c.Param, c.order[i] = v.Str, pName
			}
			continue
		}
		if !v.True() {
			return Component{}, fmt.Errorf("component %q: parameter %s must be the Boolean true", c.Name, prm.Key)
		}
		switch prm.Key {
		case "sf":
			c.SF, c.order[i] = true, pSF
		case "bs":
			c.BS, c.order[i] = true, pBS
		case "req":
			c.Req, c.order[i] = true, pReq
		case "tr":
			c.Tr, c.order[i] = true, pTr
		default:
			return Component{}, fmt.Errorf("component %q: unknown parameter %q", c.Name, prm.Key)
		}
	}
	if err := c.validate(); err != nil {
		return Component{}, err
	}
	c.checked = c.Name
	if c.order[0] == 0 {
		c.usual = usualOf(c.Name)
	}
	return c, nil
}

// fieldNameChars marks the bytes of a lower-case field name: tchar of
// RFC 9110 §5.6.2 without upper-case letters.
var fieldNameChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validate checks the name and that the parameters apply to it and to each
// other (RFC 9421 §2.5: unknown or incompatible parameters are errors).
func (c Component) validate() error {
	if c.Name == "" {
		return errors.New("empty component name")
	}
	if c.Name[0] == '@' {
		switch c.Name {
		case Method, TargetURI, Authority, Scheme, RequestTarget, Path, Query, Status:
			if c.Param != "" {
				return fmt.Errorf("component %q takes no name parameter", c.Name)
			}
		case QueryParam:
			if c.Param == "" {
				return errors.New(`component "@query-param" needs a name parameter`)
			}
		case SignatureParams:
			return errors.New(`"@signature-params" cannot be a covered component`)
		default:
			return fmt.Errorf("unknown derived component %q", c.Name)
		}
		if c.Key != "" || c.SF || c.BS || c.Tr {
			return fmt.Errorf("component %q takes only the req parameter", c.Name)
		}
		if c.Name == Status && c.Req {
			return errors.New(`"@status";req names nothing: a request has no status`)
		}
		return nil
	}
	for i := 0; i < len(c.Name); i++ {
		if !fieldNameChars[c.Name[i]] {
			return fmt.Errorf("component %q is not a lower-case field name", c.Name)
		}
	}
	if c.Param != "" {
		return fmt.Errorf("field component %q takes no name parameter", c.Name)
	}
	if c.BS && (c.SF || c.Key != "") {
		return fmt.Errorf("component %q: bs cannot be combined with sf or key", c.Name)
	}
	return nil
}

// equal reports whether two identifiers name the same component; the order
// of parameters does not matter (RFC 9421 §2).
func (c *Component) equal(d *Component) bool {
	return c.Name == d.Name && c.Key == d.Key && c.Param == d.Param &&
		c.SF == d.SF && c.BS == d.BS && c.Req == d.Req && c.Tr == d.Tr
}

// componentSet finds a component covered twice in time linear in the
// number of components: a short list is compared pairwise, a longer one
// through a map kept from one list to the next. The zero value is ready.
type componentSet struct {
	seen map[componentID]struct{}
}

// componentID holds what tells components apart, as equal compares them.
type componentID struct {
	name, key, param   string
	sf, bs, req, trail bool
}

// pairwiseComponents is the longest list compared pairwise: 120 pairs.
const pairwiseComponents = 16

func (set *componentSet) checkDuplicates(cs []Component) error {
	dup := -1
	if len(cs) <= pairwiseComponents {
	pairs:
		for i := range cs {
			for j := i + 1; j < len(cs); j++ {
				if cs[i].equal(&cs[j]) {
					dup = i
					break pairs
				}
			}
		}
	} else {
		if set.seen == nil {
			set.seen = make(map[componentID]struct{}, len(cs))
		}
		clear(set.seen)
		for i := range cs {
			c := &cs[i]
			id := componentID{c.Name, c.Key, c.Param, c.SF, c.BS, c.Req, c.Tr}
			if _, ok := set.seen[id]; ok {
				dup = i
				break
			}
			set.seen[id] = struct{}{}
		}
	}
	if dup >= 0 {
		return fmt.Errorf("component %s is covered twice", cs[dup].String())
	}
	return nil
}

// String returns the serialised component identifier, as in a signature
// base line or a Signature-Input field.
func (c Component) String() string {
	return string(c.appendTo(nil))
}

// appendTo appends the serialised identifier. Names and string parameters
// were validated or parsed as sf Strings, so serialising cannot fail, except
// for a hand-built Component with unprintable bytes, which are dropped by
// the error path of AppendString.
func (c *Component) appendTo(dst []byte) []byte {
	if c.order[0] == 0 && c.plain() && (c.checked == c.Name || isPlainName(c.Name)) {
		dst = append(dst, '"')
		dst = append(dst, c.Name...)
		return append(dst, '"')
	}
	dst, _ = sf.AppendString(dst, c.Name)
	var done [len(pOrder)]bool
	emit := func(p byte) {
		i := strings.IndexByte(pOrder, p)
		if done[i] {
			return
		}
		done[i] = true
		switch p {
		case pKey:
			if c.Key != "" {
				dst = append(dst, ";key="...)
				dst, _ = sf.AppendString(dst, c.Key)
			}
		case pName:
			if c.Param != "" {
				dst = append(dst, ";name="...)
				dst, _ = sf.AppendString(dst, c.Param)
			}
		case pSF:
			if c.SF {
				dst = append(dst, ";sf"...)
			}
		case pBS:
			if c.BS {
				dst = append(dst, ";bs"...)
			}
		case pReq:
			if c.Req {
				dst = append(dst, ";req"...)
			}
		case pTr:
			if c.Tr {
				dst = append(dst, ";tr"...)
			}
		}
	}
	for _, p := range c.order {
		if p == 0 {
			break
		}
		emit(p)
	}
	for i := 0; i < len(pOrder); i++ {
		emit(pOrder[i])
	}
	return dst
}

// plain reports whether c has no parameters.
func (c *Component) plain() bool {
	return c.Key == "" && c.Param == "" && !c.SF && !c.BS && !c.Req && !c.Tr
}

// isPlainName reports whether name serialises as a String without escapes,
// as every valid component name does.
func isPlainName(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c != '@' && !fieldNameChars[c] {
			return false
		}
	}
	return true
}
