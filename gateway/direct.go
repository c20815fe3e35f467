package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/signet-dev/signet/internal/peek"
)

// directTransport forwards the plain-HTTP/1.1 requests of one upstream on
// the goroutine that sends them: it takes an idle keep-alive connection
// (or dials one), writes the request and reads the response header there,
// and hands back the connection when the response body was read to its
// end. http.Transport runs a reader and a writer goroutine per
// connection, which costs four goroutine switches per request; on a busy
// gateway those are a good part of its CPU.
//
// Only what it writes exactly as the http.Transport would goes this way:
// requests to the upstream's host over http, with no body or a body of a
// known length of at most directMaxBody, with no Upgrade, no Expect and no
// trailer. Everything else, and every request when the upstream is
// reached over https or its connections are bounded (MaxConnsPerHost),
// goes to the http.Transport it wraps, which it shares its dialer and
// settings with. Like the gateway's http.Transports (DisableCompression)
// it never asks the upstream for gzip on its own: the upstream receives
// the client's Accept-Encoding, or none.
//
// It writes the request line and header itself (appendRequestHead), byte
// for byte as Request.Write does, which sorts the header keys into a new
// slice, formats with fmt, runs a strings.Replacer over every value and
// allocates a transferWriter for each request; a request whose head is
// not plainly safe to write so is written by Request.Write.
//
// Before it reuses an idle connection it checks, with one non-blocking
// peek, that the upstream has neither closed it nor sent anything since:
// http.Transport's reader goroutine notices a close only some time after
// it came, and a POST sent in between fails (TestUpstreamConnections).
type directTransport struct {
	fallback *http.Transport
	host     string // of the upstream
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	header   time.Duration // ResponseHeaderTimeout; 0: none
	idleFor  time.Duration // IdleConnTimeout; 0: none
	maxIdle  int

	mu        sync.Mutex
	idle      []*directConn // most recently used last
	closeIdle bool          // CloseIdleConnections was called and no request came since
}

// directMaxBody bounds the bodies sent directly: the whole request is
// written before the response is read, so a body the upstream does not
// read (answering early) must fit in the sockets' buffers.
const directMaxBody = 64 << 10

// directHeaderLimit bounds the response header (and the 1xx responses
// before it), as http.Transport's default MaxResponseHeaderBytes.
const directHeaderLimit = 10 << 20

// directMode, set at link time (-X), turns the direct transport off
// ("off") or its liveness check of idle connections ("nopeek"): for
// measurements only.
var directMode string

// A pooledTransport keeps connections whose idle ones it can close.
type pooledTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newDirectTransport returns t wrapped in a directTransport for upstream
// host, or t itself when no request to it could go directly.
func newDirectTransport(t *http.Transport, scheme, host string) pooledTransport {
	if scheme != "http" || t.MaxConnsPerHost > 0 || t.DialContext == nil || t.DisableKeepAlives ||
		t.Proxy != nil || !peek.Supported || directMode == "off" {
		return t
	}
	maxIdle := t.MaxIdleConnsPerHost
	if maxIdle <= 0 {
		maxIdle = http.DefaultMaxIdleConnsPerHost
	}
	if t.MaxIdleConns > 0 {
		maxIdle = min(maxIdle, t.MaxIdleConns)
	}
	return &directTransport{
		fallback: t,
		host:     host,
		dial:     t.DialContext,
		header:   t.ResponseHeaderTimeout,
		idleFor:  t.IdleConnTimeout,
		maxIdle:  maxIdle,
	}
}

// directConn is a connection to the upstream.
type directConn struct {
	t    *directTransport
	conn net.Conn
	raw  syscall.RawConn // to check an idle connection; nil: it is not kept
	br   *bufio.Reader   // reads through directConn, counting
	bw   *bufio.Writer   // writes through directConn, counting

	nread, nwritten int64
	readLimit       int64 // bytes left to read for the response header

	idleAt time.Time
	timer  *time.Timer // closes it once idle for idleFor
	reused bool

	// mu orders the deadlines the request sets with the one a canceled
	// context sets, which must stay.
	mu       sync.Mutex
	canceled bool
}

func (c *directConn) Read(p []byte) (int, error) {
	if c.readLimit <= 0 {
		return 0, fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", directHeaderLimit)
	}
	if int64(len(p)) > c.readLimit {
		p = p[:c.readLimit]
	}
	n, err := c.conn.Read(p)
	c.nread += int64(n)
	c.readLimit -= int64(n)
	return n, err
}

