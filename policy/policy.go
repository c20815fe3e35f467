// Package policy implements Signet's gateway policy: the file that says,
// for signet serve, which requests go to which upstream and what each
// must carry: a signature with given scopes, or none on public routes.
//
// [Load] reads and validates a policy file (YAML, strict: an unknown key
// or a bad value is an [Error] at its line and column) into a [Policy],
// which is immutable. [Policy.Match] finds the [Route] of a request with
// the net/http ServeMux pattern syntax and precedence (the most specific
// pattern wins; patterns that conflict do not load). [TrustedProxies]
// rebuilds what a client behind a proxy addressed, which its signature
// covers. A [Watcher] reloads the file on SIGHUP and when it changes,
// swapping in a new Policy only once it has validated in full.
//
// Every flag of signet serve is a top-level key of the file (--max-body
// is max_body), and a flag given on the command line overrides the file:
// see [Settings] and [Options].
package policy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/signet-dev/signet/httpsig"
)

// Reasons of the refusals the policy adds to those of verification.
const (
	// ReasonNoRoute: no route matches the request (404).
	ReasonNoRoute httpsig.Reason = "no-route"
	// ReasonInvalidForwarded: a trusted proxy's forwarding fields are
	// malformed or name an undeclared prefix (400).
	ReasonInvalidForwarded httpsig.Reason = "invalid-forwarded"
)

// Policy is a loaded, validated policy. It is never modified once made,
// so a request served with one Policy sees one consistent set of routes,
// upstreams and settings; it is safe for concurrent use.
type Policy struct {
	// File is the file the policy came from; "" when it came from flags
	// alone.
	File string
	// Sum is the SHA-256 of the file's content.
	Sum [32]byte
	// Settings are the file's settings with the flags applied.
	Settings Settings
	// Upstreams by name.
	Upstreams map[string]*Upstream
	// Routes in the order of the file. Without a routes key there is one,
	// "default": every path, signed, to the default upstream.
	Routes []*Route
	// Proxies are the trusted proxies; nil trusts none.
	Proxies *TrustedProxies
	// Paths says which paths are routed.
	Paths PathRules
	// CORS says which web origins' pages may call the client listener;
	// nil allows none (and preflights are routed as any request).
	CORS *CORS
	// Warnings are problems that do not stop the policy from working,
	// such as an upstream no route uses.
	Warnings []*Error

	fromFile map[string]Position // settings the file set
	table    *table
}

// Options are what Load takes besides the file.
type Options struct {
	// Defaults are the defaults of signet serve's flags, by name, as
	// text: the settings the file and Flags leave alone take them.
	Defaults map[string]string
	// Flags are the flags of signet serve given on the command line, by
	// name without dashes ("max-body"), with their values as text. They
	// override the file's settings, on every reload too.
	Flags map[string]string
}

// Load reads the policy file at path. Its errors are Errors, naming
// every problem found, or the error of reading the file.
func Load(path string, opts Options) (*Policy, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, opts)
}

