package httpmsg

import (
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		check    func(t *testing.T, m *Message)
		err      string
	}{
		{name: "origin form LF", in: "POST /a?b=c HTTP/1.1\nHost: Example.com\nX-A: 1\nX-A: 2\n\nbody", check: func(t *testing.T, m *Message) {
			r := m.Request
			if r.Method != "POST" || r.RequestURI != "/a?b=c" || r.Host != "Example.com" || r.URL.String() != "https://Example.com/a?b=c" {
				t.Fatalf("request %+v", r)
			}
			if got := r.Header["X-A"]; !reflect.DeepEqual(got, []string{"1", "2"}) {
				t.Fatalf("X-A %q", got)
			}
			if string(m.Body) != "body" || r.ContentLength != 4 {
				t.Fatalf("body %q", m.Body)
			}
		}},
		{name: "CRLF and Content-Length with final newline", in: "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi\r\n", check: func(t *testing.T, m *Message) {
			if string(m.Body) != "hi" {
				t.Fatalf("body %q", m.Body)
			}
		}},
		{name: "obs-fold", in: "GET / HTTP/1.1\nHost: h\nX-Fold: a  \n   b\n\n", check: func(t *testing.T, m *Message) {
			if got := m.Request.Header.Get("X-Fold"); got != "a b" {
				t.Fatalf("folded %q", got)
			}
		}},
		{name: "chunked with trailer", in: "POST / HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n3\nabc\n2;ext=1\nde\n0\nX-T: v\n\n", check: func(t *testing.T, m *Message) {
			if string(m.Body) != "abcde" || m.Request.Trailer.Get("X-T") != "v" {
				t.Fatalf("body %q trailer %v", m.Body, m.Request.Trailer)
			}
		}},
		{name: "absolute form", in: "GET http://x.example:81/p HTTP/1.1\n\n", check: func(t *testing.T, m *Message) {
			if m.Request.Host != "x.example:81" || m.Request.URL.Scheme != "http" {
				t.Fatalf("request %+v", m.Request)
			}
		}},
		{name: "response", in: "HTTP/1.1 404 Not Found\nContent-Length: 1\n\nx", check: func(t *testing.T, m *Message) {
			if m.Response.StatusCode != 404 || string(m.Body) != "x" {
				t.Fatalf("response %+v", m.Response)
			}
		}},
		{name: "no host", in: "GET / HTTP/1.1\n\n", err: "needs a Host"},
		{name: "two hosts", in: "GET / HTTP/1.1\nHost: a\nHost: b\n\n", err: "more than one Host"},
		{name: "bad request line", in: "GET /\n\n", err: "not a request line"},
		{name: "bad field name", in: "GET / HTTP/1.1\nHost: a\nBad Name: x\n\n", err: "not a valid field name"},
		{name: "no colon", in: "GET / HTTP/1.1\nHost: a\nnocolon\n\n", err: "no colon"},
		{name: "short body", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 10\n\nabc", err: "Content-Length says 10"},
		{name: "long body", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 1\n\nabc", err: "follow"},
		{name: "bad length", in: "POST / HTTP/1.1\nHost: a\nContent-Length: -1\n\n", err: "bad Content-Length"},
		{name: "conflicting lengths", in: "POST / HTTP/1.1\nHost: a\nContent-Length: 1\nContent-Length: 2\n\nab", err: "conflicting"},
		{name: "bad chunk", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\nzz\n", err: "bad chunk size"},
		{name: "unfinished chunks", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n3\nabc\n", err: "without a last chunk"},
		{name: "gzip", in: "POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\n\n", err: "unsupported Transfer-Encoding"},
		{name: "bad status", in: "HTTP/1.1 20 OK\n\n", err: "not a status line"},
		{name: "empty", in: "\n\n", err: "empty message"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Read([]byte(tt.in), "https")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}

func TestWrite(t *testing.T) {
	in := "POST /a HTTP/1.1\r\nHost: h\r\nx-lower: 1\r\nSignature: old\r\n\r\nbody"
	m, err := Read([]byte(in), "https")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := m.Write(&out, http.Header{"Signature": {"new"}, "Signature-Input": {"in"}}); err != nil {
		t.Fatal(err)
	}
	want := "POST /a HTTP/1.1\r\nHost: h\r\nx-lower: 1\r\nContent-Length: 4\r\nSignature-Input: in\r\nSignature: new\r\n\r\nbody"
	if out.String() != want {
		t.Fatalf("got %q\nwant %q", out.String(), want)
	}
}

// FuzzRead: reading never panics, and writing a message back gives text
// that reads as the same message.
func FuzzRead(f *testing.F) {
	f.Add([]byte("POST /a?b=c HTTP/1.1\nHost: h\nContent-Length: 2\n\nhi"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: v\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\nX: y\n   z\n\nbody"))
	f.Add([]byte("GET http://h:1/p HTTP/1.1\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Read(data, "https")
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := m.Write(&out, nil); err != nil {
			t.Fatal(err)
		}
		m2, err := Read(out.Bytes(), "https")
		if err != nil {
			t.Fatalf("%q wrote %q, which does not read: %v", data, out.Bytes(), err)
		}
		if !bytes.Equal(m.Body, m2.Body) {
			t.Fatalf("body %q became %q", m.Body, m2.Body)
		}
		h1, h2 := header(m), header(m2)
		h2.Del("Content-Length")
		h1.Del("Content-Length")
		if !reflect.DeepEqual(h1, h2) {
			t.Fatalf("header %v became %v", h1, h2)
		}
	})
}

func header(m *Message) http.Header {
	if m.Request != nil {
		return m.Request.Header.Clone()
	}
	return m.Response.Header.Clone()
}