func (c *directConn) Write(p []byte) (int, error) {
	n, err := c.conn.Write(p)
	c.nwritten += int64(n)
	return n, err
}

// cancel makes the connection's reads and writes fail at once.
func (c *directConn) cancel() {
	c.mu.Lock()
	c.canceled = true
	c.conn.SetDeadline(time.Unix(1, 0))
	c.mu.Unlock()
}

// setReadDeadline sets the read deadline, unless the request was canceled.
func (c *directConn) setReadDeadline(t time.Time) {
	c.mu.Lock()
	if !c.canceled {
		c.conn.SetReadDeadline(t)
	}
	c.mu.Unlock()
}

func (c *directConn) close() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.conn.Close()
}

// directTimeout is the error of a response header that did not come in
// time.
type directTimeout struct{}

func (directTimeout) Error() string        { return "net/http: timeout awaiting response headers" }
func (directTimeout) Timeout() bool        { return true }
func (directTimeout) Temporary() bool      { return true }
func (directTimeout) Is(target error) bool { return target == context.DeadlineExceeded }

// errDirectClosedIdle is the error of a reused connection that the
// upstream closed (io.EOF before any byte of the response).
var errDirectClosedIdle = errors.New("net/http: server closed idle connection")

// direct reports whether req can be sent directly.
func (t *directTransport) direct(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host != t.host || req.Header == nil ||
		len(req.TransferEncoding) > 0 || req.Trailer != nil || req.Close {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && (req.ContentLength <= 0 || req.ContentLength > directMaxBody) {
		return false
	}
	if req.ContentLength != 0 && (req.Body == nil || req.Body == http.NoBody) {
		return false
	}
	h := req.Header
	return h["Upgrade"] == nil && h["Expect"] == nil && h["Connection"] == nil
}

// RoundTrip implements http.RoundTripper.
func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.direct(req) {
		return t.fallback.RoundTrip(req)
	}
	// The head is built once, checked as it is: a request it cannot be
	// built for is checked again, to be refused as http.Transport would,
	// or written by Request.Write.
	buf := headBuffers.Get().(*[]byte)
	head, ok := appendRequestHead((*buf)[:0], req)
	defer func() {
		if cap(head) <= headBufferMax {
			*buf = head[:0]
			headBuffers.Put(buf)
		}
	}()
	if !ok {
		if err := validHeader(req); err != nil {
			closeBody(req)
			return nil, err
		}
		head = head[:0]
	}
	ctx := req.Context()
	for {
		if err := ctx.Err(); err != nil {
			closeBody(req)
			return nil, context.Cause(ctx)
		}
		c, err := t.conn(ctx)
		if err != nil {
			closeBody(req)
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, err
		}
		resp, err := t.send(ctx, c, req, head, ok)
		if err == nil {
			return resp, nil
		}
		if !c.reused || !retriable(req, err) {
			return nil, err
		}
		// The upstream closed the connection it had kept: nothing of
		// the request was processed.
		if req.Body != nil && req.Body != http.NoBody {
			b, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r := *req
			r.Body = b
			req = &r
		}
	}
}

// retriable reports whether a request that failed with err on a reused
// connection may go again on another: http.Transport's rule.
func retriable(req *http.Request, err error) bool {
	var nw nothingWritten
	if errors.As(err, &nw) {
		return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if !replayable {
		return false
	}
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "":
	default:
		if _, ok := req.Header["Idempotency-Key"]; !ok {
			if _, ok := req.Header["X-Idempotency-Key"]; !ok {
				return false
			}
		}
	}
	var rf readFailed
	return errors.As(err, &rf)
}

// nothingWritten is a write error before any byte of the request left.
type nothingWritten struct{ error }

func (e nothingWritten) Unwrap() error { return e.error }

// readFailed is a read error (not a timeout) before any byte of the
// response came.
type readFailed struct{ error }

func (e readFailed) Unwrap() error { return e.error }

