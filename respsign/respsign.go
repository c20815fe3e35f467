// Package respsign signs the responses of a Signet server (the gateway, or
// any net/http server behind middleware.Verify) in the Signet response
// profile (docs/signed-responses.md), with an [httpsig.ResponseSigner],
// and publishes the server's public keys as a JWK set.
//
// [Signer.Wrap] returns a handler that signs every response of the handler
// it wraps, refusals included, as the server's own answers (tag
// signet-gateway); [Signer.Relay], inside it, marks the responses of the
// service behind the server as relayed (tag signet-response), so that a
// client never takes the service's 401 for the server's refusal.
// [Signer.ModifyResponse] signs the 101 of a WebSocket upgrade that an
// httputil.ReverseProxy inside writes itself. A gateway is
//
//	signer.Wrap(verify(signer.Relay(proxy)))  // proxy.ModifyResponse = signer.ModifyResponse
//
// The signature needs the Content-Digest of the content in the header,
// before the content is sent, and gets it in one of three ways:
//
//   - the handler (or the upstream behind a reverse proxy) set
//     Content-Digest itself: the header is signed at once and the content
//     streams through, hashed; if it does not match, the response is
//     aborted (the connection is cut before the end of the content), and
//     the client's own check at the end of the content fails too;
//   - otherwise the content is held: in memory up to Options.MemoryBytes,
//     then in an unlinked temporary file up to Options.MaxBytes, hashed as
//     it comes; when the handler returns, the header is signed and the
//     content sent. Memory stays bounded whatever the size; the cost is
//     the time to the first byte of a large response;
//   - responses that have no content (HEAD, 1xx, 204, 304) or that cannot
//     wait for their end (101 Switching Protocols, text/event-stream, what
//     Options.Streamed names) are signed at once without content-digest; a
//     client that verifies responses then refuses any content they carry.
//
// [KeysHandler] serves the public keys at [KeysPath].
package respsign

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/signet-dev/signet/httpsig"
)

// Defaults of zero Options.
const (
	DefaultMemoryBytes = 1 << 20
	DefaultMaxBytes    = 1 << 30
)

// KeysPath is where a Signet server publishes the public keys of its
// response signatures, as a JWK set.
const KeysPath = "/.well-known/signet-keys"

// Options configures a [Signer]. Zero values are the documented defaults.
type Options struct {
	// Signer signs the responses. Required.
	Signer *httpsig.ResponseSigner
	// MemoryBytes is how much content of one response is held in memory
	// while it is hashed; zero means DefaultMemoryBytes.
	MemoryBytes int64
	// MaxBytes bounds the content of one response held in all (memory,
	// then a temporary file); zero means DefaultMaxBytes. A larger
	// response is replaced by a signed 502.
	MaxBytes int64
	// TempDir is where content over MemoryBytes is held; empty means
	// os.TempDir(). The files are unlinked as soon as they are made.
	TempDir string
	// Streamed, if set, reports whether a response (its request, status
	// and header fields) is one that cannot wait for its end, to be signed
	// at once without content-digest and sent as it comes: a stream of
	// events, a long poll. Nil means text/event-stream responses only.
	Streamed func(r *http.Request, status int, h http.Header) bool
	// OnError, if set, is told of a response that could not be signed
	// or sent as signed (content over MaxBytes, a full disk, content that
	// did not match its own Content-Digest). Nil means nothing is told.
	OnError func(r *http.Request, err error)
}

// Signer signs the responses of a handler; see the package
// documentation. It is safe for concurrent use.
type Signer struct {
	opts Options
	// own signs the server's own answers, relay those of the service
	// behind it.
	own, relay httpsig.ResponseSigner
}

