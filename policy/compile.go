package policy

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/limit"
)

// routeSpec is a route as decoded, before its pattern and upstream are
// checked against the others.
type routeSpec struct {
	r            *Route
	node         ast.Node // the route's mapping, for its position
	matchNode    ast.Node
	upstream     string
	upstreamNode ast.Node
	nameNode     ast.Node
	verifyKeys   []ast.Node // keys that make no sense on a public route
}

var scopeRE = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

func (d *decoder) route(n ast.Node) (routeSpec, bool) {
	s := routeSpec{r: &Route{Pos: d.position(n)}, node: n}
	r := s.r
	verify := func(do func(k, v ast.Node)) func(k, v ast.Node) {
		return func(k, v ast.Node) {
			s.verifyKeys = append(s.verifyKeys, k)
			do(k, v)
		}
	}
	errs := len(d.errs)
	ok := d.mapping(n, "a route", []field{
		{"name", func(_, v ast.Node) {
			s.nameNode = v
			if name, ok := d.str(v, "name"); ok {
				if !nameRE.MatchString(name) {
					d.errorf(v, "route name %q: use letters, digits, '.', '_' and '-', at most 64", name)
				}
				r.Name = name
			}
		}},
		{"match", func(_, v ast.Node) {
			s.matchNode = v
			r.Pattern, _ = d.str(v, "match")
		}},
		{"upstream", func(_, v ast.Node) {
			s.upstreamNode = v
			s.upstream, _ = d.str(v, "upstream")
		}},
		{"public", func(_, v ast.Node) { r.Public, _ = d.boolean(v, "public") }},
		{"scopes", verify(func(_, v ast.Node) { r.Scopes = d.scopes(v) })},
		{"require", verify(func(_, v ast.Node) {
			items, list, ok := d.strings(v, "require")
			if !ok {
				return
			}
			for i, c := range list {
				comp, err := httpsig.ParseComponent(c)
				if err != nil {
					d.errorf(items[i], "require: %s", strings.TrimPrefix(err.Error(), "httpsig: "))
					continue
				}
				r.Require = append(r.Require, comp)
			}
		})},
		{"max_age", verify(func(_, v ast.Node) {
			d.durationField(&r.MaxAge, "max_age")(nil, v)
			if r.MaxAge == 0 {
				if _, ok := d.resolve(v).(*ast.StringNode); ok {
					d.errorf(v, "max_age must be positive")
				}
			}
		})},
		{"algorithms", verify(func(_, v ast.Node) {
			items, list, ok := d.strings(v, "algorithms")
			if !ok {
				return
			}
			for i, a := range list {
				alg, err := httpsig.ParseAlgorithm(a)
				if err != nil {
					d.errorf(items[i], "algorithms: %s", strings.TrimPrefix(err.Error(), "httpsig: "))
					continue
				}
				r.Algorithms = append(r.Algorithms, alg)
			}
		})},
		{"max_body", func(_, v ast.Node) {
			if s, ok := d.scalar(v, "max_body"); ok {
				n, err := ParseSize(s)
				if err != nil {
					d.errorf(v, "max_body: %v", err)
				}
				r.MaxBody = n
			}
		}},
		{"rate", verify(func(_, v ast.Node) { r.Rate = d.rate(v) })},
		{"presigned", func(_, v ast.Node) {
			if b, ok := d.boolean(v, "presigned"); ok {
				r.Presigned = &b
			}
		}},
		{"forward_metadata", verify(func(_, v ast.Node) { r.ForwardMetadata, _ = d.boolean(v, "forward_metadata") })},
	})
	if !ok {
		return s, false
	}
	if s.matchNode == nil {
		d.errorf(n, "a route needs match, a pattern such as \"GET /v1/orders/{id}\"")
	}
	if r.Public {
		for _, k := range s.verifyKeys {
			d.errorf(k, "a public route takes no signature, so %s has no meaning on it", k.(*ast.StringNode).Value)
		}
	}
	return s, len(d.errs) == errs
}

func (d *decoder) scopes(v ast.Node) Scopes {
	var sc Scopes
	list := func(n ast.Node, what string) []string {
		items, l, ok := d.strings(n, what)
		if !ok {
			return nil
		}
		for i, s := range l {
			if !scopeRE.MatchString(s) || strings.ContainsRune(s, ',') {
				d.errorf(items[i], "%s: %q is not a scope (printable, no spaces or commas)", what, s)
			}
		}
		if len(l) == 0 {
			d.errorf(n, "%s is empty", what)
		}
		return l
	}
	if _, ok := d.resolve(v).(*ast.MappingNode); !ok {
		sc.AllOf = list(v, "scopes")
		return sc
	}
	d.mapping(v, "scopes", []field{
		{"all_of", func(_, v ast.Node) { sc.AllOf = list(v, "all_of") }},
		{"any_of", func(_, v ast.Node) { sc.AnyOf = list(v, "any_of") }},
	})
	return sc
}

var rateRE = regexp.MustCompile(`^([0-9]{1,9})/(s|m|h|d)$`)

