package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/signet-dev/signet/internal/wiretest"
)

// gatewayRequest is a request as the gateway forwards it: the reference
// POST, signed, with the fields the gateway adds.
func gatewayRequest(body []byte) *http.Request {
	req := &http.Request{
		Method: "POST",
		URL:    &url.URL{Scheme: "http", Host: "127.0.0.1:8081", Opaque: "/v1/orders", RawQuery: "customer=42&expand=items"},
		Host:   "api.example.com",
		Header: http.Header{
			"Content-Type":      {"application/json"},
			"Content-Length":    {"1024"},
			"Content-Digest":    {"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"},
			"Signature-Input":   {`sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest");created=1700000000;keyid="sk_test_1";alg="hmac-sha256";nonce="n0nc3"`},
			"Signature":         {"sig1=:c2lnbmF0dXJlIGJ5dGVzIGluIGJhc2U2NCBmb3IgdGhlIGJlbmNobWFyaw==:"},
			"User-Agent":        {"signet-loadbench/1"},
			"Accept":            {"*/*"},
			"X-Signet-Key-Id":   {"sk_test_1"},
			"X-Signet-Owner":    {"loadbench"},
			"X-Signet-Scopes":   {"orders:write"},
			"X-Forwarded-For":   {"127.0.0.1"},
			"X-Forwarded-Host":  {"api.example.com"},
			"X-Forwarded-Proto": {"http"},
		},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	return req
}

// writeBoth writes req, as newReq makes it, with Request.Write and with
// the direct transport's writer, each through a bufio.Writer, and reports
// whether appendRequestHead built the head.
func writeBoth(t *testing.T, newReq func() *http.Request) (std, direct []byte, stdErr, directErr error, built bool) {
	t.Helper()
	var sb, db bytes.Buffer
	bw := bufio.NewWriter(&sb)
	stdErr = newReq().Write(bw)
	if stdErr == nil {
		stdErr = bw.Flush()
	}
	req := newReq()
	head, built := appendRequestHead(nil, req)
	if !built {
		closeBody(req)
		return sb.Bytes(), nil, stdErr, nil, false
	}
	bw = bufio.NewWriter(&db)
	directErr = writeRequest(bw, req, head)
	if directErr == nil {
		directErr = bw.Flush()
	}
	return sb.Bytes(), db.Bytes(), stdErr, directErr, true
}

// TestRequestHeadSameBytes: for the requests the gateway forwards, and
// the cases Request.Write treats apart, the head is built (but for a few
// left to Request.Write), and the bytes are Request.Write's.
func TestRequestHeadSameBytes(t *testing.T) {
	body := bytes.Repeat([]byte("a"), 1024)
	for name, mod := range map[string]func(*http.Request){
		"reference":      func(*http.Request) {},
		"GET":            func(r *http.Request) { r.Method, r.Body, r.ContentLength = "GET", nil, 0 },
		"no method":      func(r *http.Request) { r.Method, r.Body, r.ContentLength = "", nil, 0 },
		"PUT empty":      func(r *http.Request) { r.Method, r.Body, r.ContentLength = "PUT", http.NoBody, 0 },
		"PATCH empty":    func(r *http.Request) { r.Method, r.Body, r.ContentLength = "PATCH", nil, 0 },
		"POST empty":     func(r *http.Request) { r.Body, r.ContentLength = nil, 0 },
		"DELETE empty":   func(r *http.Request) { r.Method, r.Body, r.ContentLength = "DELETE", http.NoBody, 0 },
		"lower post":     func(r *http.Request) { r.Method, r.Body, r.ContentLength = "post", nil, 0 },
		"DELETE body":    func(r *http.Request) { r.Method = "DELETE" },
		"no UA":          func(r *http.Request) { delete(r.Header, "User-Agent") },
		"empty UA":       func(r *http.Request) { r.Header["User-Agent"] = []string{""} },
		"UA no values":   func(r *http.Request) { r.Header["User-Agent"] = nil },
		"UA two values":  func(r *http.Request) { r.Header["User-Agent"] = []string{" a ", "b"} },
		"UA white space": func(r *http.Request) { r.Header["User-Agent"] = []string{" \t "} },
		"lower ua":       func(r *http.Request) { r.Header["user-agent"] = []string{"x"} },
		"host in header": func(r *http.Request) { r.Header["Host"] = []string{"evil.example"} },
		"no Host":        func(r *http.Request) { r.Host = "" },
		"trim":           func(r *http.Request) { r.Header["X-Pad"] = []string{" \t a b \t ", "\t", ""} },
		"obs-text":       func(r *http.Request) { r.Header["X-Utf8"] = []string{"é ✓ \xff"} },
		"no values":      func(r *http.Request) { r.Header["X-None"] = []string{} },
		"lower key":      func(r *http.Request) { r.Header["x-lower"] = []string{"1"} },
		"odd token":      func(r *http.Request) { r.Header["!#$%&'*+-.^_`|~"] = []string{"1"} },
		"excluded": func(r *http.Request) {
			r.Header["Transfer-Encoding"], r.Header["Trailer"] = []string{"chunked"}, []string{"X"}
		},
		"path":            func(r *http.Request) { r.URL.Opaque, r.URL.Path = "", "/a/b;c=d@e:f$&+,=~" },
		"empty path":      func(r *http.Request) { r.URL.Opaque, r.URL.Path, r.URL.RawQuery = "", "", "" },
		"escaped path":    func(r *http.Request) { r.URL.Opaque, r.URL.Path = "", "/a b/é" },
		"raw path":        func(r *http.Request) { r.URL.Opaque, r.URL.Path, r.URL.RawPath = "", "/a/b", "/a%2Fb" },
		"bad raw path":    func(r *http.Request) { r.URL.Opaque, r.URL.Path, r.URL.RawPath = "", "/a/b", "/a%2Fc" },
		"double slash":    func(r *http.Request) { r.URL.Opaque = "//x/y" },
		"OPTIONS *":       func(r *http.Request) { r.Method, r.URL.Opaque, r.URL.Path, r.URL.RawQuery = "OPTIONS", "", "*", "" },
		"opaque *":        func(r *http.Request) { r.Method, r.URL.Opaque, r.URL.RawQuery = "OPTIONS", "*", "" },
		"force query":     func(r *http.Request) { r.URL.RawQuery, r.URL.ForceQuery = "", true },
		"many fields":     func(r *http.Request) { addFields(r, headMaxFields) },
		"IPv6":            func(r *http.Request) { r.Host = "[::1]:8080" },
		"zone":            func(r *http.Request) { r.Host = "[fe80::1%25en0]:8080" },
		"punycode":        func(r *http.Request) { r.Host = "bücher.example" },
		"bad host":        func(r *http.Request) { r.Host = "a b" },
		"space in target": func(r *http.Request) { r.URL.Opaque = "/a b" },
		"not in memory":   func(r *http.Request) { r.Body = io.NopCloser(iotest.HalfReader(bytes.NewReader(body))) },
		"strings.Reader":  func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader(string(body))) },
		"short body":      func(r *http.Request) { r.ContentLength = 2000 },
		"long body":       func(r *http.Request) { r.ContentLength = 1000 },
		"body read error": func(r *http.Request) { r.Body = io.NopCloser(iotest.ErrReader(errors.New("boom"))) },
		"body larger": func(r *http.Request) {
			b := bytes.Repeat([]byte("b"), 10000)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), 10000
		},
		"head over buffer": func(r *http.Request) { r.Header["X-Big"] = []string{strings.Repeat("v", 5000)} },
	} {
		t.Run(name, func(t *testing.T) {
			std, direct, stdErr, directErr, built := writeBoth(t, func() *http.Request {
				r := gatewayRequest(body)
				mod(r)
				return r
			})
			if built && (stdErr == nil) != (directErr == nil) || stdErr != nil && directErr != nil && stdErr.Error() != directErr.Error() {
				t.Fatalf("Request.Write: %v; the direct transport: %v", stdErr, directErr)
			}
			if built && stdErr == nil && !bytes.Equal(std, direct) {
				t.Fatalf("Request.Write wrote\n%q\nthe direct transport\n%q", std, direct)
			}
			// Request.Write alters these hosts, or writes the target
			// with a space: the direct transport leaves them to it.
			fallback := name == "zone" || name == "punycode" || name == "bad host" || name == "space in target"
			if built == fallback {
				t.Fatalf("built: %v", built)
			}
		})
	}
}

