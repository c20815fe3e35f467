package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// headMaxFields bounds the header fields appendRequestHead sorts, in an
// array on the stack; a request with more is written by Request.Write.
const headMaxFields = 32

// headField is a header field to write, its values in order.
type headField struct {
	key    string
	values []string
}

// headBuffers lends the buffers heads are built in.
var headBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// headBufferMax is the largest buffer kept for reuse: a head larger than
// that (a header of many kilobytes) is rare enough to be built anew.
const headBufferMax = 64 << 10

// appendRequestHead appends to dst the request line and header fields of
// req, and the empty line that ends them, as Request.Write writes them
// when http.Transport sends req to an HTTP/1.1 origin server, and reports
// whether it did. It refuses (false, dst unusable) what it cannot write
// byte for byte as Request.Write would, or what Request.Write would
// refuse, alter or http.Transport reject: a body of unknown length,
// trailers, Transfer-Encoding, Close, a ClientTrace that wants to hear
// of the writing, a method, field name, field value, request target or
// host with a byte that is not plainly safe, more than headMaxFields
// fields. Whatever it accepts, validHeader accepts too: it checks every
// field, also those Request.Write leaves out.
func appendRequestHead(dst []byte, req *http.Request) ([]byte, bool) {
	u := req.URL
	if u == nil || req.Header == nil || req.Close || len(req.TransferEncoding) > 0 || req.Trailer != nil {
		return dst, false
	}
	// A body with ContentLength 0 is of unknown length to Request.Write,
	// which sends it chunked (or, for a GET, first reads a byte of it);
	// a length without a body it refuses.
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody != (req.ContentLength > 0) || !hasBody && req.ContentLength != 0 {
		return dst, false
	}
	// Request.Write tells these of each field it writes.
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil &&
		(trace.WroteHeaderField != nil || trace.WroteHeaders != nil || trace.WroteRequest != nil) {
		return dst, false
	}
	method := req.Method
	if method == "" {
		method = "GET"
	}
	if method == "CONNECT" || !isToken(method) {
		return dst, false
	}
	host := req.Host
	if host == "" {
		host = u.Host
	}
	if !plainHost(host) {
		return dst, false
	}

	// Request.Write writes Host, User-Agent and Content-Length first,
	// then the other fields sorted by key (as they are in the map: a key
	// that is not canonical is written as it is), each value with its
	// leading and trailing white space trimmed.
	var fields [headMaxFields]headField
	n := 0
	for k, vv := range req.Header {
		if !isToken(k) {
			return dst, false
		}
		for _, v := range vv {
			if !plainValue(v) {
				return dst, false
			}
		}
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if n == len(fields) {
			return dst, false
		}
		i := n
		for ; i > 0 && fields[i-1].key > k; i-- {
			fields[i] = fields[i-1]
		}
		fields[i] = headField{k, vv}
		n++
	}

	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst, ok := appendRequestURI(dst, u)
	if !ok {
		return dst, false
	}
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	// The default User-Agent unless the header has one, which may be
	// empty to send none (but white space is sent, trimmed: empty); only
	// its first value is sent.
	if vv, has := req.Header["User-Agent"]; !has {
		dst = append(dst, "User-Agent: Go-http-client/1.1\r\n"...)
	} else if len(vv) > 0 && vv[0] != "" {
		dst = append(dst, "User-Agent: "...)
		dst = append(dst, textproto.TrimString(vv[0])...)
		dst = append(dst, "\r\n"...)
	}
	// Many servers expect a Content-Length for these methods, even 0.
	if req.ContentLength > 0 || method == "POST" || method == "PUT" || method == "PATCH" {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, req.ContentLength, 10)
		dst = append(dst, "\r\n"...)
	}
	for _, f := range fields[:n] {
		for _, v := range f.values {
			dst = append(dst, f.key...)
			dst = append(dst, ": "...)
			dst = append(dst, textproto.TrimString(v)...)
			dst = append(dst, "\r\n"...)
		}
	}
	return append(dst, "\r\n"...), true
}