// Parse parses the policy in data, read from the file name (for
// messages). With no data, the policy comes from opts.Flags alone, as
// for signet serve without --config.
func Parse(name string, data []byte, opts Options) (*Policy, error) {
	d := &decoder{file: name}
	p := &Policy{File: name, Settings: defaultSettings(), Upstreams: map[string]*Upstream{}, fromFile: map[string]Position{}}
	if len(data) > 0 {
		p.Sum = sha256.Sum256(data)
	}
	for name, v := range opts.Defaults {
		if name == FlagCORSOrigin {
			continue
		}
		st := lookupSetting(strings.ReplaceAll(name, "-", "_"))
		if st == nil {
			d.errs = append(d.errs, &Error{Flag: name, Msg: "a flag of signet serve that the policy file has no key for"})
			continue
		}
		if err := st.set(&p.Settings, v); err != nil {
			d.errs = append(d.errs, &Error{Flag: name, Msg: "default: " + err.Error()})
		}
	}
	var routes []routeSpec
	var routesPos ast.Node
	if body := d.parseYAML(data); body != nil {
		routes, routesPos = d.top(p, body)
	}
	for name, v := range opts.Flags {
		if name == FlagCORSOrigin {
			p.corsFlag(d, v)
			continue
		}
		key := strings.ReplaceAll(name, "-", "_")
		st := lookupSetting(key)
		if st == nil {
			d.errs = append(d.errs, &Error{Flag: name, Msg: "not a setting of the policy"})
			continue
		}
		if err := st.set(&p.Settings, v); err != nil {
			d.errs = append(d.errs, &Error{Flag: name, Msg: err.Error()})
		}
	}
	p.Settings.check(func(key, format string, keys ...string) {
		_, flag := opts.Flags[strings.ReplaceAll(key, "_", "-")]
		names := make([]any, len(keys))
		for i, k := range keys {
			names[i] = k
			if flag || !p.FromFile(key) {
				names[i] = "--" + strings.ReplaceAll(k, "_", "-")
			}
		}
		d.errs = append(d.errs, p.settingError(key, fmt.Sprintf(format, names...), opts.Flags))
	})
	p.defaultUpstream(d, opts.Flags)
	p.compileRoutes(d, routes, routesPos)
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	p.table = newTable(p.Routes)
	return p, nil
}

// settingError places a problem with a setting where its value came from.
func (p *Policy) settingError(key, msg string, flags map[string]string) *Error {
	flag := strings.ReplaceAll(key, "_", "-")
	_, fromFlag := flags[flag]
	switch {
	case (fromFlag || !p.FromFile(key)) && strings.HasPrefix(msg, "--"):
		return &Error{Msg: msg}
	case fromFlag:
		return &Error{Flag: flag, Msg: msg}
	}
	if pos, ok := p.fromFile[key]; ok {
		return &Error{File: pos.File, Line: pos.Line, Column: pos.Column, Msg: msg}
	}
	return &Error{File: p.File, Msg: msg}
}