// addFields adds fields to r until it has n that Request.Write sorts.
func addFields(r *http.Request, n int) {
	sorted := 0
	for k := range r.Header {
		if k != "Host" && k != "User-Agent" && k != "Content-Length" && k != "Transfer-Encoding" && k != "Trailer" {
			sorted++
		}
	}
	for i := 0; sorted < n; i++ {
		r.Header["X-Field-"+string(rune('A'+i%26))+string(rune('a'+i/26))] = []string{"v"}
		sorted++
	}
}

// TestRequestHeadRefuses: what appendRequestHead does not build, which
// Request.Write writes otherwise than as it is, refuses or cannot write
// in the direct transport's way.
func TestRequestHeadRefuses(t *testing.T) {
	trace := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{WroteHeaders: func() {}})
	for name, mod := range map[string]func(*http.Request) *http.Request{
		"CR in value":       set("X-A", "a\rb"),
		"LF in value":       set("X-A", "a\nX-Signet-Owner: evil"),
		"CRLF in value":     set("X-A", "a\r\nX-Signet-Owner: evil"),
		"NUL in value":      set("X-A", "a\x00b"),
		"DEL in value":      set("X-A", "a\x7fb"),
		"LF in User-Agent":  set("User-Agent", "a\nb"),
		"CR in excluded":    set("Content-Length", "1\r"),
		"LF in a 2nd value": func(r *http.Request) *http.Request { r.Header["X-A"] = []string{"ok", "a\nb"}; return r },
		"space in name":     set("X A", "1"),
		"colon in name":     set("X:A", "1"),
		"LF in name":        set("X\nA", "1"),
		"empty name":        set("", "1"),
		"bad method":        func(r *http.Request) *http.Request { r.Method = "GET /x HTTP/1.1\r\n"; return r },
		"CONNECT":           func(r *http.Request) *http.Request { r.Method = "CONNECT"; return r },
		"CRLF in Host":      func(r *http.Request) *http.Request { r.Host = "a\r\nX-Signet-Owner: evil"; return r },
		"zone in Host":      func(r *http.Request) *http.Request { r.Host = "[fe80::1%en0]"; return r },
		"unicode Host":      func(r *http.Request) *http.Request { r.Host = "bücher.example"; return r },
		"empty Host":        func(r *http.Request) *http.Request { r.Host, r.URL.Host = "", ""; return r },
		"LF in target":      func(r *http.Request) *http.Request { r.URL.Opaque = "/a\nb"; return r },
		"space in target":   func(r *http.Request) *http.Request { r.URL.Opaque = "/a b HTTP/1.1"; return r },
		"space in query":    func(r *http.Request) *http.Request { r.URL.RawQuery = "a b"; return r },
		"CR in query":       func(r *http.Request) *http.Request { r.URL.RawQuery = "a\rb"; return r },
		"non-ASCII target":  func(r *http.Request) *http.Request { r.URL.Opaque = "/é"; return r },
		"unknown length":    func(r *http.Request) *http.Request { r.ContentLength = -1; return r },
		"length, no body":   func(r *http.Request) *http.Request { r.Body = nil; return r },
		"body, length 0":    func(r *http.Request) *http.Request { r.ContentLength = 0; return r },
		"chunked":           func(r *http.Request) *http.Request { r.TransferEncoding = []string{"chunked"}; return r },
		"trailer":           func(r *http.Request) *http.Request { r.Trailer = http.Header{}; return r },
		"close":             func(r *http.Request) *http.Request { r.Close = true; return r },
		"too many fields":   func(r *http.Request) *http.Request { addFields(r, headMaxFields+1); return r },
		"nil header":        func(r *http.Request) *http.Request { r.Header = nil; return r },
		"nil URL":           func(r *http.Request) *http.Request { r.URL = nil; return r },
		"write trace":       func(r *http.Request) *http.Request { return r.WithContext(trace) },
	} {
		req := mod(gatewayRequest([]byte("body")))
		if _, ok := appendRequestHead(nil, req); ok {
			t.Errorf("%s: built", name)
		}
	}
	// A trace that wants only 1xx responses, as ReverseProxy's, is no
	// reason to refuse.
	r1xx := gatewayRequest(nil).WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{Got1xxResponse: nil}))
	if _, ok := appendRequestHead(nil, r1xx); !ok {
		t.Error("a request with a 1xx trace: not built")
	}
}

