// Package wiretest sends hand-written HTTP/1.1 requests over loopback and
// records, byte for byte, what a server behind a proxy receives: the tools
// of the tests that check that what Signet passes on is what it verified.
//
// [Upstream] is a raw TCP server (not net/http, which would normalise what
// it reads); [Scripted] is one whose answers the test writes, byte for
// byte, connection by connection; [Sign] signs a raw request the way a
// server that parses it verifies it; [Send] writes a raw request and reads
// the response.
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// Upstream records the requests it receives, each exactly as it arrived,
// and answers each with 200 and closes the connection.
type Upstream struct {
	*listener
	received
}

// NewUpstream starts an Upstream on loopback, stopped when t ends.
func NewUpstream(t testing.TB) *Upstream {
	t.Helper()
	u := &Upstream{}
	u.listener = listen(t, func(_ int, c net.Conn) { u.serve(c) })
	return u
}

func (u *Upstream) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := newTee(c)
	if err := readMessage(r.br, c); err != nil {
		return
	}
	u.add(r.take())
	io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
}

// listener is the loopback side of [Upstream] and [Scripted]: it serves
// each connection it accepts on a goroutine of its own, and when the test
// ends closes, with every connection still open, and waits for them.
type listener struct {
	ln    net.Listener
	conns atomic.Int32 // accepted
	ended atomic.Int32 // served and closed
	mu    sync.Mutex
	open  []net.Conn
}

// listen starts a listener that calls serve with each connection and its
// number (from 1), and closes the connection once serve returns.
func listen(t testing.TB, serve func(n int, c net.Conn)) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		l.mu.Lock()
		for _, c := range l.open {
			c.Close()
		}
		l.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.open = append(l.open, c)
			l.mu.Unlock()
			n := int(l.conns.Add(1))
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(n, c)
				c.Close()
				l.ended.Add(1)
			}()
		}
	}()
	return l
}

// URL returns the upstream's http:// URL, with path appended.
func (l *listener) URL(path string) string { return "http://" + l.Addr() + path }

// Addr returns the host:port the upstream listens on.
func (l *listener) Addr() string { return l.ln.Addr().String() }

// Conns returns how many connections the upstream accepted.
func (l *listener) Conns() int { return int(l.conns.Load()) }

// Ended returns how many of its connections the upstream has closed,
// because the peer closed its side or the upstream was done with it.
func (l *listener) Ended() int { return int(l.ended.Load()) }

// received records requests as they arrived.
type received struct {
	mu   sync.Mutex
	reqs [][]byte
}

func (r *received) add(req []byte) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
}

// Requests returns the requests received so far, as received.
func (r *received) Requests() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.reqs...)
}

// Count returns how many requests were received.
func (r *received) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// Last returns the last request received; it fails t if there is none.
func (r *received) Last(t testing.TB) []byte {
	t.Helper()
	reqs := r.Requests()
	if len(reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	return reqs[len(reqs)-1]
}

// tee reads messages from a connection and keeps the bytes each was read
// from, as they arrived.
type tee struct {
	raw bytes.Buffer
	br  *bufio.Reader
}

func newTee(c net.Conn) *tee {
	r := &tee{}
	r.br = bufio.NewReader(io.TeeReader(c, &r.raw))
	return r
}

// take returns the bytes the messages read since the last take came
// from: only what the parser consumed, not what it buffered beyond.
func (r *tee) take() []byte {
	n := r.raw.Len() - r.br.Buffered()
	b := bytes.Clone(r.raw.Bytes()[:n])
	r.raw.Next(n)
	return b
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
