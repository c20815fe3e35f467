package policy

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Forwarding conventions a trusted proxy may use.
const (
	// HeaderXForwarded: X-Forwarded-Host, X-Forwarded-Proto,
	// X-Forwarded-Prefix and X-Forwarded-For.
	HeaderXForwarded = "x-forwarded"
	// HeaderForwarded: the RFC 7239 Forwarded field.
	HeaderForwarded = "forwarded"
)

// TrustedProxies says whose forwarding fields the gateway believes when
// it rebuilds what the client addressed: the @authority, @scheme, @path
// and @target-uri its signature covers. From a peer outside From, the
// fields are ignored (and the gateway removes them before forwarding).
type TrustedProxies struct {
	// From lists the networks of the trusted proxies.
	From []netip.Prefix
	// Header is the one convention believed: HeaderXForwarded (the
	// default) or HeaderForwarded; the other is ignored.
	Header string
	// Prefix is the path prefix the proxy in front strips ("/api"), or ""
	// for none. It is declared, never taken from a request: a trusted
	// proxy's X-Forwarded-Prefix must agree with it, or the request is
	// refused.
	Prefix string
	// Pos is where the trusted proxies are defined.
	Pos Position
}

// Trusts reports whether addr is a trusted proxy.
func (t *TrustedProxies) Trusts(addr netip.Addr) bool {
	if t == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range t.From {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Origin is what the client of a request addressed, and who it is.
type Origin struct {
	// Scheme is "http" or "https".
	Scheme string
	// Authority is the host and port the client sent its request to, as
	// the client wrote it (the signature's @authority normalises it).
	Authority string
	// Prefix is the path prefix a trusted proxy stripped, to be put back
	// before the path for @path and @target-uri; "" for none.
	Prefix string
	// Client is the address of the client: the peer, or, behind trusted
	// proxies, the nearest address they name that is not theirs. It is
	// the zero Addr when a proxy named none that can be read.
	Client netip.Addr
	// Forwarded is set when the values came from a trusted proxy.
	Forwarded bool
}

// Origin returns the origin of a request that came from the peer
// remoteAddr ("ip:port", as http.Request.RemoteAddr), over TLS or not,
// for host (its Host field) with the header fields h. scheme, if set, is
// the scheme to assume when no trusted proxy names one (the scheme
// setting). A nil t trusts no one.
//
// From a trusted peer, with X-Forwarded-*: the last value of
// X-Forwarded-Host and X-Forwarded-Proto (the one the nearest proxy
// added; lists come from proxies that append), X-Forwarded-Prefix only
// if it is the declared prefix. With Forwarded: the elements are walked
// back from the last while the for= of each is a trusted proxy, and the
// host= and proto= of the element where the walk stops are believed (the
// Host field and the connection's scheme when it has none). Field names
// spelt with '_' are never read. A malformed value from a trusted proxy
// is a *ForwardedError: the request is refused, not guessed at.
func (t *TrustedProxies) Origin(remoteAddr string, tls bool, host string, h http.Header, scheme string) (Origin, error) {
	o := Origin{Scheme: scheme, Authority: host}
	if o.Scheme == "" {
		o.Scheme = "http"
		if tls {
			o.Scheme = "https"
		}
	}
	peer := parseAddr(remoteAddr)
	o.Client = peer
	if !t.Trusts(peer) {
		return o, nil
	}
	o.Forwarded = true
	o.Prefix = t.Prefix
	if t.Header == HeaderForwarded {
		return t.forwarded(o, h)
	}
	return t.xForwarded(o, h)
}

func (t *TrustedProxies) xForwarded(o Origin, h http.Header) (Origin, error) {
	if v, ok := lastListValue(h["X-Forwarded-Host"]); ok {
		if !validAuthority(v) {
			return o, &ForwardedError{"X-Forwarded-Host from a trusted proxy is not a host"}
		}
		o.Authority = v
	}
	if v, ok := lastListValue(h["X-Forwarded-Proto"]); ok {
		s, ok := scheme(v)
		if !ok {
			return o, &ForwardedError{"X-Forwarded-Proto from a trusted proxy is neither http nor https"}
		}
		o.Scheme = s
	}
	if lines := h["X-Forwarded-Prefix"]; len(lines) > 0 {
		v, _ := lastListValue(lines)
		if len(lines) > 1 || strings.IndexByte(lines[0], ',') >= 0 || strings.TrimSuffix(v, "/") != t.Prefix {
			if t.Prefix == "" {
				return o, &ForwardedError{"a trusted proxy sent X-Forwarded-Prefix, but no prefix is declared (trusted_proxies.prefix)"}
			}
			return o, &ForwardedError{"X-Forwarded-Prefix from a trusted proxy is not the declared prefix " + strconv.Quote(t.Prefix)}
		}
	}
	o.Client = t.walkFor(o.Client, h["X-Forwarded-For"])
	return o, nil
}

// walkFor returns the client named by X-Forwarded-For: the last address
// in it that is not a trusted proxy's.
func (t *TrustedProxies) walkFor(peer netip.Addr, lines []string) netip.Addr {
	items := listItems(lines)
	for i := len(items) - 1; i >= 0; i-- {
		a := parseAddr(items[i])
		if !a.IsValid() {
			return netip.Addr{}
		}
		if !t.Trusts(a) {
			return a
		}
		peer = a
	}
	return peer
}

func (t *TrustedProxies) forwarded(o Origin, h http.Header) (Origin, error) {
	lines := h["Forwarded"]
	if len(lines) == 0 {
		return o, nil
	}
	elems, ok := parseForwarded(lines)
	if !ok {
		return o, &ForwardedError{"Forwarded from a trusted proxy is malformed (RFC 7239)"}
	}
	k := len(elems) - 1
	for k > 0 {
		a := parseAddr(elems[k]["for"])
		if !t.Trusts(a) {
			break
		}
		k--
	}
	e := elems[k]
	if v, ok := e["host"]; ok {
		if !validAuthority(v) {
			return o, &ForwardedError{"the host= of Forwarded from a trusted proxy is not a host"}
		}
		o.Authority = v
	}
	if v, ok := e["proto"]; ok {
		s, ok := scheme(v)
		if !ok {
			return o, &ForwardedError{"the proto= of Forwarded from a trusted proxy is neither http nor https"}
		}
		o.Scheme = s
	}
	if f, ok := e["for"]; ok {
		o.Client = parseAddr(f)
	} else {
		o.Client = netip.Addr{}
	}
	return o, nil
}

// parseForwarded parses the lines of a Forwarded field (RFC 7239 §4)
// into its elements, each a map of lower-case parameter names to values.
func parseForwarded(lines []string) ([]map[string]string, bool) {
	var out []map[string]string
	for _, line := range lines {
		s := line
		for {
			e := map[string]string{}
			for {
				s = strings.TrimLeft(s, " \t")
				i := 0
				for i < len(s) && isTokenChar(s[i]) {
					i++
				}
				if i == 0 || i == len(s) || s[i] != '=' {
					return nil, false
				}
				name := strings.ToLower(s[:i])
				s = s[i+1:]
				var v string
				if strings.HasPrefix(s, `"`) {
					var ok bool
					if v, s, ok = quoted(s); !ok {
						return nil, false
					}
				} else {
					i = 0
					for i < len(s) && isTokenChar(s[i]) {
						i++
					}
					if i == 0 {
						return nil, false
					}
					v, s = s[:i], s[i:]
				}
				if _, dup := e[name]; dup {
					return nil, false
				}
				e[name] = v
				s = strings.TrimLeft(s, " \t")
				if !strings.HasPrefix(s, ";") {
					break
				}
				s = s[1:]
			}
			out = append(out, e)
			if s == "" {
				break
			}
			if s[0] != ',' {
				return nil, false
			}
			s = s[1:]
		}
	}
	return out, len(out) > 0
}

// quoted reads a quoted-string at the start of s.
func quoted(s string) (v, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			b.WriteByte(s[i])
		default:
			if c < 0x20 && c != '\t' || c == 0x7f {
				return "", "", false
			}
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// listItems splits the lines of a comma-separated field into its items.
func listItems(lines []string) []string {
	var out []string
	for _, l := range lines {
		for _, it := range strings.Split(l, ",") {
			out = append(out, strings.TrimSpace(it))
		}
	}
	return out
}

// lastListValue returns the last item of a comma-separated field.
func lastListValue(lines []string) (string, bool) {
	if len(lines) == 0 {
		return "", false
	}
	last := lines[len(lines)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.TrimSpace(last), true
}

func scheme(v string) (string, bool) {
	switch {
	case strings.EqualFold(v, "https"):
		return "https", true
	case strings.EqualFold(v, "http"):
		return "http", true
	}
	return "", false
}

// parseAddr reads an address as a peer or a for= names it: "ip",
// "ip:port", "[ipv6]" or "[ipv6]:port"; anything else (unknown, an
// obfuscated name) is the zero Addr.
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// validAuthority reports whether v is host or host:port, with a host that
// is a DNS name, an IPv4 address or a bracketed IPv6 address.
func validAuthority(v string) bool {
	host, port := v, ""
	if strings.HasPrefix(v, "[") {
		i := strings.IndexByte(v, ']')
		if i < 0 {
			return false
		}
		host, port = v[1:i], v[i+1:]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return false
		}
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
			if port == "" {
				return false
			}
		}
	} else {
		if i := strings.IndexByte(v, ':'); i >= 0 {
			host, port = v[:i], v[i+1:]
			if port == "" {
				return false
			}
		}
		if host == "" || len(host) > 253 {
			return false
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
				return false
			}
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || len(port) > 5 || port[0] == '+' {
			return false
		}
	}
	return true
}

// parseCIDR reads a network, or a single address as the network of it.
func parseCIDR(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, false
		}
		if a := p.Addr(); a.Is4In6() {
			// Addresses are compared unmapped.
			if p.Bits() < 96 {
				return netip.Prefix{}, false
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}