func set(k, v string) func(*http.Request) *http.Request {
	return func(r *http.Request) *http.Request {
		r.Header[k] = []string{v}
		return r
	}
}

// TestDirectControlBytesNeverSent: a field value with a CR, LF or NUL
// that code set after parsing (as the gateway sets X-Signet-*), a Host or
// a target with one, never leaves for the upstream as it is: the request
// is refused, or written by Request.Write, which makes the Host empty.
// What is checked is every byte written on the connections.
func TestDirectControlBytesNeverSent(t *testing.T) {
	u := wiretest.NewScripted(t, ok)
	var watch wiretest.Watch
	d := newTestDirect(t, u, func(tr *http.Transport) { tr.DialContext = watch.Dial(tr.DialContext) })
	evil := "x\r\nX-Signet-Owner: evil\r\n"
	for name, mod := range map[string]func(*http.Request){
		"value CRLF":     func(r *http.Request) { r.Header.Set("X-Signet-Owner", "alice"+evil) },
		"value LF":       func(r *http.Request) { r.Header.Set("X-Signet-Scopes", "a\nX-Signet-Owner: evil") },
		"value CR":       func(r *http.Request) { r.Header.Set("X-Signet-Scopes", "a\rX-Signet-Owner: evil") },
		"value NUL":      func(r *http.Request) { r.Header.Set("X-Signet-Key-Id", "sk\x00X-Signet-Owner: evil") },
		"User-Agent":     func(r *http.Request) { r.Header.Set("User-Agent", evil) },
		"second value":   func(r *http.Request) { r.Header["X-Signet-Scopes"] = []string{"a", evil} },
		"excluded field": func(r *http.Request) { r.Header["Trailer"] = []string{evil} },
		"name":           func(r *http.Request) { r.Header["X-A: b\r\nX-Signet-Owner"] = []string{"evil"} },
		"Host":           func(r *http.Request) { r.Host = "api.example.com" + evil },
		"target":         func(r *http.Request) { r.URL.Opaque = "/a" + evil },
		"query":          func(r *http.Request) { r.URL.RawQuery = "a=" + evil },
	} {
		for _, method := range []string{"GET", "POST"} {
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader("body")
			}
			req, _ := http.NewRequest(method, u.URL("/v1/orders"), body)
			mod(req)
			if !d.direct(req) {
				t.Fatalf("%s %s: not sent directly", name, method)
			}
			resp, err := d.RoundTrip(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			raw := watch.Take()
			if strings.Contains(strings.ToLower(raw), "\nx-signet-owner: evil") || strings.ContainsAny(strings.ReplaceAll(raw, "\r\n", ""), "\r\n\x00") {
				t.Errorf("%s %s: sent\n%q", name, method, raw)
			}
		}
	}
}

