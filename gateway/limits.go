package gateway

import (
	"net/http"
	"sync"
	"time"

	"github.com/signet-dev/signet/middleware"
)

// Defaults of the Config fields that bound the gateway's work.
const (
	// DefaultMaxInFlight is the number of client requests handled at once
	// beyond which requests are refused with 503.
	DefaultMaxInFlight = 1024
	// DefaultUpstreamTimeout is how long the upstream may take to answer
	// with its response header: nginx's proxy_read_timeout, so that an API
	// moved behind Signet keeps its slow endpoints.
	DefaultUpstreamTimeout = 60 * time.Second
	// DefaultWriteTimeout is how long a client may take to accept each
	// piece of its response.
	DefaultWriteTimeout = 60 * time.Second
)

// inFlight admits at most len(slots) requests at once and keeps, for each,
// what a shutdown reports of the requests it cuts. Its slots are made once:
// admitting a request allocates nothing.
type inFlight struct {
	free         chan *slot
	slots        []slot
	writeTimeout time.Duration // <= 0: none
}

// slot is one admitted request.
type slot struct {
	w slotWriter

	mu                      sync.Mutex // guards what InFlight reads from another goroutine
	busy                    bool
	method, path, requestID string
	start                   time.Time
}

func newInFlight(limit int, writeTimeout time.Duration) *inFlight {
	l := &inFlight{free: make(chan *slot, limit), slots: make([]slot, limit), writeTimeout: writeTimeout}
	for i := range l.slots {
		l.free <- &l.slots[i]
	}
	return l
}

// len returns the number of requests in flight.
func (l *inFlight) len() int { return cap(l.free) - len(l.free) }

// handler admits requests to next while a slot is free and answers the
// others with refuse at once, before anything of them is read.
// afterHeader is told of upstreams that failed after the response header
// went to the client.
func (l *inFlight) handler(next http.Handler, refuse http.HandlerFunc, afterHeader func(r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *slot
		select {
		case s = <-l.free:
		default:
			setWriteDeadline(w, l.writeTimeout)
			refuse(w, r)
			return
		}
		now := time.Now()
		s.mu.Lock()
		s.busy, s.method, s.path, s.requestID, s.start = true, r.Method, r.URL.Path, r.Header.Get(HeaderRequestID), now
		s.mu.Unlock()
		s.w = slotWriter{ResponseWriter: w, timeout: l.writeTimeout}
		if r.ProtoMajor == 1 {
			// The connection may still carry the deadline of its previous
			// response, which would fail a 100 Continue now. (An HTTP/2
			// stream starts without one, and would be reset when it
			// passed, written to or not.)
			s.w.setDeadline(now)
		}
		defer func() {
			// httputil.ReverseProxy aborts the handler with
			// http.ErrAbortHandler when copying the response body fails:
			// the upstream's fault unless writing to the client failed or
			// the client went away.
			v := recover()
			if v == http.ErrAbortHandler && s.w.wroteHeader && !s.w.writeFailed && r.Context().Err() == nil {
				afterHeader(r)
			}
			s.mu.Lock()
			s.busy = false
			s.mu.Unlock()
			s.w = slotWriter{}
			l.free <- s
			if v != nil {
				panic(v)
			}
		}()
		next.ServeHTTP(&s.w, r)
	})
}

// InFlightRequest describes a request being handled.
type InFlightRequest struct {
	Method string
	// Path is the request's path, never its query, which may carry
	// secrets (presigned URLs).
	Path      string
	RequestID string
	Started   time.Time
}

// snapshot returns the requests in flight.
func (l *inFlight) snapshot() []InFlightRequest {
	var out []InFlightRequest
	for i := range l.slots {
		s := &l.slots[i]
		s.mu.Lock()
		if s.busy {
			out = append(out, InFlightRequest{Method: s.method, Path: s.path, RequestID: s.requestID, Started: s.start})
		}
		s.mu.Unlock()
	}
	return out
}

// slotWriter is the ResponseWriter of an admitted request. It gives the
// client writeTimeout (at least three quarters of it) to accept each write:
// a client that stops reading is cut off, a long download or event stream
// that keeps flowing is not
// (over HTTP/2 the deadline runs between writes too, so a stream that
// pauses longer than writeTimeout is cut). It remembers whether writing
// failed.
type slotWriter struct {
	http.ResponseWriter
	timeout     time.Duration
	set         time.Time // when the write deadline was last set; zero: never
	wroteHeader bool
	writeFailed bool
}

// extend moves the write deadline to timeout from now, unless it was set
// less than a quarter of that ago: setting a deadline costs more than
// writing to the buffer, and a response is mostly a header and one write.
func (w *slotWriter) extend() {
	if w.timeout > 0 && (w.set.IsZero() || time.Since(w.set) >= w.timeout/4) {
		w.setDeadline(time.Now())
	}
}

func (w *slotWriter) setDeadline(now time.Time) {
	if w.timeout > 0 {
		w.set = now
		http.NewResponseController(w.ResponseWriter).SetWriteDeadline(now.Add(w.timeout))
	}
}

func setWriteDeadline(w http.ResponseWriter, timeout time.Duration) {
	if timeout > 0 {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout))
	}
}

func (w *slotWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wroteHeader = true
	}
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *slotWriter) Write(p []byte) (int, error) {
	w.wroteHeader = true
	w.extend()
	n, err := w.ResponseWriter.Write(p)
	if err != nil {
		w.writeFailed = true
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection, to flush and
// to hijack it for a WebSocket.
func (w *slotWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// orDefault returns v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// refuseOverloaded answers a request beyond MaxInFlight.
func (g *Gateway) refuseOverloaded(w http.ResponseWriter, r *http.Request) {
	g.metrics.overloaded.Inc()
	if g.cfg.Meter != nil {
		g.cfg.Meter.Count("", "", middleware.ReasonUnavailable)
	}
	g.overloaded.add("", "request_id", r.Header.Get(HeaderRequestID), "method", r.Method, "path", r.URL.Path,
		"limit", cap(g.inFlight.free))
	w.Header().Set("Retry-After", "1")
	g.writeProblem(w, http.StatusServiceUnavailable, string(middleware.ReasonUnavailable), "Service unavailable",
		"the gateway is handling as many requests as it may; retry later")
}

// upstreamBroke counts an upstream that broke off a response after its
// header went to the client. httputil.ReverseProxy has logged the error.
func (g *Gateway) upstreamBroke(r *http.Request) { g.metrics.upstreamCut.Inc() }
