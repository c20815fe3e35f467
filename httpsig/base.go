package httpsig

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/signet-dev/signet/httpsig/internal/sf"
)

// Message is the HTTP message a signature covers: a request, or a response
// together with the request it answers (for components with the req
// parameter).
type Message struct {
	Request  *http.Request
	Response *http.Response // nil when the message is the request
	// Scheme overrides the scheme derived from the request ("https" when it
	// came over TLS or its URL says so, else "http"). Set it behind a
	// TLS-terminating proxy.
	Scheme string
	// Structured adds to the structured-field types this package knows
	// (the fields registered with a structured type, such as
	// Content-Digest); the sf parameter needs the type of its field.
	// Keys are lower-case field names.
	Structured map[string]FieldType

	target    target // of Request, once split
	hasTarget bool
	// contentType and contentDigest, when ctKnown and cdKnown are set,
	// are the lines of Request.Header under the canonical keys
	// Content-Type and Content-Digest (nil when absent), looked up
	// already by whoever made m, which must not change them after.
	contentType, contentDigest []string
	ctKnown, cdKnown           bool
	// newDigest, when set, is the Content-Digest field value of Request
	// while SignRequest signs it, before it is set in the header.
	newDigest []byte
}

// fresh returns a copy of m without the parts derived from its request,
// so that they are derived again from what the request holds now, and m,
// which the caller may share, is left alone.
func (m *Message) fresh() *Message {
	return &Message{Request: m.Request, Response: m.Response, Scheme: m.Scheme, Structured: m.Structured}
}

// FieldType is the top-level type of a structured field (RFC 8941 §3).
type FieldType uint8

// Structured field types.
const (
	FieldItem FieldType = iota + 1
	FieldList
	FieldDictionary
)

// knownStructured lists fields registered with a structured type in the
// IANA HTTP Field Name Registry.
var knownStructured = map[string]FieldType{
	"accept-ch":                    FieldList,
	"accept-signature":             FieldDictionary,
	"cache-groups":                 FieldList,
	"cache-status":                 FieldList,
	"capsule-protocol":             FieldItem,
	"cdn-cache-control":            FieldDictionary,
	"client-cert":                  FieldItem,
	"client-cert-chain":            FieldList,
	"content-digest":               FieldDictionary,
	"cross-origin-embedder-policy": FieldItem,
	"cross-origin-opener-policy":   FieldItem,
	"origin-agent-cluster":         FieldItem,
	"priority":                     FieldDictionary,
	"proxy-status":                 FieldList,
	"repr-digest":                  FieldDictionary,
	"reporting-endpoints":          FieldDictionary,
	"signature":                    FieldDictionary,
	"signature-input":              FieldDictionary,
	"want-content-digest":          FieldDictionary,
	"want-repr-digest":             FieldDictionary,
}

// componentError says why a covered component has no value. absent is set
// when the message lacks what the component names (a field, a query
// parameter, a dictionary member), as opposed to an identifier that cannot
// apply to this message at all.
type componentError struct {
	comp   string
	msg    string
	absent bool
	err    error // the cause, if any
}

func (e *componentError) Error() string {
	switch {
	case e.err == nil:
		return "component " + e.comp + ": " + e.msg
	case e.msg == "":
		return "component " + e.comp + ": " + e.err.Error()
	}
	return "component " + e.comp + ": " + e.msg + ": " + e.err.Error()
}

func (e *componentError) Unwrap() error { return e.err }

func compErr(c *Component, absent bool, format string, args ...any) error {
	return &componentError{comp: c.String(), msg: fmt.Sprintf(format, args...), absent: absent}
}

// SignatureBase returns the signature base of m for p (RFC 9421 §2.5). It
// does not modify m.
func SignatureBase(m *Message, p *Params) ([]byte, error) {
	var fields structuredFields
	base, err := appendBase(nil, m.fresh(), p, "", &fields)
	if err != nil {
		return nil, fmt.Errorf("httpsig: %w", err)
	}
	return base, nil
}