// FuzzDirectRequestHead: for any request, the head appendRequestHead
// builds and the body writeRequest writes after it are byte for byte what
// Request.Write writes, with the same error, and the head is plainly
// well-formed: a request line of a token, a target of visible characters
// and HTTP/1.1; fields named by tokens, values without a control
// character but HTAB nor white space at either end; one Host. Whatever it
// builds, validHeader accepts.
func FuzzDirectRequestHead(f *testing.F) {
	f.Add("POST", "/v1/orders", "", "", "customer=42", "api.example.com", "127.0.0.1:8081",
		fieldsOf("Content-Type", "application/json", "X-Signet-Key-Id", "sk_1", "User-Agent", "x"), uint16(10), uint8(2<<2))
	f.Add("GET", "", "/a b/c", "", "", "", "h:1", fieldsOf("x-lower", " v ", "X-Many", "a", "X-Many", "b"), uint16(0), uint8(0))
	f.Add("", "", "/a/b", "/a%2Fb", "", "h", "h", fieldsOf("User-Agent", ""), uint16(0), uint8(1<<2|1))
	f.Add("OPTIONS", "", "*", "", "", "h", "h", fieldsOf("Host", "other", "Content-Length", "9"), uint16(0), uint8(0))
	f.Add("PUT", "//x", "", "", "q", "[fe80::1%en0]:80", "h", fieldsOf("X-Bad", "a\r\nb"), uint16(3), uint8(4<<2))
	f.Add("PATCH", "/é", "", "", "a b", "bücher", "h", fieldsOf("X A", "1", "Trailer", "X"), uint16(5), uint8(5<<2|1<<5))
	f.Add("DELETE", "/d", "", "", "", "", "h", fieldsOf("User-Agent", "\tua\t", "User-Agent", "2"), uint16(7), uint8(6<<2|1<<1))
	f.Add("GET", "/x", "", "", "", "h", "h", fieldsOf("X-Bad", "a\r\nX-Signet-Owner: evil"), uint16(0), uint8(0))
	f.Add("GET", "/x", "", "", "", "h", "h", fieldsOf("X\nA", "1"), uint16(0), uint8(0))
	f.Add("GET", "/x", "", "", "", "h", "h", fieldsOf("Trailer", "a\x00"), uint16(0), uint8(0))
	f.Add("GET", "/x\r\nX: y", "", "", "", "h", "h", []byte(nil), uint16(0), uint8(0))
	f.Add("GET", "/x", "", "", "", "h\r\nX: y", "h", []byte(nil), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, method, opaque, path, rawPath, rawQuery, host, urlHost string, fields []byte, bodyLen uint16, flags uint8) {
		newReq := func() *http.Request {
			req := &http.Request{
				Method:     method,
				URL:        &url.URL{Scheme: "http", Host: urlHost, Opaque: opaque, Path: path, RawPath: rawPath, RawQuery: rawQuery, ForceQuery: flags&1 != 0},
				Host:       host,
				Header:     http.Header{},
				Close:      flags&(1<<1) != 0 && flags&(1<<6) != 0,
				Proto:      "HTTP/1.1",
				ProtoMajor: 1, ProtoMinor: 1,
			}
			for p := fields; len(p) > 0; {
				var k, v string
				k, p = take(p, int(p[0])%24)
				if len(p) == 0 {
					req.Header[k] = nil
					break
				}
				if p[0] == 0xff {
					req.Header[k] = []string{}
					p = p[1:]
					continue
				}
				v, p = take(p, int(p[0])%80)
				req.Header[k] = append(req.Header[k], v)
			}
			n := int(bodyLen % 9000)
			body := bytes.Repeat([]byte{'b'}, n)
			req.ContentLength = int64(n)
			switch flags >> 2 & 7 {
			case 0:
				req.ContentLength = 0
			case 1:
				req.Body, req.ContentLength = http.NoBody, 0
			case 2:
				req.Body = io.NopCloser(bytes.NewReader(body))
			case 3:
				req.Body = io.NopCloser(strings.NewReader(string(body)))
			case 4:
				req.Body = io.NopCloser(iotest.OneByteReader(bytes.NewReader(body)))
			case 5:
				req.Body = io.NopCloser(bytes.NewReader(body[:n/2]))
			case 6:
				req.Body = io.NopCloser(bytes.NewReader(append(body, 'x')))
			case 7:
				req.Body = io.NopCloser(iotest.TimeoutReader(bytes.NewReader(body)))
			}
			if flags&(1<<5) != 0 {
				req.ContentLength = -1
			}
			if flags&(1<<7) != 0 {
				if flags&(1<<1) != 0 {
					req.TransferEncoding = []string{"chunked"}
				} else {
					req.Trailer = http.Header{"X-T": {"1"}}
				}
			}
			return req
		}
		head, built := appendRequestHead(nil, newReq())
		if !built {
			return
		}
		if err := validHeader(newReq()); err != nil {
			t.Fatalf("built a head that validHeader refuses (%v):\n%q", err, head)
		}
		checkHead(t, head)
		std, direct, stdErr, directErr, _ := writeBoth(t, newReq)
		if (stdErr == nil) != (directErr == nil) || stdErr != nil && stdErr.Error() != directErr.Error() {
			t.Fatalf("Request.Write: %v; the direct transport: %v", stdErr, directErr)
		}
		if stdErr == nil && !bytes.Equal(std, direct) {
			t.Fatalf("Request.Write wrote\n%q\nthe direct transport\n%q", std, direct)
		}
		if stdErr == nil && !bytes.HasPrefix(direct, head) {
			t.Fatalf("the head\n%q\nis not what was written\n%q", head, direct)
		}
	})
}

