// Package httpmsg reads and writes HTTP/1.1 messages as text, the way
// people paste them into files and terminals: CRLF or LF line endings,
// origin-form requests with a Host field or absolute-form ones, bodies
// framed by Content-Length, chunked (with trailers) or by the end of input.
package httpmsg

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// MaxSize bounds the text Read accepts.
const MaxSize = 64 << 20

// Field is one field line as written in the text (with obsolete line
// folding undone).
type Field struct {
	Name, Value string
}

// Message is a parsed request or response. Exactly one of Request and
// Response is set; their Header and Trailer hold the fields under
// canonical keys, and Body is the decoded content.
type Message struct {
	Request  *http.Request
	Response *http.Response
	Body     []byte

	startLine string
	fields    []Field
	trailers  []Field
	chunked   bool
	crlf      bool
}

// Read parses one message from data. For an origin-form request, scheme
// ("https" or "http") completes the URL with the Host field.
func Read(data []byte, scheme string) (*Message, error) {
	if len(data) > MaxSize {
		return nil, errors.New("httpmsg: message too large")
	}
	m := &Message{crlf: bytes.Contains(data, []byte("\r\n"))}
	rest := data
	line, rest, ok := nextLine(rest)
	for ok && line == "" { // tolerate blank lines before the start line
		line, rest, ok = nextLine(rest)
	}
	if line == "" {
		return nil, errors.New("httpmsg: empty message")
	}
	m.startLine = line
	var err error
	if m.fields, rest, err = readFields(rest); err != nil {
		return nil, err
	}
	header := toHeader(m.fields)
	if err := m.readBody(header, rest); err != nil {
		return nil, err
	}
	if strings.HasPrefix(line, "HTTP/") {
		return m, m.buildResponse(header)
	}
	return m, m.buildRequest(header, scheme)
}

// nextLine returns the line before the next LF (without CR) and the rest.
func nextLine(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return strings.TrimSuffix(string(b), "\r"), nil, len(b) > 0
	}
	return strings.TrimSuffix(string(b[:i]), "\r"), b[i+1:], true
}

// IsToken reports whether s is a token (RFC 9110 §5.6.2), as field names
// and methods are.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// readFields reads field lines up to the empty line that ends them.
func readFields(b []byte) ([]Field, []byte, error) {
	var fields []Field
	for {
		line, rest, ok := nextLine(b)
		if !ok {
			return fields, nil, nil // end of input: no body
		}
		b = rest
		if line == "" {
			return fields, b, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, nil, errors.New("httpmsg: continuation line before any field")
			}
			// obs-fold (RFC 9112 §5.2): OWS CRLF RWS becomes one space.
			if strings.ContainsFunc(line, isCTL) {
				return nil, nil, fmt.Errorf("httpmsg: field %s has a control character", fields[len(fields)-1].Name)
			}
			f := &fields[len(fields)-1]
			f.Value = strings.Trim(f.Value+" "+strings.TrimLeft(line, " \t"), " \t")
			continue
		}
		name, value, found := strings.Cut(line, ":")
		if !found {
			return nil, nil, fmt.Errorf("httpmsg: field line %q has no colon", line)
		}
		if !IsToken(name) {
			return nil, nil, fmt.Errorf("httpmsg: %q is not a valid field name", name)
		}
		if strings.ContainsFunc(value, isCTL) {
			return nil, nil, fmt.Errorf("httpmsg: field %s has a control character", name)
		}
		fields = append(fields, Field{Name: name, Value: strings.Trim(value, " \t")})
	}
}

// isCTL reports whether r may not appear in a field value (RFC 9110 §5.5):
// controls other than HTAB.
func isCTL(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }

func toHeader(fields []Field) http.Header {
	h := make(http.Header, len(fields))
	for _, f := range fields {
		k := textproto.CanonicalMIMEHeaderKey(f.Name)
		h[k] = append(h[k], f.Value)
	}
	return h
}

func (m *Message) readBody(h http.Header, rest []byte) error {
	if te := strings.ToLower(h.Get("Transfer-Encoding")); te != "" {
		if te != "chunked" {
			return fmt.Errorf("httpmsg: unsupported Transfer-Encoding %q", te)
		}
		m.chunked = true
		return m.readChunked(rest)
	}
	cls := h.Values("Content-Length")
	if len(cls) == 0 {
		m.Body = rest
		return nil
	}
	for _, v := range cls[1:] {
		if v != cls[0] {
			return errors.New("httpmsg: conflicting Content-Length fields")
		}
	}
	n, err := strconv.ParseUint(cls[0], 10, 63)
	if err != nil {
		return fmt.Errorf("httpmsg: bad Content-Length %q", cls[0])
	}
	if uint64(len(rest)) < n {
		return fmt.Errorf("httpmsg: body is %d bytes, Content-Length says %d", len(rest), n)
	}
	extra := rest[n:]
	if len(extra) > 0 && string(extra) != "\n" && string(extra) != "\r\n" {
		return fmt.Errorf("httpmsg: %d bytes follow the %d-byte body Content-Length announces", len(extra), n)
	}
	m.Body = rest[:n]
	return nil
}