// appendBase appends the signature base to dst; fields is scratch for
// structured fields. raw, if not empty, is the canonical serialisation of
// p as received, which saves serialising it again.
func appendBase(dst []byte, m *Message, p *Params, raw string, fields *structuredFields) ([]byte, error) {
	dst, _, err := appendBaseAt(dst, m, p, raw, fields)
	return dst, err
}

// appendBaseAt is appendBase that also returns where the serialised
// parameters start in dst.
func appendBaseAt(dst []byte, m *Message, p *Params, raw string, fields *structuredFields) ([]byte, int, error) {
	dst, err := appendBaseLines(dst, m, p, fields)
	if err != nil {
		return dst, 0, err
	}
	at := len(dst)
	if raw != "" {
		return append(dst, raw...), at, nil
	}
	dst, err = p.appendTo(dst)
	return dst, at, err
}

// appendBaseLines appends the signature base up to the serialised
// parameters: the line of each component, then the name of the last line.
func appendBaseLines(dst []byte, m *Message, p *Params, fields *structuredFields) ([]byte, error) {
	fields.reset()
	start, lines := len(dst), 0
	for i := range p.Components {
		var n int
		var err error
		if dst, n, err = appendComponent(dst, m, &p.Components[i], fields); err != nil {
			return dst, err
		}
		lines += n
	}
	// A line break inside a value would let it pose as another line of the
	// base. Counting them all at once is cheaper than checking each value.
	if bytes.Count(dst[start:], newline) != lines || bytes.IndexByte(dst[start:], '\r') >= 0 {
		for i := range p.Components {
			v, n, _ := appendComponent(nil, m, &p.Components[i], fields)
			if bytes.Count(v, newline) != n || bytes.IndexByte(v, '\r') >= 0 {
				return dst, compErr(&p.Components[i], false, "value contains a line break")
			}
		}
	}
	return append(dst, `"@signature-params": `...), nil
}

var newline = []byte{'\n'}

// appendComponent appends the base lines for c and says how many: one,
// except for @query-param, which gives one per occurrence of its parameter.
// Values are not checked for line breaks; appendBase does that.
func appendComponent(dst []byte, m *Message, c *Component, fields *structuredFields) ([]byte, int, error) {
	if c.Name == QueryParam {
		r, err := requestFor(m, c)
		if err != nil {
			return dst, 0, err
		}
		return appendQueryParam(dst, r, c)
	}
	var err error
	if m.Response == nil && m.Request != nil && c.isUsual() {
		if dst, err = appendUsual(dst, m, c); err != nil {
			return dst, 0, err
		}
		return append(dst, '\n'), 1, nil
	}
	dst = c.appendTo(dst)
	dst = append(dst, ':', ' ')
	if c.Name[0] == '@' {
		dst, err = appendDerived(dst, m, c)
	} else {
		dst, err = appendField(dst, m, c, fields)
	}
	if err != nil {
		return dst, 0, err
	}
	return append(dst, '\n'), 1, nil
}

// appendUsual appends the base line, without its line break, of a
// component of the default profile (c.isUsual) of a request: what
// appendTo, appendDerived and appendField give, without their dispatch.
func appendUsual(dst []byte, m *Message, c *Component) ([]byte, error) {
	r := m.Request
	dst = append(dst, usualLines[c.usual]...)
	switch c.usual {
	case usualMethod:
		if r.Method == "" {
			return append(dst, http.MethodGet...), nil
		}
		return append(dst, r.Method...), nil
	case usualAuthority:
		return appendAuthority(dst, c, r, m.scheme(r))
	case usualPath:
		t := m.targetOf(r)
		if !t.hasPath {
			return dst, compErr(c, false, "request target %q has no path", t.target)
		}
		return append(dst, t.path...), nil
	case usualQuery:
		dst = append(dst, '?')
		return append(dst, m.targetOf(r).query...), nil
	}
	if c.usual == usualContentDigest && m.newDigest != nil {
		return append(dst, m.newDigest...), nil
	}
	var lines []string
	switch {
	case c.usual == usualContentType && m.ctKnown:
		lines = m.contentType
	case c.usual == usualContentType:
		lines = r.Header["Content-Type"]
	case m.cdKnown:
		lines = m.contentDigest
	default:
		lines = r.Header["Content-Digest"]
	}
	if lines == nil {
		// Not under its canonical key: appendField searches the rest.
		return appendField(dst, m, c, nil)
	}
	for i, l := range lines {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendFieldLine(dst, l)
	}
	return dst, nil
}

