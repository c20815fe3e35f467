package policy

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// Route is one entry of the route table: the requests it matches and
// what it demands of them.
type Route struct {
	// Name identifies the route in logs and in the route label of
	// metrics; it defaults to the pattern.
	Name string
	// Pattern is the net/http ServeMux pattern the route matches:
	// "[METHOD ][HOST]/[PATH]".
	Pattern string
	// Method and Host are the parts of the pattern; empty matches any.
	// A GET route also matches HEAD.
	Method, Host string
	// Upstream receives the requests the route accepts.
	Upstream *Upstream
	// Public routes take requests without a signature; the identity
	// fields are still removed from them.
	Public bool
	// Scopes the caller's key must hold.
	Scopes Scopes
	// Require lists components every signature must cover in addition
	// to the default profile (a header such as idempotency-key, say).
	Require []httpsig.Component
	// MaxAge overrides Settings.MaxAge when not zero.
	MaxAge time.Duration
	// Algorithms, when set, are the only ones accepted on this route.
	Algorithms []httpsig.Algorithm
	// MaxBody overrides Settings.MaxBody when not zero.
	MaxBody int64
	// Rate limits the route's requests (issue 12); nil for none.
	Rate *Rate
	// Presigned, when set, says whether presigned URLs are accepted on
	// the route (issue 13); nil leaves the gateway's default (GET and
	// HEAD only).
	Presigned *bool
	// ForwardMetadata has the gateway pass the key's metadata (a JSON
	// object the operator set) to the upstream in X-Signet-Metadata.
	ForwardMetadata bool
	// Pos is where the route is defined.
	Pos Position
	// Index is the route's place in Policy.Routes.
	Index int

	segs []segment
}

// Scopes says which scopes a key must hold: every one of AllOf, and at
// least one of AnyOf when it is not empty.
type Scopes struct {
	AllOf []string
	AnyOf []string
}

// Missing returns what of s the scopes held lack, for a refusal's detail,
// or "" when they suffice.
func (s Scopes) Missing(held []string) string {
	for _, want := range s.AllOf {
		if !slices.Contains(held, want) {
			return fmt.Sprintf("the scope %q", want)
		}
	}
	if len(s.AnyOf) == 0 {
		return ""
	}
	for _, want := range s.AnyOf {
		if slices.Contains(held, want) {
			return ""
		}
	}
	return "one of the scopes " + quoteList(s.AnyOf)
}

func (s Scopes) String() string {
	var parts []string
	if len(s.AllOf) > 0 {
		parts = append(parts, "all of "+strings.Join(s.AllOf, ", "))
	}
	if len(s.AnyOf) > 0 {
		parts = append(parts, "any of "+strings.Join(s.AnyOf, ", "))
	}
	if parts == nil {
		return "none"
	}
	return strings.Join(parts, "; ")
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// Rate is a rate limit: Limit requests per Per, with bursts of Burst,
// counted separately for each By (key, owner or route).
type Rate struct {
	Limit int64
	Per   time.Duration
	Burst int64
	By    string
}

func (r *Rate) String() string {
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h", 24 * time.Hour: "d"}[r.Per]
	return fmt.Sprintf("%d/%s burst %d per %s", r.Limit, unit, r.Burst, r.By)
}

// segment is a segment of a route's path: a literal (unescaped), a
// single wildcard, or a multi wildcard (which a trailing slash is too).
// A literal "/" stands for the {$} anchor, as in net/http.
type segment struct {
	lit   string
	wild  bool
	multi bool
}

// parsePattern splits a pattern that http.ServeMux has accepted.
func parsePattern(s string) (method, host string, segs []segment) {
	rest := s
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		method, rest = s[:i], strings.TrimLeft(s[i+1:], " \t")
	}
	i := strings.IndexByte(rest, '/')
	host, rest = rest[:i], rest[i:]
	for len(rest) > 0 {
		rest = rest[1:]
		if rest == "" {
			segs = append(segs, segment{wild: true, multi: true})
			break
		}
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		switch {
		case seg == "{$}":
			segs = append(segs, segment{lit: "/"})
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "...}"):
			segs = append(segs, segment{wild: true, multi: true})
		case strings.HasPrefix(seg, "{"):
			segs = append(segs, segment{wild: true})
		default:
			segs = append(segs, segment{lit: unescape(seg)})
		}
	}
	return method, host, segs
}