// New returns a Signer for opts.
func New(opts Options) (*Signer, error) {
	if opts.Signer == nil {
		return nil, errors.New("respsign: Options.Signer is nil")
	}
	if opts.MemoryBytes <= 0 {
		opts.MemoryBytes = DefaultMemoryBytes
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	opts.MaxBytes = max(opts.MaxBytes, opts.MemoryBytes)
	s := &Signer{opts: opts, own: *opts.Signer, relay: *opts.Signer}
	s.own.Tag, s.relay.Tag = httpsig.GatewayTag, httpsig.ResponseTag
	return s, nil
}

type contextKey struct{}

// Wrap returns a handler that signs the responses of next, as the
// server's own answers (tag signet-gateway), unless [Signer.Relay] marks
// them relayed. The request it receives must be the request as the client
// sent it: the response signature covers its method, path, query and
// Signature field, so Wrap goes outside anything that rewrites them.
func (s *Signer) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &signingWriter{s: s, opts: &s.opts, w: w, r: r}
		defer sw.release()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), contextKey{}, sw)))
		sw.finish()
	})
}

// Relay returns a handler that marks the response of next, inside Wrap,
// as relayed from the service behind the server (tag signet-response):
// put it around the reverse proxy, or the application, after the checks
// whose refusals are the server's own. A client acts on the server's own
// refusals (a clock correction, a retry), never on relayed ones, however
// they look.
func (s *Signer) Relay(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sw, ok := r.Context().Value(contextKey{}).(*signingWriter); ok && sw.s == s {
			sw.relayed = true
		}
		next.ServeHTTP(w, r)
	})
}

// Own marks the response to r, inside Relay, as the server's own again,
// as long as nothing of it is written yet: for the answer a reverse
// proxy's ErrorHandler writes when the service behind cannot be reached
// (a 502 or 504 of the server's, not relayed).
func (s *Signer) Own(r *http.Request) {
	if sw, ok := r.Context().Value(contextKey{}).(*signingWriter); ok && sw.s == s && sw.mode == modeNone {
		sw.relayed = false
	}
}

// ModifyResponse is for the ModifyResponse field of the
// httputil.ReverseProxy that Wrap wraps: it signs a 101 (Switching
// Protocols) response, which the proxy writes itself on the hijacked
// connection, out of Wrap's reach, as relayed. Other responses pass
// through Wrap and are left alone here.
func (s *Signer) ModifyResponse(resp *http.Response) error {
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil
	}
	var sw *signingWriter
	if resp.Request != nil {
		sw, _ = resp.Request.Context().Value(contextKey{}).(*signingWriter)
	}
	if sw == nil || sw.s != s {
		return errors.New("respsign: ModifyResponse needs the proxy to be wrapped by Signer.Wrap")
	}
	if err := s.relay.SignHeader(resp.Header, resp.StatusCode, sw.r, ""); err != nil {
		s.opts.fail(sw.r, err)
		return err
	}
	return nil
}

// sniffLen is what http.DetectContentType reads.
const sniffLen = 512

// buffers holds the in-memory part of held content.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writer modes.
const (
	modeNone   = iota // nothing written yet
	modeHold          // holding content until the handler returns
	modeStream        // the header is sent; content passes through
	modeDone          // the response is complete (or abandoned)
)

// signingWriter is the http.ResponseWriter the wrapped handler writes to.
type signingWriter struct {
	s       *Signer
	relayed bool // see Signer.Relay
	opts    *Options
	w       http.ResponseWriter
	r       *http.Request
	mode    int
	status  int

	// modeHold: what is held, and its digest.
	mem     *bytes.Buffer
	file    *os.File
	size    int64
	digest  *httpsig.Digester
	failure error

	sniffed []byte // the first content, for its type

	// modeStream: the digest the content must match, if any, and the
	// Content-Digest field until the header is sent with the first
	// content.
	check   *httpsig.DigestVerifier
	pending string
}

func (s *signingWriter) Header() http.Header { return s.w.Header() }

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (s *signingWriter) Unwrap() http.ResponseWriter { return s.w }

// Hijack hands the connection over: what is written on it is out of
// reach, and the signer's work is done (an httputil.ReverseProxy writes a
// 101 this way, signed by ModifyResponse).
func (s *signingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.w).Hijack()
	if err == nil {
		s.mode = modeDone
	}
	return conn, brw, err
}

