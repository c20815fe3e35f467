package policy

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// FlagCORSOrigin is the flag of signet serve that gives the origins of
// the cors key, comma-separated (repeated flags join): it replaces the
// file's list.
const FlagCORSOrigin = "cors-origin"

// DefaultCORSMaxAge is how long browsers may cache a preflight's answer
// when the policy does not say.
const DefaultCORSMaxAge = 10 * time.Minute

// CORS is the cross-origin resource sharing of the client listener: which
// web origins may send signed requests from a browser. The gateway answers
// their preflights itself (never the upstream) and names them in
// Access-Control-Allow-Origin; other origins get no CORS fields.
type CORS struct {
	// Origins are the allowed origins, as browsers send them
	// ("https://app.example.com", scheme and host in lower case, the port
	// only when it is not the scheme's default); "*" allows every origin.
	Origins []string
	// MaxAge is Access-Control-Max-Age.
	MaxAge time.Duration
	// Pos is where the cors key is, or the flag.
	Pos Position
}

// Allows reports whether a request with the Origin field origin may be
// answered with CORS fields. The comparison is exact, as browsers send
// the serialised origin; "null" is never allowed.
func (c *CORS) Allows(origin string) bool {
	if c == nil || origin == "" || origin == "null" {
		return false
	}
	return slices.Contains(c.Origins, origin) || slices.Contains(c.Origins, "*")
}

// normalOrigin returns the serialised origin of s, or a message saying
// why s is not one.
func normalOrigin(s string) (string, string) {
	if s == "*" {
		return s, ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(s, "*") {
		return "", fmt.Sprintf("%q is not an origin such as https://app.example.com (a scheme, a host, an optional port; no path) or *", s)
	}
	host := strings.ToLower(u.Host)
	if u.Scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	} else {
		host = strings.TrimSuffix(host, ":443")
	}
	return strings.ToLower(u.Scheme) + "://" + host, ""
}

// cors decodes the cors key: {origins: [...], max_age: 10m}.
func (d *decoder) cors(n ast.Node) *CORS {
	c := &CORS{MaxAge: DefaultCORSMaxAge, Pos: d.position(n)}
	var origins ast.Node
	ok := d.mapping(n, "cors", []field{
		{"origins", func(_, v ast.Node) {
			origins = v
			items, list, ok := d.strings(v, "origins")
			if !ok {
				return
			}
			for i, s := range list {
				o, msg := normalOrigin(s)
				if msg != "" {
					d.errorf(items[i], "cors origins: %s", msg)
					continue
				}
				c.Origins = append(c.Origins, o)
			}
		}},
		{"max_age", d.durationField(&c.MaxAge, "max_age")},
	})
	if !ok {
		return nil
	}
	if origins == nil {
		d.errorf(n, "cors needs origins, the web origins whose pages may call the gateway")
	}
	return c
}

// corsFlag applies --cors-origin, comma-separated origins, over the
// file's cors key.
func (p *Policy) corsFlag(d *decoder, value string) {
	c := &CORS{MaxAge: DefaultCORSMaxAge, Pos: Position{File: "--" + FlagCORSOrigin}}
	if p.CORS != nil {
		c.MaxAge = p.CORS.MaxAge
	}
	for s := range strings.SplitSeq(value, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		o, msg := normalOrigin(s)
		if msg != "" {
			d.errs = append(d.errs, &Error{Flag: FlagCORSOrigin, Msg: msg})
			continue
		}
		c.Origins = append(c.Origins, o)
	}
	if len(c.Origins) > 0 {
		p.CORS = c
	}
}