func fieldsOf(kv ...string) []byte {
	var b []byte
	for i := 0; i < len(kv); i += 2 {
		b = append(b, byte(len(kv[i])))
		b = append(b, kv[i]...)
		b = append(b, byte(len(kv[i+1])))
		b = append(b, kv[i+1]...)
	}
	return b
}

// take returns the n bytes after p's first, as a string, and the rest.
func take(p []byte, n int) (string, []byte) {
	p = p[1:]
	n = min(n, len(p))
	return string(p[:n]), p[n:]
}

// checkHead fails t unless head is a well-formed request head, by rules
// of its own rather than Request.Write's.
func checkHead(t *testing.T, head []byte) {
	t.Helper()
	s, found := strings.CutSuffix(string(head), "\r\n\r\n")
	if !found {
		t.Fatalf("no empty line at the end of %q", head)
	}
	lines := strings.Split(s, "\r\n")
	method, rest, _ := strings.Cut(lines[0], " ")
	target, proto, _ := strings.Cut(rest, " ")
	if !isToken(method) || target == "" || !visible(target) || proto != "HTTP/1.1" {
		t.Fatalf("request line %q", lines[0])
	}
	hosts := 0
	for _, l := range lines[1:] {
		name, value, found := strings.Cut(l, ": ")
		if !found || !isToken(name) || !plainValue(value) || strings.ContainsAny(value, "\r\n") ||
			strings.TrimLeft(value, " \t") != value || strings.TrimRight(value, " \t") != value {
			t.Fatalf("field line %q in %q", l, head)
		}
		if name == "Host" {
			hosts++
		}
	}
	if !strings.HasPrefix(lines[1], "Host: ") || hosts != 1 {
		t.Fatalf("%d Host fields in %q", hosts, head)
	}
}