func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// checkPatterns registers the patterns of routes with an http.ServeMux,
// which checks their syntax and refuses two that overlap with neither
// more specific than the other; it reports each problem with the
// positions of the routes concerned.
func checkPatterns(routes []*Route, report func(r *Route, msg string)) []*Route {
	mux := http.NewServeMux()
	var ok []*Route
	for _, r := range routes {
		if msg := register(mux, r); msg != "" {
			if other := conflicting(ok, r); other != nil {
				if _, why, found := strings.Cut(msg, ": "); found && strings.HasPrefix(msg, "pattern ") {
					msg = why
				}
				report(r, fmt.Sprintf("route %q conflicts with route %q (at %s): %s", r.Name, other.Name, other.Pos, msg))
			} else {
				report(r, msg)
			}
			continue
		}
		ok = append(ok, r)
	}
	return ok
}

// register adds r's pattern to mux, and returns why mux refused it.
func register(mux *http.ServeMux, r *Route) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			msg = muxMessage(fmt.Sprint(v))
		}
	}()
	mux.Handle(r.Pattern, http.NotFoundHandler())
	return ""
}

// conflicting returns the route among routes that r conflicts with.
func conflicting(routes []*Route, r *Route) *Route {
	for _, o := range routes {
		mux := http.NewServeMux()
		if register(mux, o) == "" && register(mux, r) != "" {
			return o
		}
	}
	return nil
}

// muxMessage keeps what a ServeMux panic says about the patterns, without
// the Go source positions it names (the registering call, here).
func muxMessage(s string) string {
	s = strings.TrimPrefix(s, "http: ")
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		for {
			i := strings.Index(line, " (registered at ")
			if i < 0 {
				break
			}
			j := strings.IndexByte(line[i:], ')')
			if j < 0 {
				break
			}
			line = line[:i] + line[i+j+1:]
		}
		if line != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, " ")
}

// table is the route table: a tree of path segments per host and method,
// walked as http.ServeMux walks its own, so that the most specific
// pattern wins, but without its redirects, which a gateway must not make
// for requests it forwards.
type table struct {
	hosts map[string]*methodNodes // "" for the routes without a host
	// subtrees has bit n set when a pattern of n segments ends in a slash
	// (a multi wildcard, or {$}): only a path of n-1 slashes can be taken
	// for its root, with a slash added.
	subtrees uint64
}

type methodNodes struct {
	byMethod map[string]*node
	any      *node
}

type node struct {
	route *Route
	lit   map[string]*node
	wild  *node
	multi *node
}

func newTable(routes []*Route) *table {
	t := &table{hosts: map[string]*methodNodes{}}
	for _, r := range routes {
		mn := t.hosts[r.Host]
		if mn == nil {
			mn = &methodNodes{byMethod: map[string]*node{}}
			t.hosts[r.Host] = mn
		}
		var n *node
		if r.Method == "" {
			if mn.any == nil {
				mn.any = &node{}
			}
			n = mn.any
		} else {
			if n = mn.byMethod[r.Method]; n == nil {
				n = &node{}
				mn.byMethod[r.Method] = n
			}
		}
		for _, s := range r.segs {
			switch {
			case s.multi:
				if n.multi == nil {
					n.multi = &node{}
				}
				n = n.multi
			case s.wild:
				if n.wild == nil {
					n.wild = &node{}
				}
				n = n.wild
			default:
				if n.lit == nil {
					n.lit = map[string]*node{}
				}
				c := n.lit[s.lit]
				if c == nil {
					c = &node{}
					n.lit[s.lit] = c
				}
				n = c
			}
		}
		n.route = r
		if last := r.segs[len(r.segs)-1]; last.multi || last.lit == "/" {
			t.subtrees |= 1 << min(len(r.segs), 63)
		}
	}
	return t
}

// match returns the route for a host without port, in lower case, and a
// canonical escaped path. Where ServeMux would redirect /tree to /tree/
// (the path matches no pattern exactly, and the path with a slash added
// matches the subtree pattern /tree/ exactly), the route of /tree/ is
// taken: the gateway must not answer for the upstream, and a path the
// upstream may well take for /tree/ must not get weaker requirements.
func (t *table) match(method, host, path string) *Route {
	r := t.lookup(method, host, path, false)
	if !exactMatch(r, path, false) && path != "" && path[len(path)-1] != '/' && t.subtrees&(1<<min(strings.Count(path, "/")+1, 63)) != 0 {
		if r2 := t.lookup(method, host, path, true); exactMatch(r2, path, true) {
			return r2
		}
	}
	return r
}