func (d *decoder) rate(v ast.Node) *Rate {
	r := &Rate{By: "key"}
	var limitNode ast.Node
	ok := d.mapping(v, "rate", []field{
		{"limit", func(_, v ast.Node) {
			limitNode = v
			s, ok := d.str(v, "limit")
			if !ok {
				return
			}
			m := rateRE.FindStringSubmatch(s)
			if m == nil || m[1] == "0" {
				d.errorf(v, "limit: want a rate such as 100/s, 1000/m, 5000/h or 100000/d")
				return
			}
			r.Limit, _ = strconv.ParseInt(m[1], 10, 64)
			r.Per = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
		}},
		{"burst", func(_, v ast.Node) {
			if n, ok := d.integer(v, "burst"); ok {
				if n < 1 {
					d.errorf(v, "burst must be 1 or more")
				}
				r.Burst = n
			}
		}},
		{"by", func(_, v ast.Node) {
			s, ok := d.str(v, "by")
			if ok && s != "key" && s != "owner" && s != "route" {
				d.errorf(v, "by must be key, owner or route")
			}
			r.By = s
		}},
	})
	if !ok {
		return nil
	}
	if limitNode == nil {
		d.errorf(v, "rate needs limit, such as 100/s")
	}
	if r.Burst == 0 {
		r.Burst = r.Limit
	}
	if r.Limit != 0 {
		// The check of the limiters that apply it, shared with the key store.
		if err := (limit.Rate{N: r.Limit, Per: r.Per, Burst: r.Burst}).Validate(); err != nil {
			d.errorf(v, "rate: a burst of %d at %d/%s lasts longer than a limiter can count; lower the burst", r.Burst, r.Limit, map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h", 24 * time.Hour: "d"}[r.Per])
		}
	}
	return r
}

// compileRoutes checks the routes against each other and the upstreams.
func (p *Policy) compileRoutes(d *decoder, specs []routeSpec, routesNode ast.Node) {
	def := p.Upstreams["default"]
	if routesNode == nil {
		if def == nil {
			if len(p.Upstreams) == 1 {
				for _, u := range p.Upstreams {
					def = u
				}
			} else {
				if len(d.errs) == 0 {
					d.errs = append(d.errs, &Error{File: p.File, Msg: errNoUpstreamOrRoutes(len(p.Upstreams))})
				}
				return
			}
		}
		r := &Route{Name: "default", Pattern: "/", Upstream: def, Pos: Position{File: p.File}, segs: []segment{{wild: true, multi: true}}}
		p.Routes = []*Route{r}
		return
	}
	names := map[string]*Route{}
	var matched []*Route
	for _, s := range specs {
		r := s.r
		if !d.checkPattern(r, s.matchNode, p.Paths) {
			continue
		}
		if r.Name == "" {
			r.Name = r.Pattern
		}
		if other, dup := names[r.Name]; dup {
			at := s.nameNode
			if at == nil {
				at = s.matchNode
			}
			d.errorf(at, "route name %q is taken by the route at %s", r.Name, other.Pos)
			continue
		}
		names[r.Name] = r
		switch u, ok := p.Upstreams[s.upstream]; {
		case s.upstream == "" && def == nil:
			d.errorf(s.node, "the route %q names no upstream, and there is no default one (upstream: URL, or --upstream)", r.Name)
			continue
		case s.upstream == "":
			r.Upstream = def
		case !ok && d.badUpstreams[s.upstream]:
			continue
		case !ok:
			d.errorf(s.upstreamNode, "unknown upstream %q%s", s.upstream, knownUpstreams(p.Upstreams))
			continue
		default:
			r.Upstream = u
		}
		matched = append(matched, r)
	}
	ok := checkPatterns(matched, func(r *Route, msg string) {
		d.errs = append(d.errs, &Error{File: r.Pos.File, Line: r.Pos.Line, Column: r.Pos.Column, Msg: msg})
	})
	for i, r := range ok {
		r.Index = i
	}
	p.Routes = ok
	used := map[string]bool{}
	for _, r := range ok {
		used[r.Upstream.Name] = true
	}
	for _, u := range sortedUpstreams(p.Upstreams) {
		if !used[u.Name] {
			p.Warnings = append(p.Warnings, &Error{File: u.Pos.File, Line: u.Pos.Line, Column: u.Pos.Column, Msg: fmt.Sprintf("no route uses the upstream %q", u.Name)})
		}
	}
}

func errNoUpstreamOrRoutes(n int) string {
	if n == 0 {
		return errNoUpstream.Error()
	}
	return "there are several upstreams but no routes to say which requests go where"
}

func knownUpstreams(ups map[string]*Upstream) string {
	if len(ups) == 0 {
		return " (there are none)"
	}
	var names []string
	for _, u := range sortedUpstreams(ups) {
		names = append(names, u.Name)
	}
	return " (known: " + strings.Join(names, ", ") + ")"
}

// checkPattern checks what http.ServeMux does not: a host without a port
// (ports are ignored, as by ServeMux), in lower case; a path a request can
// have (no dot-segments, nothing Match would refuse).
func (d *decoder) checkPattern(r *Route, at ast.Node, rules PathRules) bool {
	if r.Pattern == "" {
		return false
	}
	mux := http.NewServeMux()
	if msg := register(mux, r); msg != "" {
		d.errorf(at, "match: %s", msg)
		return false
	}
	method, host, segs := parsePattern(r.Pattern)
	path := r.Pattern[strings.Index(r.Pattern, host+"/")+len(host):]
	switch {
	case strings.ContainsAny(host, ":[]"):
		d.errorf(at, "match: the host %q has a port or is an IP literal; routes match host names, and ignore ports", host)
		return false
	case host != strings.ToLower(host):
		d.errorf(at, "match: write the host %q in lower case (hosts are matched without regard to case)", host)
		return false
	case method != strings.ToUpper(method):
		d.errorf(at, "match: the method %q is matched exactly; write it in upper case", method)
		return false
	}
	if msg := checkPath(patternPath(path), rules); msg != "" {
		d.errorf(at, "match: no request can match this pattern: %s", strings.TrimPrefix(msg, "the path "))
		return false
	}
	r.Method, r.Host, r.segs = method, host, segs
	return true
}

// patternPath replaces the wildcards of a pattern's path with a plain
// segment, for checkPath.
func patternPath(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = "x"
		}
	}
	return strings.Join(segs, "/")
}