// BenchmarkRequestHead: the reference request, as the gateway forwards
// it, written by Request.Write and by the direct transport's writer (with
// its buffer from the pool, as RoundTrip takes it).
func BenchmarkRequestHead(b *testing.B) {
	body := bytes.Repeat([]byte("a"), 1024)
	rd := bytes.NewReader(body)
	req := gatewayRequest(body)
	req.Body = io.NopCloser(rd)
	bw := bufio.NewWriterSize(io.Discard, 4096)
	b.Run("Request.Write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(body)
			if err := req.Write(bw); err != nil {
				b.Fatal(err)
			}
			bw.Flush()
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(body)
			buf := headBuffers.Get().(*[]byte)
			head, ok := appendRequestHead((*buf)[:0], req)
			if !ok {
				b.Fatal("not built")
			}
			if err := writeRequest(bw, req, head); err != nil {
				b.Fatal(err)
			}
			bw.Flush()
			*buf = head[:0]
			headBuffers.Put(buf)
		}
	})
}

// TestDirectRequestInOneWrite: the direct transport writes the head and a
// body in memory (as the gateway hands it on) in one write, and the head
// ahead of a body that is not, as Request.Write does.
func TestDirectRequestInOneWrite(t *testing.T) {
	u := wiretest.NewScripted(t, ok)
	var watch wiretest.Watch
	d := newTestDirect(t, u, func(tr *http.Transport) { tr.DialContext = watch.Dial(tr.DialContext) })
	body := strings.Repeat("a", 1024)
	for name, c := range map[string]struct {
		body   func() io.Reader
		writes int
	}{
		"in memory":     {func() io.Reader { return strings.NewReader(body) }, 1},
		"not in memory": {func() io.Reader { return iotest.HalfReader(strings.NewReader(body)) }, 2},
	} {
		for range 2 { // on a new connection, then on the same
			req, _ := http.NewRequest("POST", u.URL("/v1/orders"), io.NopCloser(c.body()))
			req.ContentLength = int64(len(body))
			before := watch.Writes()
			resp, err := d.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n := watch.Writes() - before; n != c.writes {
				t.Errorf("%s: %d writes, want %d", name, n, c.writes)
			}
		}
	}
}