func requestFor(m *Message, c *Component) (*http.Request, error) {
	if c.Req && m.Response == nil {
		return nil, compErr(c, false, "the req parameter applies only to responses")
	}
	if m.Response != nil && !c.Req && c.Name != Status {
		if c.Name[0] == '@' {
			return nil, compErr(c, false, "a response has no %s; use the req parameter", c.Name)
		}
	}
	if m.Request == nil {
		return nil, compErr(c, true, "no request to take it from")
	}
	return m.Request, nil
}

func appendDerived(dst []byte, m *Message, c *Component) ([]byte, error) {
	if c.Name == Status {
		if m.Response == nil {
			return dst, compErr(c, false, "a request has no status")
		}
		code := m.Response.StatusCode
		if code < 100 || code > 999 {
			return dst, compErr(c, false, "status %d is not three digits", code)
		}
		return strconv.AppendInt(dst, int64(code), 10), nil
	}
	r, err := requestFor(m, c)
	if err != nil {
		return dst, err
	}
	switch c.Name {
	case Method:
		if r.Method == "" {
			return append(dst, http.MethodGet...), nil
		}
		return append(dst, r.Method...), nil
	case Scheme:
		return append(dst, m.scheme(r)...), nil
	case Authority:
		return appendAuthority(dst, c, r, m.scheme(r))
	}
	t := m.targetOf(r)
	switch c.Name {
	case RequestTarget:
		if t.target == "" && r.RequestURI == "" && r.URL != nil {
			return append(dst, r.URL.RequestURI()...), nil
		}
		return append(dst, t.target...), nil
	case Path:
		if !t.hasPath {
			return dst, compErr(c, false, "request target %q has no path", t.target)
		}
		return append(dst, t.path...), nil
	case Query:
		dst = append(dst, '?')
		return append(dst, t.query...), nil
	case TargetURI:
		if !t.hasPath {
			return dst, compErr(c, false, "request target %q has no path", t.target)
		}
		scheme := m.scheme(r)
		dst = append(dst, scheme...)
		dst = append(dst, "://"...)
		if dst, err = appendAuthority(dst, c, r, scheme); err != nil {
			return dst, err
		}
		dst = append(dst, t.path...)
		if t.hasQuery {
			dst = append(dst, '?')
			dst = append(dst, t.query...)
		}
		return dst, nil
	}
	return dst, compErr(c, false, "unknown derived component")
}

// scheme returns the lower-case scheme of the request.
func (m *Message) scheme(r *http.Request) string {
	switch {
	case m.Scheme != "":
		return lower(m.Scheme)
	case r.URL != nil && r.URL.Scheme != "":
		return lower(r.URL.Scheme)
	case r.TLS != nil:
		return "https"
	}
	return "http"
}

// lower lower-cases a scheme without allocating for the usual ones.
func lower(s string) string {
	switch s {
	case "https", "http":
		return s
	}
	return strings.ToLower(s)
}