func (s *signingWriter) WriteHeader(code int) {
	if s.mode != modeNone {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// 103 Early Hints and the like go out at once, unsigned: they
		// are hints, and the final response is signed.
		s.w.WriteHeader(code)
		return
	}
	s.status = code
	h := s.w.Header()
	switch {
	case code == http.StatusSwitchingProtocols || code == http.StatusNoContent || code == http.StatusNotModified ||
		s.r.Method == http.MethodHead || s.streamed(code, h):
		if _, ok := h["Content-Type"]; !ok {
			// net/http would add a Content-Type sniffed from what the
			// handler writes, after the signature; there is no content.
			h["Content-Type"] = nil
		}
		s.mode = modeStream
		s.sendHeader("")
	case len(h["Content-Digest"]) > 0:
		field := h.Get("Content-Digest")
		check, err := httpsig.NewDigestVerifier(field)
		if err != nil {
			// Not a digest this package can check: hold the content and
			// sign one of its own.
			delete(h, "Content-Digest")
			s.hold()
			return
		}
		// The header goes with the first content, whose type net/http
		// would sniff.
		s.check, s.pending = check, field
		s.mode = modeStream
	default:
		s.hold()
	}
}

// sniff sets Content-Type as net/http would, from the first content,
// before the header is signed: afterwards it would not be covered.
func (s *signingWriter) sniff(p []byte) {
	h := s.w.Header()
	if _, ok := h["Content-Type"]; !ok && len(p) > 0 && h.Get("Content-Encoding") == "" {
		h.Set("Content-Type", http.DetectContentType(p))
	}
}

func (s *signingWriter) streamed(code int, h http.Header) bool {
	if s.opts.Streamed != nil {
		return s.opts.Streamed(s.r, code, h)
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "text/event-stream"
}

func (s *signingWriter) hold() {
	d, err := s.opts.Signer.NewDigester()
	if err != nil {
		s.setFailure(err)
	}
	s.digest = d
	s.mem = buffers.Get().(*bytes.Buffer)
	s.mem.Reset()
	s.mode = modeHold
}

// sendHeader signs the header for content with Content-Digest digest (""
// for none) and sends it.
func (s *signingWriter) sendHeader(digest string) {
	if err := s.signer().SignHeader(s.w.Header(), s.status, s.r, digest); err != nil {
		s.fail(err)
		s.abandon()
		return
	}
	s.w.WriteHeader(s.status)
}

func (s *signingWriter) signer() *httpsig.ResponseSigner {
	if s.relayed {
		return &s.s.relay
	}
	return &s.s.own
}

func (s *signingWriter) Write(p []byte) (int, error) {
	if s.mode == modeNone {
		s.WriteHeader(http.StatusOK)
	}
	switch s.mode {
	case modeStream:
		if s.pending != "" {
			s.sniff(p)
			s.sendPending()
		}
		if s.check != nil {
			s.check.Write(p)
		}
		return s.w.Write(p)
	case modeHold:
		return s.holdWrite(p)
	}
	return 0, errAbandoned
}

var errAbandoned = errors.New("respsign: the response was abandoned: it could not be signed")

func (s *signingWriter) holdWrite(p []byte) (int, error) {
	if s.failure != nil {
		return 0, s.failure
	}
	if s.size+int64(len(p)) > s.opts.MaxBytes {
		return 0, s.setFailure(fmt.Errorf("respsign: the response is larger than the %d bytes that can be held to sign it", s.opts.MaxBytes))
	}
	s.digest.Write(p)
	s.size += int64(len(p))
	if n := len(s.sniffed); n < sniffLen {
		s.sniffed = append(s.sniffed, p[:min(len(p), sniffLen-n)]...)
	}
	if s.file == nil && int64(s.mem.Len()+len(p)) <= s.opts.MemoryBytes {
		return s.mem.Write(p)
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.opts.TempDir, "signet-response-")
		if err != nil {
			return 0, s.setFailure(fmt.Errorf("respsign: holding a large response: %w", err))
		}
		// Unlinked at once: the content lives as long as the file is open,
		// and nothing is left behind by a crash.
		os.Remove(f.Name())
		s.file = f
		if _, err := s.mem.WriteTo(f); err != nil {
			return 0, s.setFailure(fmt.Errorf("respsign: holding a large response: %w", err))
		}
	}
	if _, err := s.file.Write(p); err != nil {
		return 0, s.setFailure(fmt.Errorf("respsign: holding a large response: %w", err))
	}
	return len(p), nil
}

