package policy

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Upstream is a service behind the gateway. Its fields are comparable, so
// that a gateway can keep the connections of an upstream whose settings a
// reload left alone: see [Upstream.SameTransport].
type Upstream struct {
	// Name is the upstream's key under upstreams; "default" for the one
	// the upstream setting (--upstream) names.
	Name string
	// URL is where requests go; its path, if any, is the base path the
	// request's path is appended to.
	URL *url.URL
	// RawURL is URL as written.
	RawURL string
	// Timeouts. Zero ConnectTimeout, TLSHandshakeTimeout and
	// IdleTimeout mean 5 s, 5 s and 90 s; a zero ResponseHeaderTimeout
	// means Settings.UpstreamTimeout (and no limit if that is zero too).
	ConnectTimeout        time.Duration
	TLSHandshakeTimeout   time.Duration
	ResponseHeaderTimeout time.Duration
	IdleTimeout           time.Duration
	// MaxIdleConns bounds the idle connections kept to the upstream;
	// zero means 1024 (net/http keeps only two per host by default,
	// which halves throughput under load).
	MaxIdleConns int
	// MaxConns bounds all connections to it; zero means no bound.
	MaxConns int
	// Pos is where the upstream is defined.
	Pos Position
}

// Defaults of an Upstream's zero fields.
const (
	DefaultConnectTimeout      = 5 * time.Second
	DefaultTLSHandshakeTimeout = 5 * time.Second
	DefaultIdleTimeout         = 90 * time.Second
	DefaultMaxIdleConns        = 1024
)

// SameTransport reports whether u and v reach the same place the same
// way, so that connections made for one serve the other.
func (u *Upstream) SameTransport(v *Upstream) bool {
	return u.URL.Scheme == v.URL.Scheme && u.URL.Host == v.URL.Host &&
		u.ConnectTimeout == v.ConnectTimeout && u.TLSHandshakeTimeout == v.TLSHandshakeTimeout &&
		u.ResponseHeaderTimeout == v.ResponseHeaderTimeout && u.IdleTimeout == v.IdleTimeout &&
		u.MaxIdleConns == v.MaxIdleConns && u.MaxConns == v.MaxConns
}

// NewTransport returns a transport for u with its timeouts and pool.
func (u *Upstream) NewTransport() *http.Transport {
	or := func(d, def time.Duration) time.Duration {
		if d == 0 {
			return def
		}
		return d
	}
	idle := u.MaxIdleConns
	if idle == 0 {
		idle = DefaultMaxIdleConns
	}
	return &http.Transport{
		Proxy:             nil, // the upstream is reached directly
		DialContext:       (&net.Dialer{Timeout: or(u.ConnectTimeout, DefaultConnectTimeout), KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2: true,
		// The upstream is asked for the codings the client asked for,
		// and its answer passes as sent: net/http would otherwise add
		// Accept-Encoding: gzip on its own and decode the answer.
		DisableCompression:    true,
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       u.MaxConns,
		IdleConnTimeout:       or(u.IdleTimeout, DefaultIdleTimeout),
		TLSHandshakeTimeout:   or(u.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		ResponseHeaderTimeout: u.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// setURL sets u's URL from raw, and returns what is wrong with it.
func (u *Upstream) setURL(raw string) string {
	v, err := url.Parse(raw)
	switch {
	case err != nil || (v.Scheme != "http" && v.Scheme != "https") || v.Host == "":
		return fmt.Sprintf("%q is not an http:// or https:// URL", raw)
	case v.User != nil:
		return "the URL holds credentials, which would show in logs; the upstream trusts the gateway by network or by its signature"
	case v.Fragment != "" || strings.HasSuffix(raw, "#"):
		return "the URL has a fragment"
	case v.Path != "" && checkPath(v.EscapedPath(), PathRules{EncodedSlashes: true}) != "":
		return "the URL's path must be a plain base path such as /api"
	}
	u.URL, u.RawURL = v, raw
	return ""
}

func sortedUpstreams(ups map[string]*Upstream) []*Upstream {
	out := make([]*Upstream, 0, len(ups))
	for _, u := range ups {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *Upstream) int { return strings.Compare(a.Name, b.Name) })
	return out
}