// top decodes the top-level mapping of the file.
func (d *decoder) top(p *Policy, body ast.Node) ([]routeSpec, ast.Node) {
	var routes []routeSpec
	var routesNode ast.Node
	fields := []field{
		{"version", func(_, v ast.Node) {
			if n, ok := d.integer(v, "version"); ok && n != 1 {
				d.errorf(v, "version %d is not known; this Signet reads version 1", n)
			}
		}},
		{"upstreams", func(_, v ast.Node) { d.upstreams(p, v) }},
		{"trusted_proxies", func(_, v ast.Node) { p.Proxies = d.trustedProxies(v) }},
		{"cors", func(_, v ast.Node) { p.CORS = d.cors(v) }},
		{"paths", func(_, v ast.Node) {
			d.mapping(v, "paths", []field{
				{"allow_encoded_slashes", func(_, v ast.Node) { p.Paths.EncodedSlashes, _ = d.boolean(v, "allow_encoded_slashes") }},
				{"allow_semicolons", func(_, v ast.Node) { p.Paths.Semicolons, _ = d.boolean(v, "allow_semicolons") }},
			})
		}},
		{"routes", func(k, v ast.Node) {
			routesNode = k
			items, ok := d.list(v, "routes")
			if ok && len(items) == 0 {
				d.errorf(k, "routes is empty: every request would be refused (leave the key out for one route to the default upstream)")
			}
			for _, it := range items {
				if r, ok := d.route(it); ok {
					routes = append(routes, r)
				}
			}
		}},
	}
	for i := range settings {
		st := &settings[i]
		fields = append(fields, field{st.key, func(k, v ast.Node) {
			p.fromFile[st.key] = d.position(k)
			d.decodeSetting(&p.Settings, st, v)
		}})
	}
	if !d.mapping(body, "the policy", fields) {
		return nil, nil
	}
	return routes, routesNode
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (d *decoder) upstreams(p *Policy, n ast.Node) {
	keys, vals := d.mapEntries(n, "upstreams")
	for i, k := range keys {
		if !nameRE.MatchString(k.Value) {
			d.errorf(k, "upstream name %q: use letters, digits, '.', '_' and '-', at most 64", k.Value)
			continue
		}
		u := &Upstream{Name: k.Value, Pos: d.position(k)}
		errs := len(d.errs)
		defer func() {
			if len(d.errs) > errs {
				if d.badUpstreams == nil {
					d.badUpstreams = map[string]bool{}
				}
				d.badUpstreams[u.Name] = true
				delete(p.Upstreams, u.Name)
			}
		}()
		what := "upstream " + k.Value
		var urlNode ast.Node
		d.mapping(vals[i], what, []field{
			{"url", func(_, v ast.Node) {
				urlNode = v
				u.RawURL, _ = d.str(v, "url")
			}},
			{"connect_timeout", d.durationField(&u.ConnectTimeout, "connect_timeout")},
			{"tls_handshake_timeout", d.durationField(&u.TLSHandshakeTimeout, "tls_handshake_timeout")},
			{"response_header_timeout", d.durationField(&u.ResponseHeaderTimeout, "response_header_timeout")},
			{"idle_timeout", d.durationField(&u.IdleTimeout, "idle_timeout")},
			{"max_idle_conns", d.intField(&u.MaxIdleConns, "max_idle_conns")},
			{"max_conns", d.intField(&u.MaxConns, "max_conns")},
		})
		if urlNode == nil {
			d.errorf(k, "%s has no url", what)
			continue
		}
		if msg := u.setURL(u.RawURL); msg != "" {
			d.errorf(urlNode, "%s: %s", what, msg)
			continue
		}
		p.Upstreams[u.Name] = u
	}
}

func (d *decoder) durationField(dst *time.Duration, what string) func(_, v ast.Node) {
	return func(_, v ast.Node) {
		s, ok := d.str(v, what)
		if !ok {
			return
		}
		t, err := ParseDuration(s)
		if err != nil {
			d.errorf(v, "%s: %v", what, err)
			return
		}
		*dst = t
	}
}

func (d *decoder) intField(dst *int, what string) func(_, v ast.Node) {
	return func(_, v ast.Node) {
		n, ok := d.integer(v, what)
		if !ok {
			return
		}
		if n < 0 || n > 1<<20 {
			d.errorf(v, "%s must be between 0 and %d", what, 1<<20)
			return
		}
		*dst = int(n)
	}
}

func (d *decoder) trustedProxies(n ast.Node) *TrustedProxies {
	t := &TrustedProxies{Header: HeaderXForwarded, Pos: d.position(n)}
	var cidrs ast.Node
	ok := d.mapping(n, "trusted_proxies", []field{
		{"cidrs", func(_, v ast.Node) {
			cidrs = v
			items, list, ok := d.strings(v, "cidrs")
			if !ok {
				return
			}
			for i, s := range list {
				p, ok := parseCIDR(s)
				if !ok {
					d.errorf(items[i], "cidrs: %q is not an IP network (10.0.0.0/8) or address", s)
					continue
				}
				t.From = append(t.From, p)
			}
		}},
		{"header", func(_, v ast.Node) {
			s, ok := d.str(v, "header")
			if ok && s != HeaderXForwarded && s != HeaderForwarded {
				d.errorf(v, "header must be %s or %s", HeaderXForwarded, HeaderForwarded)
			}
			t.Header = s
		}},
		{"prefix", func(_, v ast.Node) {
			s, ok := d.str(v, "prefix")
			if !ok {
				return
			}
			s = strings.TrimSuffix(s, "/")
			if s != "" && (!strings.HasPrefix(s, "/") || strings.ContainsAny(s, "?#{}") || checkPath(s, PathRules{}) != "") {
				d.errorf(v, "prefix must be a path such as /api, without dot-segments, escapes that hide them, or a query")
				return
			}
			t.Prefix = s
		}},
	})
	if !ok {
		return nil
	}
	if cidrs == nil {
		d.errorf(n, "trusted_proxies needs cidrs, the networks of the proxies")
	}
	return t
}

// defaultUpstream makes the upstream named default from the upstream
// setting, which a flag may give or override.
func (p *Policy) defaultUpstream(d *decoder, flags map[string]string) {
	raw := p.Settings.Upstream
	if raw == "" {
		return
	}
	_, fromFlag := flags["upstream"]
	if u, ok := p.Upstreams["default"]; ok {
		if !fromFlag {
			d.errs = append(d.errs, p.settingError("upstream", fmt.Sprintf("upstream and upstreams.default (at %s) both name the default upstream; keep one", u.Pos), flags))
			return
		}
		cp := *u
		if msg := cp.setURL(raw); msg != "" {
			d.errs = append(d.errs, &Error{Flag: "upstream", Msg: msg})
			return
		}
		p.Upstreams["default"] = &cp
		return
	}
	u := &Upstream{Name: "default", Pos: p.settingPos("upstream", flags)}
	if msg := u.setURL(raw); msg != "" {
		d.errs = append(d.errs, p.settingError("upstream", msg, flags))
		return
	}
	p.Upstreams["default"] = u
}

func (p *Policy) settingPos(key string, flags map[string]string) Position {
	if _, ok := flags[strings.ReplaceAll(key, "_", "-")]; ok {
		return Position{File: "--" + strings.ReplaceAll(key, "_", "-")}
	}
	return p.fromFile[key]
}

// Match returns the route of a request for host (an authority: its port
// is ignored, its case too) and path (escaped, without the query, as the
// gateway received it: after any prefix a trusted proxy stripped). It
// returns ErrNoRoute when no route matches, and a *TargetError for a path
// that could be taken for another by an upstream and so reach another
// route's service with this route's requirements (a policy whose one
// route is "/" takes every path as it is).
func (p *Policy) Match(method, host, path string) (*Route, error) {
	if len(p.Routes) == 1 && p.Routes[0].Pattern == "/" {
		// One route takes every path: none could be taken for another.
		return p.Routes[0], nil
	}
	if msg := checkPath(path, p.Paths); msg != "" {
		return nil, &TargetError{Detail: msg}
	}
	if r := p.table.match(method, routeHost(host), path); r != nil {
		return r, nil
	}
	return nil, ErrNoRoute
}

// Route returns the route with name, or nil.
func (p *Policy) Route(name string) *Route {
	for _, r := range p.Routes {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// FromFile reports whether the file set the setting key (max_body), as
// opposed to a flag or the default.
func (p *Policy) FromFile(key string) bool {
	_, ok := p.fromFile[key]
	return ok
}

// valueOf returns the value of a setting, comparable with ==.
func valueOf(s *Settings, st *setting) any {
	switch v := st.ptr(s).(type) {
	case *string:
		return *v
	case *bool:
		return *v
	case *int:
		return *v
	case *int64:
		return *v
	case *time.Duration:
		return *v
	case *slog.Level:
		return *v
	}
	panic("policy: unknown setting type")
}

// keepRestart sets in p the settings a running gateway cannot change to
// their values in old, and returns the keys of those that differed.
func (p *Policy) keepRestart(old *Policy) []string {
	var changed []string
	for i := range settings {
		st := &settings[i]
		if !st.restart || valueOf(&p.Settings, st) == valueOf(&old.Settings, st) {
			continue
		}
		changed = append(changed, st.key)
		switch dst := st.ptr(&p.Settings).(type) {
		case *string:
			*dst = *st.ptr(&old.Settings).(*string)
		case *bool:
			*dst = *st.ptr(&old.Settings).(*bool)
		case *int:
			*dst = *st.ptr(&old.Settings).(*int)
		case *int64:
			*dst = *st.ptr(&old.Settings).(*int64)
		case *time.Duration:
			*dst = *st.ptr(&old.Settings).(*time.Duration)
		case *slog.Level:
			*dst = *st.ptr(&old.Settings).(*slog.Level)
		}
	}
	slices.Sort(changed)
	return changed
}

var errNoUpstream = errors.New("no upstream: give --upstream URL, or upstream or upstreams in the policy file")