// send writes req on c, with head, built by appendRequestHead, if built
// (or by Request.Write), and reads the response header.
func (t *directTransport) send(ctx context.Context, c *directConn, req *http.Request, head []byte, built bool) (*http.Response, error) {
	stop := context.AfterFunc(ctx, c.cancel)
	fail := func(err error) (*http.Response, error) {
		stop()
		c.close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	c.nwritten = 0
	var err error
	if built {
		err = writeRequest(c.bw, req, head) // closes the body
	} else {
		err = req.Write(c.bw) // closes the body
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		if c.nwritten == 0 {
			err = nothingWritten{err}
		}
		return fail(err)
	}
	if t.header > 0 {
		c.setReadDeadline(time.Now().Add(t.header))
	}
	c.nread, c.readLimit = 0, directHeaderLimit
	trace := httptrace.ContextClientTrace(ctx)
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil:
				err = directTimeout{}
			case c.nread == 0 && errors.Is(err, io.EOF):
				err = readFailed{errDirectClosedIdle}
			case c.nread == 0 && !errors.Is(err, os.ErrDeadlineExceeded):
				err = readFailed{err}
			}
			return fail(err)
		}
		if code := resp.StatusCode; code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			break
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
			c.readLimit = directHeaderLimit
		}
	}
	c.readLimit = 1<<63 - 1
	if t.header > 0 {
		c.setReadDeadline(time.Time{})
	}
	reuse := !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Not asked for (Upgrade requests go to the fallback): the
		// connection is of no more use.
		resp.Close = true
	}
	b := &directBody{c: c, body: resp.Body, stop: stop, ctx: ctx, reuse: reuse}
	if resp.Body == http.NoBody || resp.Body == nil {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// directBody is the body of a response read directly: it hands the
// connection back once read to its end.
type directBody struct {
	c     *directConn
	body  io.ReadCloser
	stop  func() bool
	ctx   context.Context
	reuse bool

	mu   sync.Mutex
	done bool
}

func (b *directBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	if done {
		return 0, errors.New("http: read on closed response body")
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		b.finish(false)
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		}
	}
	return n, err
}

func (b *directBody) Close() error {
	b.finish(false)
	return nil
}

// finish ends the response: the connection goes back to the pool if the
// body was read to its end (eof) and the response allows it, or is
// closed.
func (b *directBody) finish(eof bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	if !b.stop() || !eof || !b.reuse || b.c.br.Buffered() > 0 || b.c.raw == nil {
		b.c.close()
		return
	}
	b.c.t.put(b.c)
}

// conn returns an idle connection that is still open, or a new one.
func (t *directTransport) conn(ctx context.Context) (*directConn, error) {
	for {
		t.mu.Lock()
		t.closeIdle = false
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		c := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if c.timer != nil {
			c.timer.Stop()
		}
		if t.idleFor > 0 && time.Since(c.idleAt) >= t.idleFor {
			c.close()
			continue
		}
		if directMode != "nopeek" && peek.Idle(c.raw) != nil {
			// Closed by the upstream (or it sent what nobody asked
			// for): http.Transport's reader would have seen it.
			c.close()
			continue
		}
		c.reused = true
		c.canceled = false
		return c, nil
	}
	nc, err := t.dial(ctx, "tcp", t.host)
	if err != nil {
		return nil, err
	}
	c := &directConn{t: t, conn: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	c.br = bufio.NewReaderSize(c, 4096)
	c.bw = bufio.NewWriterSize(c, 4096)
	return c, nil
}

// put makes c idle, unless the pool is full or closing.
func (t *directTransport) put(c *directConn) {
	// Set while c is still this goroutine's alone: once in the pool,
	// another request may take it.
	c.idleAt = time.Now()
	if t.idleFor > 0 {
		if c.timer == nil {
			c.timer = time.AfterFunc(t.idleFor, func() { t.expire(c) })
		} else {
			c.timer.Reset(t.idleFor)
		}
	}
	t.mu.Lock()
	if t.closeIdle || len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		c.close()
		return
	}
	t.idle = append(t.idle, c)
	t.mu.Unlock()
}

// expire closes c if it is still idle.
func (t *directTransport) expire(c *directConn) {
	t.mu.Lock()
	for i, ic := range t.idle {
		if ic == c {
			t.idle = append(t.idle[:i], t.idle[i+1:]...)
			t.mu.Unlock()
			c.conn.Close()
			return
		}
	}
	t.mu.Unlock()
}

// CloseIdleConnections closes the idle connections, and those that become
// idle until the next request, as http.Transport's.
func (t *directTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.closeIdle = true
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	t.fallback.CloseIdleConnections()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// validHeader refuses what http.Transport refuses to send: a method or
// field name that is no token, a field value with a control character.
func validHeader(req *http.Request) error {
	if req.Method != "" && !isToken(req.Method) {
		return fmt.Errorf("net/http: invalid method %q", req.Method)
	}
	for k, vv := range req.Header {
		if !isToken(k) {
			return fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !plainValue(v) {
				return fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	return nil
}