// appendRequestURI appends u.RequestURI(), without building it where it
// need not, and reports whether each of its bytes is plainly safe: a
// visible ASCII character (Request.Write refuses control characters
// only, and writes a space or a non-ASCII byte as it is).
func appendRequestURI(dst []byte, u *url.URL) ([]byte, bool) {
	start := len(dst)
	switch {
	case u.Opaque != "" && !strings.HasPrefix(u.Opaque, "//"):
		dst = append(dst, u.Opaque...)
	case u.Opaque == "" && u.RawPath == "" && plainPath(u.Path):
		if u.Path == "" {
			dst = append(dst, '/')
		} else {
			dst = append(dst, u.Path...)
		}
	default:
		// The rules of EscapedPath (a RawPath that may not match the
		// path, "*"), of an opaque "//": net/url's.
		return appendVisible(dst, u.RequestURI())
	}
	if u.ForceQuery || u.RawQuery != "" {
		dst = append(dst, '?')
		dst = append(dst, u.RawQuery...)
	}
	return dst, visible(dst[start:])
}

func appendVisible(dst []byte, s string) ([]byte, bool) {
	return append(dst, s...), visible(s)
}

// visible reports whether s has only visible ASCII characters.
func visible[S string | []byte](s S) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// Byte classes of the head.
const (
	classToken = 1 << iota // tchar of RFC 9110
	classPath              // left as it is by url.URL's escaping of a path
	classHost              // in a host name, an IP address, a port
)

var headClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		alnum := '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if alnum || strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0 {
			t[c] |= classToken
		}
		if alnum || strings.IndexByte("-_.~$&+,/:;=@", byte(c)) >= 0 {
			t[c] |= classPath
		}
		if alnum || strings.IndexByte("-._:[]", byte(c)) >= 0 {
			t[c] |= classHost
		}
	}
	return t
}()

// isToken reports whether s is an RFC 9110 token: a method or field name.
func isToken(s string) bool { return s != "" && allOf(s, classToken) }

// plainPath reports whether url.URL writes path p as it is.
func plainPath(p string) bool { return allOf(p, classPath) }

// plainHost reports whether Request.Write writes host h as it is: no
// punycode, no IPv6 zone to remove, nothing that ValidHostHeader refuses.
func plainHost(h string) bool { return h != "" && allOf(h, classHost) }

func allOf(s string, class uint8) bool {
	for i := 0; i < len(s); i++ {
		if headClass[s[i]]&class == 0 {
			return false
		}
	}
	return true
}

// plainValue reports whether field value v has no control character but
// HTAB: none that Request.Write would turn into a space, none that
// http.Transport refuses. Bytes above 0x7f (obs-text) it sends as they
// are, and so does appendRequestHead.
func plainValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// writeRequest writes req, whose head appendRequestHead built, to bw: the
// head, then the body, which it closes, as Request.Write does; the caller
// flushes. Like Request.Write, it sends the head ahead of a body that is
// not in memory, which might come only once the upstream has seen it.
func writeRequest(bw *bufio.Writer, req *http.Request, head []byte) (err error) {
	body := req.Body
	defer func() {
		if body != nil {
			if cerr := body.Close(); err == nil {
				err = cerr
			}
		}
	}()
	if _, err := bw.Write(head); err != nil {
		return err
	}
	if body == nil || body == http.NoBody {
		return nil
	}
	if !inMemory(body) {
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	// Read into bw's buffer, as bufio.Writer.ReadFrom would, but no
	// further than ContentLength.
	want, n, empty := req.ContentLength, int64(0), 0
	for n < want {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), want-n)]
		m, rerr := body.Read(buf)
		bw.Write(buf[:m]) // in the buffer already: cannot fail
		n += int64(m)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
		if empty++; m > 0 {
			empty = 0
		} else if empty == 100 {
			return io.ErrNoProgress
		}
	}
	// Request.Write reads a body to its end, to tell one longer than
	// its ContentLength.
	extra, rerr := io.Copy(io.Discard, body)
	if rerr != nil {
		return rerr
	}
	if n+extra != want {
		return fmt.Errorf("http: ContentLength=%d with Body length %d", want, n+extra)
	}
	return nil
}

// nopClosers are the types io.NopCloser returns.
var nopClosers = [2]reflect.Type{
	reflect.TypeOf(io.NopCloser(nil)),
	reflect.TypeOf(io.NopCloser(strings.NewReader(""))),
}

// inMemory reports whether net/http counts r as a reader of memory, whose
// body it writes in the same packet as the head.
func inMemory(r io.Reader) bool {
	switch r.(type) {
	case *bytes.Reader, *bytes.Buffer, *strings.Reader:
		return true
	}
	if t := reflect.TypeOf(r); t == nopClosers[0] || t == nopClosers[1] {
		inner, _ := reflect.ValueOf(r).Field(0).Interface().(io.Reader)
		return inMemory(inner)
	}
	return false
}