// exactMatch reports whether r matches path (with a slash added if
// slash is set) without a multi wildcard taking a non-empty part of it.
func exactMatch(r *Route, path string, slash bool) bool {
	if r == nil {
		return false
	}
	if !r.segs[len(r.segs)-1].multi {
		return true
	}
	if !slash && path[len(path)-1] != '/' {
		return false
	}
	n := strings.Count(path, "/")
	if slash {
		n++
	}
	return len(r.segs) == n
}

func (t *table) lookup(method, host, path string, slash bool) *Route {
	if host != "" {
		if r := t.hosts[host].match(method, path, slash); r != nil {
			return r
		}
	}
	return t.hosts[""].match(method, path, slash)
}

func (mn *methodNodes) match(method, path string, slash bool) *Route {
	if mn == nil {
		return nil
	}
	if r := mn.byMethod[method].match(path, slash); r != nil {
		return r
	}
	if method == http.MethodHead {
		if r := mn.byMethod[http.MethodGet].match(path, slash); r != nil {
			return r
		}
	}
	return mn.any.match(path, slash)
}

// match follows ServeMux: a literal segment before a wildcard before a
// multi wildcard, backtracking; the patterns were checked at load not to
// conflict, so the first found is the most specific. slash stands for a
// "/" after path, without building the longer string.
func (n *node) match(path string, slash bool) *Route {
	if n == nil {
		return nil
	}
	if path == "" {
		if !slash {
			return n.route
		}
		path, slash = "/", false
	}
	seg, rest := "/", ""
	if path != "/" {
		seg, rest = path[1:], ""
		if i := strings.IndexByte(seg, '/'); i >= 0 {
			seg, rest = seg[:i], seg[i:]
		}
		seg = unescape(seg)
	}
	if r := n.lit[seg].match(rest, slash); r != nil {
		return r
	}
	if seg != "/" {
		if r := n.wild.match(rest, slash); r != nil {
			return r
		}
	}
	if n.multi != nil {
		return n.multi.route
	}
	return nil
}

// PathRules says which paths the route table takes. The defaults refuse
// what an upstream could take for another path than the one the gateway
// matched.
type PathRules struct {
	// EncodedSlashes lets %2F through, matched inside a segment as
	// net/http does; for APIs whose ids hold slashes, in front of
	// upstreams that do not decode them before routing.
	EncodedSlashes bool
	// Semicolons lets ';' through. Servlet containers and Spring drop
	// ";parameters" from segments before routing, so that "/admin;x/"
	// would reach the route of "/admin/" on the upstream while the
	// gateway matched another.
	Semicolons bool
}

// checkPath returns why an escaped path cannot be routed safely, or "":
// empty, "." and ".." segments (also percent-encoded, and with
// ;parameters), backslashes, control characters, malformed escapes and,
// unless rules allow them, encoded slashes and semicolons.
func checkPath(path string, rules PathRules) string {
	if path == "" || path[0] != '/' {
		return "the path must start with /"
	}
	for i := 1; i <= len(path); {
		j := strings.IndexByte(path[i:], '/')
		if j < 0 {
			j = len(path) - i
		}
		seg := path[i : i+j]
		if seg == "" && i+j < len(path) {
			return "the path has an empty segment (//)"
		}
		if msg := checkSegment(seg, rules); msg != "" {
			return msg
		}
		i += j + 1
	}
	return ""
}

func checkSegment(seg string, rules PathRules) string {
	dots, other, params := 0, false, false
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c == '%':
			if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
				return "the path has a malformed percent-escape"
			}
			c = unhex(seg[i+1])<<4 | unhex(seg[i+2])
			i += 2
			switch {
			case c == '/' && !rules.EncodedSlashes:
				return "the path has an encoded slash (%2F)"
			case c == '\\':
				return "the path has an encoded backslash (%5C)"
			}
		case c == '\\':
			return "the path has a backslash"
		case c == ';' && !params:
			if !rules.Semicolons {
				return "the path has a semicolon, which some servers take for the start of parameters they drop"
			}
			params = true
			continue
		}
		if c < 0x20 || c == 0x7f {
			return "the path has a control character"
		}
		if params {
			continue
		}
		if c == '.' {
			dots++
		} else {
			other = true
		}
	}
	if !other && (dots == 1 || dots == 2 || params) {
		return "the path has a dot-segment (., .., percent-encoded or with ;parameters) or a segment of ;parameters only"
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// routeHost returns the host a route is chosen by: the authority without
// its port, in lower case.
func routeHost(authority string) string {
	h := authority
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i >= 0 {
			h = h[:i+1]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