// appendAuthority appends the host of the request, normalised as
// RFC 9110 §4.2.3 says (RFC 9421 §2.2.3): lower case, no default port, no
// empty port; the port is written as a number, without leading zeros, and
// an IPv6 zone, which net/http never sends, is dropped.
func appendAuthority(dst []byte, c *Component, r *http.Request, scheme string) ([]byte, error) {
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	if host == "" {
		return dst, compErr(c, true, "the request has no host")
	}
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		name, port = host[:i], host[i+1:]
	}
	if strings.HasPrefix(name, "[") {
		if z := strings.Index(name, "%25"); z >= 0 {
			name = name[:z] + "]"
		}
	}
	for len(port) > 1 && port[0] == '0' {
		port = port[1:]
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	start := len(dst)
	dst = append(dst, name...)
	for i := start; i < len(dst); i++ {
		switch b := dst[i]; {
		case b >= 0x80:
			return dst[:start], compErr(c, false, "the host %q is not ASCII; sign its punycode (A-label) form, which is what is sent", name)
		case 'A' <= b && b <= 'Z':
			dst[i] = b + 'a' - 'A'
		}
	}
	if port != "" {
		start = len(dst)
		dst = append(dst, ':')
		dst = append(dst, port...)
		for i := start; i < len(dst); i++ {
			if b := dst[i]; 'A' <= b && b <= 'Z' {
				dst[i] = b + 'a' - 'A'
			}
		}
	}
	return dst, nil
}

// targetOf returns the split request target of r, which is m.Request.
func (m *Message) targetOf(r *http.Request) *target {
	if !m.hasTarget {
		m.target, m.hasTarget = splitTarget(r), true
	}
	return &m.target
}

// target is a request target split into the parts components need.
type target struct {
	target, path, query string
	hasPath, hasQuery   bool
}

// splitTarget returns the request target as it is on the wire: for a
// received request the RequestURI exactly as sent; for an outgoing request
// what net/http will write in the request line.
func splitTarget(r *http.Request) target {
	rt := r.RequestURI
	if rt == "" && r.URL != nil {
		if r.Method == http.MethodConnect {
			return target{target: r.URL.Host}
		}
		if u := r.URL; u.Opaque == "" && u.Path != "*" {
			// What url.URL.RequestURI writes, without building it: the
			// request target itself is made only if a component asks.
			t := target{path: u.EscapedPath(), query: u.RawQuery, hasQuery: u.ForceQuery || u.RawQuery != "", hasPath: true}
			if t.path == "" {
				t.path = "/"
			}
			return t
		}
		rt = r.URL.RequestURI()
	}
	t := target{target: rt}
	if rt == "*" || (r.Method == http.MethodConnect && !strings.HasPrefix(rt, "/")) {
		return t
	}
	pq := rt
	if !strings.HasPrefix(rt, "/") {
		// absolute-form: skip scheme "://" authority
		if i := strings.Index(rt, "://"); i >= 0 {
			pq = rt[i+3:]
			if j := strings.IndexAny(pq, "/?#"); j >= 0 {
				pq = pq[j:]
			} else {
				pq = ""
			}
		}
	}
	if i := strings.IndexByte(pq, '#'); i >= 0 {
		pq = pq[:i]
	}
	t.path, t.query, t.hasQuery = strings.Cut(pq, "?")
	if t.path == "" {
		t.path = "/"
	}
	t.hasPath = true
	return t
}

// appendQueryParam appends a base line for each occurrence of the query
// parameter c names, in order (RFC 9421 §2.2.8). Names and values are
// parsed as application/x-www-form-urlencoded and re-encoded, so c.Param
// holds the encoded name.
func appendQueryParam(dst []byte, r *http.Request, c *Component) ([]byte, int, error) {
	query := splitTarget(r).query
	lines := 0
	var name []byte
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" {
			continue
		}
		n, v, _ := strings.Cut(pair, "=")
		name = appendFormEncoded(name[:0], n)
		if string(name) != c.Param {
			continue
		}
		lines++
		dst = c.appendTo(dst)
		dst = append(dst, ':', ' ')
		dst = appendFormEncoded(dst, v)
		dst = append(dst, '\n')
	}
	if lines == 0 {
		return dst, 0, compErr(c, true, "the query has no parameter %q", c.Param)
	}
	return dst, lines, nil
}