// setFailure records why the held response cannot be sent, and tells.
func (s *signingWriter) setFailure(err error) error {
	s.failure = err
	s.fail(err)
	return err
}

func (s *signingWriter) sendPending() {
	field := s.pending
	s.pending = ""
	s.sendHeader(field)
}

// Flush sends what the handler wrote so far, when the header can be sent;
// held content waits for the end.
func (s *signingWriter) Flush() {
	if s.mode == modeStream {
		if s.pending != "" {
			s.sendPending()
		}
		http.NewResponseController(s.w).Flush()
	}
}

// finish completes the response once the handler has returned.
func (s *signingWriter) finish() {
	switch s.mode {
	case modeNone:
		s.WriteHeader(http.StatusOK)
		if s.mode != modeNone {
			s.finish()
		}
	case modeStream:
		if s.pending != "" {
			s.sendPending()
		}
		s.mode = modeDone
		if s.check != nil {
			if err := s.check.Check(); err != nil {
				s.fail(fmt.Errorf("respsign: the content does not match the Content-Digest the handler set: %w", err))
				// The header claims a digest the content does not have:
				// cut the connection before the end of the content.
				panic(http.ErrAbortHandler)
			}
		}
	case modeHold:
		s.mode = modeDone
		if s.failure != nil {
			s.replaceWithError()
			return
		}
		digest := ""
		if s.size > 0 {
			digest = s.digest.Value()
		}
		s.sniff(s.sniffed)
		h := s.w.Header()
		delete(h, "Transfer-Encoding")
		h.Set("Content-Length", strconv.FormatInt(s.size, 10))
		if err := s.signer().SignHeader(h, s.status, s.r, digest); err != nil {
			s.fail(err)
			s.abandon()
			return
		}
		s.w.WriteHeader(s.status)
		if s.file != nil {
			if _, err := s.file.Seek(0, io.SeekStart); err == nil {
				io.Copy(s.w, s.file)
			}
			return
		}
		s.w.Write(s.mem.Bytes())
	}
}

// replaceWithError answers with a signed 502 in place of a response that
// could not be held.
func (s *signingWriter) replaceWithError() {
	h := s.w.Header()
	for k := range h {
		delete(h, k)
	}
	body := []byte("the response could not be signed\n")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	digest, err := s.opts.Signer.ContentDigest(body)
	if err == nil {
		err = s.s.own.SignHeader(h, http.StatusBadGateway, s.r, digest)
	}
	if err != nil {
		s.abandon()
		return
	}
	s.w.WriteHeader(http.StatusBadGateway)
	s.w.Write(body)
}

// abandon cuts the connection: a response that cannot be signed is not
// sent unsigned.
func (s *signingWriter) abandon() {
	s.mode = modeDone
	panic(http.ErrAbortHandler)
}

func (s *signingWriter) fail(err error) { s.opts.fail(s.r, err) }

func (o *Options) fail(r *http.Request, err error) {
	if o.OnError != nil {
		o.OnError(r, err)
	}
}

// release returns what the response held.
func (s *signingWriter) release() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	if s.mem != nil {
		if s.mem.Cap() <= int(s.opts.MemoryBytes)*2 {
			buffers.Put(s.mem)
		}
		s.mem = nil
	}
}

// KeysHandler returns a handler that serves keys, the public keys of a
// server's response signers (the current one, and during a rotation the
// previous one too), as a JWK set, for GET and HEAD at any path it is
// mounted on ([KeysPath] by convention). Clients may cache it for five
// minutes.
func KeysHandler(keys []httpsig.JWK) (http.Handler, error) {
	if len(keys) == 0 {
		return nil, errors.New("respsign: no keys to publish")
	}
	body, err := httpsig.MarshalJWKS(keys)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}), nil
}
