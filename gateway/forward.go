package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/middleware"
)

// ReasonUpgradeNotAccepted (400) refuses a request that asks to switch to
// a protocol other than WebSocket: a tunnel to the upstream (h2c, say)
// would carry requests nobody verified.
const ReasonUpgradeNotAccepted httpsig.Reason = "upgrade-not-accepted"

// checkForward refuses, before anything is verified or read, an Upgrade
// to anything but WebSocket and a CONNECT, then routes the request.
func (g *Gateway) checkForward() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if up := r.Header["Upgrade"]; len(up) > 0 && (len(up) > 1 || !strings.EqualFold(strings.TrimSpace(up[0]), "websocket")) {
			g.refuse(w, r, ReasonUpgradeNotAccepted, "Upgrade not accepted", "the gateway switches only to websocket")
			return
		}
		if r.Method == http.MethodConnect {
			// A 2xx answer would make the upstream connection a tunnel
			// (RFC 9110 §9.3.6), which the pool would hand the next
			// request.
			g.refuse(w, r, middleware.ReasonInvalidTarget, "Invalid request target", "CONNECT asks for a tunnel, which the gateway does not open")
			return
		}
		if isKeysRequest(r) && g.respKeys.Load() != nil {
			g.serveKeys(w, r)
			return
		}
		g.serveRouted(w, r)
	})
}

// refuse answers 400 for reason, as the middleware does its refusals.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, reason httpsig.Reason, title, detail string) {
	g.refuseStatus(w, r, http.StatusBadRequest, reason, title, detail)
}

func (g *Gateway) refuseStatus(w http.ResponseWriter, r *http.Request, status int, reason httpsig.Reason, title, detail string) {
	if r.ContentLength != 0 && r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close") // the body is not read
	}
	g.writeProblem(w, status, string(reason), title, detail)
	if g.cfg.Meter != nil && routedOf(r) == nil {
		g.cfg.Meter.Count("", "", reason) // before a route was found
	}
	g.observe(r, middleware.Outcome{Status: status, Reason: reason, Err: errors.New("gateway: " + detail)})
}

// splitTarget returns the path and query of r's target exactly as
// received (which is what the signature covers). It returns a detail for
// the client instead when the target has a fragment or is not in origin
// form.
func splitTarget(r *http.Request) (path, query string, hasQuery bool, detail string) {
	rt := r.RequestURI
	if rt == "" {
		rt = r.URL.RequestURI()
	}
	if strings.IndexByte(rt, '#') >= 0 {
		return "", "", false, "the request target has a fragment (#), which a request target never carries (RFC 9112 §3.2)"
	}
	if !strings.HasPrefix(rt, "/") {
		// The absolute form would reach the upstream in origin form, its
		// request target not the one a signature on @request-target
		// covered; clients send it only to forward proxies.
		return "", "", false, "the request target must be a path (origin form), as sent to an origin server"
	}
	path, query, hasQuery = strings.Cut(rt, "?")
	if path == "" {
		path = "/"
	}
	return path, query, hasQuery, ""
}

// upstreamURL returns the URL of the upstream up for the path and query
// that upstream.target returned, which the transport writes as they are.
func upstreamURL(up *url.URL, path, query string, hasQuery bool) *url.URL {
	u := new(url.URL)
	setUpstreamURL(u, up, path, query, hasQuery)
	return u
}

// setUpstreamURL sets *u to what upstreamURL returns.
func setUpstreamURL(u, up *url.URL, path, query string, hasQuery bool) {
	*u = url.URL{Scheme: up.Scheme, Host: up.Host, RawQuery: joinQuery(up.RawQuery, query)}
	u.ForceQuery = hasQuery && u.RawQuery == ""
	if !strings.HasPrefix(path, "//") {
		// Opaque is written as it is; a path would be re-encoded.
		u.Opaque = path
		return
	}
	// An opaque "//x" would be written as the absolute "http://x".
	u.Path, u.RawPath = path, path
	if p, err := url.PathUnescape(path); err == nil {
		u.Path = p
	}
}

// hasDotSegment reports whether a path has a segment that some server
// would read as "." or "..": after decoding percent-escapes in any case,
// with "\" as a separator too (WHATWG URLs, Windows), and without a
// ";parameter" (servlet containers).
func hasDotSegment(path string) bool {
	seg := make([]byte, 0, 8)
	flush := func() bool {
		s := string(seg)
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		seg = seg[:0]
		return s == "." || s == ".."
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]) {
			c = unhex(path[i+1])<<4 | unhex(path[i+2])
			i += 2
		}
		if c == '/' || c == '\\' {
			if flush() {
				return true
			}
			continue
		}
		if len(seg) < 4 {
			seg = append(seg, c)
		} else if len(seg) == 4 {
			seg = append(seg, 'x') // long enough to be no dot-segment
		}
	}
	return flush()
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// spoofable reports whether a client's field name could be read as one of
// the gateway's identity fields by some stack: it starts with "x-signet-"
// in any case, with '_' for '-' (CGI, WSGI, PHP and nginx variables map
// both to '_'). Forwarding fields spelt with '_' are refused the same way:
// ReverseProxy removes only their canonical spelling.
func spoofable(name string) bool {
	if hasPrefixFold(name, "x-signet-") {
		return true
	}
	return strings.IndexByte(name, '_') >= 0 &&
		(hasPrefixFold(name, "x-forwarded-") || hasPrefixFold(name, "forwarded") && len(name) == len("forwarded") || hasPrefixFold(name, "x-request-id") && len(name) == len("x-request-id"))
}

// hasPrefixFold reports whether s starts with the lower-case prefix,
// ignoring ASCII case and reading '_' as '-'.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}