// appendFormEncoded decodes s as the WHATWG application/x-www-form-urlencoded
// parser does ('+' is a space, %XX a byte, the result UTF-8 with invalid
// sequences replaced) and appends it percent-encoded with the
// application/x-www-form-urlencoded percent-encode set, space as %20.
func appendFormEncoded(dst []byte, s string) []byte {
	var raw [256]byte
	decoded := raw[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		}
		decoded = append(decoded, c)
	}
	for len(decoded) > 0 {
		r, size := decodeRuneWHATWG(decoded)
		decoded = decoded[size:]
		var enc [utf8.UTFMax]byte
		n := utf8.EncodeRune(enc[:], r)
		for _, b := range enc[:n] {
			if isFormSafe(b) {
				dst = append(dst, b)
			} else {
				dst = append(dst, '%', upperHex[b>>4], upperHex[b&15])
			}
		}
	}
	return dst
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// isFormSafe reports whether b is left as is by the
// application/x-www-form-urlencoded percent-encode set.
func isFormSafe(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '*' || b == '-' || b == '.' || b == '_'
}

// decodeRuneWHATWG decodes one code point as the WHATWG UTF-8 decoder does:
// an invalid sequence gives one U+FFFD for its maximal valid prefix (at
// least one byte), which differs from unicode/utf8 for truncated sequences.
func decodeRuneWHATWG(b []byte) (rune, int) {
	r, size := utf8.DecodeRune(b)
	if r != utf8.RuneError || size != 1 {
		return r, size
	}
	lead := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		need = 1
	case lead >= 0xE0 && lead <= 0xEF:
		need = 2
		if lead == 0xE0 {
			lo = 0xA0
		} else if lead == 0xED {
			hi = 0x9F
		}
	case lead >= 0xF0 && lead <= 0xF4:
		need = 3
		if lead == 0xF0 {
			lo = 0x90
		} else if lead == 0xF4 {
			hi = 0x8F
		}
	default:
		return utf8.RuneError, 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		if b[i] < lo || b[i] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return utf8.RuneError, i
}

// appendField appends the value of the HTTP field c names (RFC 9421 §2.1).
func appendField(dst []byte, m *Message, c *Component, fields *structuredFields) ([]byte, error) {
	var h http.Header
	switch {
	case c.Req && m.Response == nil:
		return dst, compErr(c, false, "the req parameter applies only to responses")
	case c.Req || m.Response == nil:
		if m.Request == nil {
			return dst, compErr(c, true, "no request to take it from")
		}
		h = m.Request.Header
		if c.Tr {
			h = m.Request.Trailer
		}
	default:
		h = m.Response.Header
		if c.Tr {
			h = m.Response.Trailer
		}
	}
	lines, err := fieldLines(h, c.Name)
	if err != nil {
		return dst, &componentError{comp: c.String(), err: err}
	}
	if lines == nil {
		where := "header"
		if c.Tr {
			where = "trailer"
		}
		return dst, compErr(c, true, "the message has no such %s field", where)
	}
	switch {
	case c.BS:
		for i, l := range lines {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = sf.AppendBareByteSeq(dst, appendFieldLine(nil, l))
		}
		return dst, nil
	case c.Key != "" || c.SF:
		return appendStructured(dst, m, c, lines, fields)
	}
	for i, l := range lines {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendFieldLine(dst, l)
	}
	return dst, nil
}

// fieldLines returns the field lines of name in h, nil when there are none.
// Keys of h are looked up in canonical form, then case-insensitively for
// headers built by hand.
func fieldLines(h http.Header, name string) ([]string, error) {
	if h == nil {
		return nil, nil
	}
	switch name {
	// The fields of the default profile, whose canonical keys are known.
	case "content-type":
		if v, ok := h["Content-Type"]; ok {
			return v, nil
		}
	case "content-digest":
		if v, ok := h["Content-Digest"]; ok {
			return v, nil
		}
	default:
		var buf [64]byte
		var key []byte
		if len(name) <= len(buf) {
			key = buf[:len(name)]
		} else {
			key = make([]byte, len(name))
		}
		upper := true
		for i := 0; i < len(name); i++ {
			c := name[i]
			if upper && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			key[i] = c
			upper = c == '-'
		}
		if v, ok := h[string(key)]; ok {
			return v, nil
		}
	}
	var found []string
	matches := 0
	for k, v := range h {
		if strings.EqualFold(k, name) {
			found = v
			matches++
		}
	}
	if matches > 1 {
		return nil, errors.New("the field is set under several spellings of its name")
	}
	return found, nil
}

