// Package wiretest sends hand-written HTTP/1.1 requests over loopback and
// records, byte for byte, what a server behind a proxy receives: the tools
// of the tests that check that what Signet passes on is what it verified.
//
// [Upstream] is a raw TCP server (not net/http, which would normalise what
// it reads); [Sign] signs a raw request the way a server that parses it
// verifies it; [Send] writes a raw request and reads the response.
package wiretest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// Upstream records the requests it receives, each exactly as it arrived,
// and answers each with 200 and closes the connection.
type Upstream struct {
	ln   net.Listener
	mu   sync.Mutex
	reqs [][]byte
}

// NewUpstream starts an Upstream on loopback, stopped when t ends.
func NewUpstream(t testing.TB) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				u.serve(c)
			}()
		}
	}()
	return u
}

// URL returns the upstream's http:// URL, with path appended.
func (u *Upstream) URL(path string) string { return "http://" + u.ln.Addr().String() + path }

// Requests returns the requests received so far, as received.
func (u *Upstream) Requests() [][]byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([][]byte(nil), u.reqs...)
}

// Count returns how many requests were received.
func (u *Upstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// Last returns the last request received; it fails t if there is none.
func (u *Upstream) Last(t testing.TB) []byte {
	t.Helper()
	reqs := u.Requests()
	if len(reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	return reqs[len(reqs)-1]
}

func (u *Upstream) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(c, &raw))
	if err := readMessage(br, c); err != nil {
		return
	}
	// Only what the parser consumed belongs to the request.
	req := raw.Bytes()[:raw.Len()-br.Buffered()]
	u.mu.Lock()
	u.reqs = append(u.reqs, bytes.Clone(req))
	u.mu.Unlock()
	io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
}

// readMessage reads one request: its head, and a body framed by
// Content-Length or chunked coding (with trailers).
func readMessage(br *bufio.Reader, c net.Conn) error {
	var length int64
	chunked, expect := false, false
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			break
		}
		if first {
			continue
		}
		name, value, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			if length, err = strconv.ParseInt(value, 10, 64); err != nil {
				return err
			}
		case "transfer-encoding":
			chunked = strings.EqualFold(value, "chunked")
		case "expect":
			expect = strings.EqualFold(value, "100-continue")
		}
	}
	if expect {
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
	}
	if !chunked {
		_, err := io.CopyN(io.Discard, br, length)
		return err
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		size, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if _, err := io.CopyN(io.Discard, br, n+2); err != nil {
			return err
		}
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil || line == "\r\n" {
			return err
		}
	}
}

// Sign returns raw, an HTTP/1.1 request with CRLF line endings, signed by
// s as a server that parses it verifies it: the Content-Digest (for a
// body), Signature-Input and Signature fields are added after its other
// fields, which keep their order and spelling. It fails t if raw cannot
// be parsed or signed.
func Sign(t testing.TB, s *httpsig.Signer, raw string) string {
	t.Helper()
	signed, err := TrySign(s, raw)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TrySign is Sign, returning an error where Sign fails.
func TrySign(s *httpsig.Signer, raw string) (string, error) {
	head, body, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok {
		return "", fmt.Errorf("no end of head in %q", raw)
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		return "", fmt.Errorf("parsing %q: %w", raw, err)
	}
	content, err := io.ReadAll(r.Body)
	if err != nil {
		return "", fmt.Errorf("reading the body of %q: %w", raw, err)
	}
	had := r.Header.Get("Content-Digest") != ""
	if err := s.SignRequest(r, content); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(head)
	b.WriteString("\r\n")
	if v := r.Header.Get("Content-Digest"); v != "" && !had {
		b.WriteString("Content-Digest: " + v + "\r\n")
	}
	b.WriteString("Signature-Input: " + r.Header.Get("Signature-Input") + "\r\n")
	b.WriteString("Signature: " + r.Header.Get("Signature") + "\r\n\r\n")
	b.WriteString(body)
	return b.String(), nil
}

// Dial opens a connection to addr that is closed when t ends.
func Dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// Send writes raw to a new connection to addr and returns the response
// and its body.
func Send(t testing.TB, addr, raw string) (*http.Response, string) {
	t.Helper()
	resp, body, err := TrySend(t, addr, raw)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TrySend is Send, returning an error where Send fails: a server that
// refuses a malformed request and closes the connection while the
// request is still being written may reset it before its answer is read.
func TrySend(t testing.TB, addr, raw string) (*http.Response, string, error) {
	t.Helper()
	c := Dial(t, addr)
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, "", err
	}
	return readFinal(br)
}

// ReadFinal reads responses from br up to the first that is not 1xx, and
// returns it and its body.
func ReadFinal(t testing.TB, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, body, err := readFinal(br)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func readFinal(br *bufio.Reader) (*http.Response, string, error) {
	for {
		resp, body, err := read(br)
		if err != nil || resp.StatusCode >= 200 {
			return resp, body, err
		}
	}
}

// Read reads a response and its body from br.
func Read(t testing.TB, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, body, err := read(br)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func read(br *bufio.Reader) (*http.Response, string, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, "", err
	}
	return resp, string(body), nil
}

// Head splits a recorded request into its request line and field lines,
// as written.
func Head(raw []byte) (requestLine string, fields []Field) {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ":")
		fields = append(fields, Field{name, strings.TrimSpace(value)})
	}
	return lines[0], fields
}

// A Field is one field line.
type Field struct{ Name, Value string }

func (f Field) String() string { return fmt.Sprintf("%s: %s", f.Name, f.Value) }

// Parse reads a recorded request as a server would.
func Parse(t testing.TB, raw []byte) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("the upstream received a request it cannot parse: %v\n%s", err, raw)
	}
	return r
}