func (m *Message) readChunked(b []byte) error {
	var body []byte
	for {
		line, rest, ok := nextLine(b)
		if !ok {
			return errors.New("httpmsg: chunked body ends without a last chunk")
		}
		sizeText, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseUint(strings.TrimSpace(sizeText), 16, 31)
		if err != nil {
			return fmt.Errorf("httpmsg: bad chunk size %q", line)
		}
		b = rest
		if size == 0 {
			break
		}
		if uint64(len(b)) < size {
			return errors.New("httpmsg: chunk longer than the input")
		}
		body = append(body, b[:size]...)
		if line, b, ok = nextLine(b[size:]); !ok || line != "" {
			return errors.New("httpmsg: chunk data is not followed by a line end")
		}
	}
	trailers, _, err := readFields(b)
	if err != nil {
		return err
	}
	m.trailers = trailers
	m.Body = body
	return nil
}

func (m *Message) buildRequest(h http.Header, scheme string) error {
	parts := strings.Split(m.startLine, " ")
	if len(parts) != 3 || !IsToken(parts[0]) || parts[1] == "" || !strings.HasPrefix(parts[2], "HTTP/") {
		return fmt.Errorf("httpmsg: %q is not a request line (METHOD target HTTP/1.1)", m.startLine)
	}
	method, target, proto := parts[0], parts[1], parts[2]
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		return fmt.Errorf("httpmsg: bad HTTP version %q", proto)
	}
	r := &http.Request{
		Method: method, RequestURI: target, Proto: proto, ProtoMajor: major, ProtoMinor: minor,
		Header: h, ContentLength: int64(len(m.Body)), Body: http.NoBody,
	}
	if len(m.Body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(m.Body))
	}
	hosts := h.Values("Host")
	if len(hosts) > 1 {
		return errors.New("httpmsg: more than one Host field")
	}
	var err error
	switch {
	case strings.Contains(target, "://"):
		if r.URL, err = url.ParseRequestURI(target); err != nil {
			return fmt.Errorf("httpmsg: bad request target: %v", err)
		}
		r.Host = r.URL.Host
	case method == http.MethodConnect:
		r.URL = &url.URL{Host: target}
		r.Host = target
	default:
		if len(hosts) == 0 {
			return errors.New("httpmsg: an origin-form request needs a Host field")
		}
		r.Host = hosts[0]
		if scheme == "" {
			scheme = "https"
		}
		if target == "*" {
			r.URL = &url.URL{Scheme: scheme, Host: r.Host, Path: "*"}
		} else {
			u, err := url.ParseRequestURI(target)
			if err != nil {
				return fmt.Errorf("httpmsg: bad request target: %v", err)
			}
			u.Scheme, u.Host = scheme, r.Host
			r.URL = u
		}
	}
	if len(m.trailers) > 0 {
		r.Trailer = toHeader(m.trailers)
	}
	m.Request = r
	return nil
}

func (m *Message) buildResponse(h http.Header) error {
	proto, rest, _ := strings.Cut(m.startLine, " ")
	codeText, _, _ := strings.Cut(rest, " ")
	major, minor, ok := http.ParseHTTPVersion(proto)
	code, err := strconv.Atoi(codeText)
	if !ok || err != nil || len(codeText) != 3 {
		return fmt.Errorf("httpmsg: %q is not a status line", m.startLine)
	}
	resp := &http.Response{
		Status: rest, StatusCode: code, Proto: proto, ProtoMajor: major, ProtoMinor: minor,
		Header: h, ContentLength: int64(len(m.Body)), Body: io.NopCloser(bytes.NewReader(m.Body)),
	}
	if len(m.trailers) > 0 {
		resp.Trailer = toHeader(m.trailers)
	}
	m.Response = resp
	return nil
}

// Write writes the message as text with the line endings it was read
// with: its start line, its field lines in their order except those of the
// fields named in set, then the fields of set, and the body. A body without
// framing gets a Content-Length field.
func (m *Message) Write(w io.Writer, set http.Header) error {
	eol := "\n"
	if m.crlf {
		eol = "\r\n"
	}
	var b bytes.Buffer
	b.WriteString(m.startLine + eol)
	hasLength := false
	for _, f := range m.fields {
		k := textproto.CanonicalMIMEHeaderKey(f.Name)
		if _, replaced := set[k]; replaced {
			continue
		}
		hasLength = hasLength || k == "Content-Length"
		b.WriteString(f.Name + ": " + f.Value + eol)
	}
	if !m.chunked && !hasLength && len(m.Body) > 0 {
		if _, ok := set["Content-Length"]; !ok {
			b.WriteString("Content-Length: " + strconv.Itoa(len(m.Body)) + eol)
		}
	}
	for _, k := range sortedKeys(set) {
		for _, v := range set[k] {
			b.WriteString(k + ": " + v + eol)
		}
	}
	b.WriteString(eol)
	if m.chunked {
		if len(m.Body) > 0 {
			b.WriteString(strconv.FormatInt(int64(len(m.Body)), 16) + eol)
			b.Write(m.Body)
			b.WriteString(eol)
		}
		b.WriteString("0" + eol)
		for _, f := range m.trailers {
			b.WriteString(f.Name + ": " + f.Value + eol)
		}
		b.WriteString(eol)
	} else {
		b.Write(m.Body)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// sortedKeys orders the fields Write adds: Content-Digest, then
// Signature-Input, then Signature, then the rest alphabetically.
func sortedKeys(h http.Header) []string {
	rank := func(k string) int {
		switch k {
		case "Content-Digest":
			return 1
		case "Signature-Input":
			return 2
		case "Signature":
			return 3
		}
		return 4
	}
	keys := slices.Collect(maps.Keys(h))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	})
	return keys
}