// appendFieldLine appends one field line with surrounding whitespace
// trimmed and obsolete line folding replaced by a single space.
func appendFieldLine(dst []byte, v string) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	if strings.IndexByte(v, '\n') < 0 {
		return append(dst, v...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\r' && c != '\n' {
			dst = append(dst, c)
			continue
		}
		j := i
		if c == '\r' && j+1 < len(v) && v[j+1] == '\n' {
			j++
		}
		if j+1 < len(v) && (v[j+1] == ' ' || v[j+1] == '\t') {
			// obs-fold = OWS CRLF RWS: drop the whitespace on both sides.
			for len(dst) > 0 && (dst[len(dst)-1] == ' ' || dst[len(dst)-1] == '\t') {
				dst = dst[:len(dst)-1]
			}
			for j+1 < len(v) && (v[j+1] == ' ' || v[j+1] == '\t') {
				j++
			}
			dst = append(dst, ' ')
			i = j
			continue
		}
		// A bare line break is kept, and refused by appendComponent.
		dst = append(dst, c)
	}
	return dst
}

// structuredFields holds the structured fields read while building one
// signature base, each parsed once however many components read it: a
// signature may cover one large Dictionary under many keys. The zero value
// is ready.
type structuredFields struct {
	sp     sf.Parser
	parsed []structuredField
}

// structuredField is one field as parsed: which one, and what it holds.
type structuredField struct {
	name    string
	req, tr bool
	typ     FieldType
	item    sf.Item
	members []sf.Member
	err     error
}

func (fs *structuredFields) reset() {
	fs.sp.Reset()
	fs.parsed = fs.parsed[:0]
}

// parse returns the field c reads, of type typ, whose lines are given.
func (fs *structuredFields) parse(c *Component, typ FieldType, lines []string) *structuredField {
	for i := range fs.parsed {
		f := &fs.parsed[i]
		if f.name == c.Name && f.req == c.Req && f.tr == c.Tr && f.typ == typ {
			return f
		}
	}
	var joined []byte
	for i, l := range lines {
		if i > 0 {
			joined = append(joined, ", "...)
		}
		joined = appendFieldLine(joined, l)
	}
	fs.parsed = append(fs.parsed, structuredField{name: c.Name, req: c.Req, tr: c.Tr, typ: typ})
	f := &fs.parsed[len(fs.parsed)-1]
	// The parser's results stay valid until the next reset, which comes
	// with the next base.
	switch typ {
	case FieldItem:
		f.item, f.err = fs.sp.ParseItem(string(joined))
	case FieldList:
		f.members, f.err = fs.sp.ParseList(string(joined))
	case FieldDictionary:
		f.members, f.err = fs.sp.ParseDictionary(string(joined))
	}
	return f
}

func appendStructured(dst []byte, m *Message, c *Component, lines []string, fields *structuredFields) ([]byte, error) {
	typ, ok := m.Structured[c.Name]
	if !ok {
		typ, ok = knownStructured[c.Name]
	}
	if c.Key != "" {
		if ok && typ != FieldDictionary {
			return dst, compErr(c, false, "the key parameter needs a Dictionary field")
		}
		typ, ok = FieldDictionary, true
	}
	if !ok {
		return dst, compErr(c, false, "the structured type of this field is not known")
	}
	f := fields.parse(c, typ, lines)
	if f.err != nil {
		return dst, &componentError{comp: c.String(), msg: "the field is not a valid structured field", err: f.err}
	}
	switch {
	case typ == FieldItem:
		return sf.AppendItem(dst, f.item)
	case typ == FieldList:
		return sf.AppendList(dst, f.members)
	case c.Key == "":
		return sf.AppendDictionary(dst, f.members)
	}
	for _, mem := range f.members {
		if mem.Key == c.Key {
			return sf.AppendMemberValue(dst, mem)
		}
	}
	return dst, compErr(c, true, "the dictionary has no member %q", c.Key)
}
